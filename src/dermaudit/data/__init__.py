"""Data loading for HAM10000-style folders: metadata, lesion-grouped splits, image cache, synthetic data."""

from dermaudit.data.cache import cache_filename, load_image_cache
from dermaudit.data.metadata import find_images, is_synthetic, load_metadata
from dermaudit.data.split import split_by_lesion, write_split
from dermaudit.data.synthetic import ensure_synthetic_dataset, generate_synthetic_dataset

__all__ = [
    "cache_filename",
    "ensure_synthetic_dataset",
    "find_images",
    "generate_synthetic_dataset",
    "is_synthetic",
    "load_image_cache",
    "load_metadata",
    "split_by_lesion",
    "write_split",
]
