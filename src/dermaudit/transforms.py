"""Tensor conversion and training augmentations for cached uint8 images.

Images arrive as uint8 arrays of shape (N, H, W, 3) from the image cache. Augmentations run
per sample on uint8 CHW tensors (torchvision.transforms.v2); normalization runs per batch.
"""

import numpy as np
import torch
from torchvision.transforms import v2


def training_augmentation(image_size):
    """Return the dermoscopy training augmentation for square images of `image_size` pixels.

    Dermoscopy images have no canonical orientation, so flips in both axes and free
    rotations preserve the label. Colour jitter imitates dermatoscope and lighting
    differences, and resized crops imitate zoom and framing.
    """
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(0.6, 1.0), ratio=(0.8, 1.25), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomVerticalFlip(),
        v2.RandomRotation(degrees=180),
        v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
    ])


def to_chw_tensor(images):
    """Convert uint8 images (N, H, W, 3) or (H, W, 3) to a uint8 tensor (N, 3, H, W) or (3, H, W)."""
    # A copy, because the cache is a read-only memmap and torch needs writable memory.
    tensor = torch.from_numpy(np.array(images, dtype=np.uint8, copy=True))
    return tensor.permute(0, 3, 1, 2) if tensor.ndim == 4 else tensor.permute(2, 0, 1)


def normalize_batch(batch, mean, std, channels_last=False):
    """Convert a uint8 batch (N, 3, H, W) to normalized float32 model input."""
    x = batch.float().div_(255.0)
    mean_t = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = (x - mean_t) / std_t
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


class CachedImageDataset(torch.utils.data.Dataset):
    """Images from the uint8 cache with integer labels, optionally augmented.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 array (N, H, W, 3), possibly a read-only memmap.
    labels : numpy.ndarray
        int array (N,) of class indices.
    transform : callable, optional
        Applied to each uint8 CHW tensor.
    """

    def __init__(self, images, labels, transform=None):
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = to_chw_tensor(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]
