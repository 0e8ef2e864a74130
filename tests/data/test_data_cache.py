import os

import numpy as np
import pytest
from PIL import Image

from dermaudit.data.cache import cache_filename, load_image_cache
from dermaudit.data.metadata import load_metadata
from dermaudit.exceptions import DataValidationError, ParamsError

SIZE = 32


@pytest.fixture(scope="module")
def sample_head(sample_data_root):
    return load_metadata(sample_data_root).head(8)


def reference_image(path, size):
    """Center-crop to the shorter side and resize with Lanczos, decoding at full resolution."""
    with Image.open(path) as image:
        image = image.convert("RGB")
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.resize((size, size), Image.Resampling.LANCZOS))


def test_shape_and_dtype(sample_head, tmp_path):
    images = load_image_cache(sample_head, SIZE, tmp_path, progress=False)

    assert images.shape == (8, SIZE, SIZE, 3)
    assert images.dtype == np.uint8


def test_pixels_match_reference(sample_head, tmp_path):
    images = load_image_cache(sample_head, SIZE, tmp_path, progress=False)
    reference = reference_image(sample_head.loc[3, "path"], SIZE).astype(int)

    # Reduced-scale JPEG decoding changes pixels by a few levels only.
    assert np.abs(images[3].astype(int) - reference).mean() < 3


def test_rows_follow_df_order(sample_head, tmp_path):
    forward = np.array(load_image_cache(sample_head, SIZE, tmp_path, progress=False))
    backward = np.array(load_image_cache(sample_head.iloc[::-1], SIZE, tmp_path, progress=False))

    assert np.array_equal(backward, forward[::-1])


def test_second_call_skips_decoding(sample_head, tmp_path, monkeypatch):
    first = np.array(load_image_cache(sample_head, SIZE, tmp_path, progress=False))

    def fail_open(*args, **kwargs):
        raise AssertionError("the cached call decoded an image")

    monkeypatch.setattr(Image, "open", fail_open)
    second = load_image_cache(sample_head, SIZE, tmp_path, progress=False)

    assert isinstance(second, np.memmap)
    assert np.array_equal(second, first)


def test_one_cache_file_written(sample_head, tmp_path):
    load_image_cache(sample_head, SIZE, tmp_path, progress=False)

    assert [path.name for path in tmp_path.iterdir()] == [cache_filename(sample_head, SIZE)]
    assert cache_filename(sample_head, SIZE).startswith("images-32px-n8-")


def test_key_changes_with_size(sample_head):
    assert cache_filename(sample_head, 32) != cache_filename(sample_head, 64)


def test_key_changes_with_mtime(make_sample_copy):
    df = load_metadata(make_sample_copy(2))
    before = cache_filename(df, SIZE)
    stat = os.stat(df.loc[0, "path"])
    os.utime(df.loc[0, "path"], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    assert cache_filename(df, SIZE) != before


def test_corrupt_jpeg_raises_and_writes_nothing(make_sample_copy, tmp_path):
    df = load_metadata(make_sample_copy(3))
    with open(df.loc[1, "path"], "r+b") as f:
        f.truncate(200)
    cache_dir = tmp_path / "cache"

    with pytest.raises(DataValidationError, match=r"failed to decode image .*ISIC_0027310\.jpg \(the CSV row with image_id 'ISIC_0027310'\).*remove that row"):
        load_image_cache(df, SIZE, cache_dir, progress=False)
    assert list(cache_dir.iterdir()) == []


def test_png_modes_become_rgb(sample_head, tmp_path):
    with Image.open(sample_head.loc[0, "path"]) as image:
        rgb = image.convert("RGB")
    rgba = rgb.convert("RGBA")
    variants = {"rgb": rgb, "gray": rgb.convert("L"), "rgba": rgba, "palette": rgb.convert("P")}
    df = sample_head.head(len(variants)).copy()
    for i, (name, image) in enumerate(variants.items()):
        df.loc[i, "path"] = str(tmp_path / f"{name}.png")
        image.save(df.loc[i, "path"])

    images = load_image_cache(df, SIZE, tmp_path / "cache", progress=False)

    assert images.shape == (4, SIZE, SIZE, 3)
    assert np.array_equal(images[2], images[0])
    assert np.array_equal(images[1][..., 0], images[1][..., 2])
    assert np.abs(images[3].astype(int) - images[0].astype(int)).mean() < 8


def test_transparent_png_on_black(sample_head, tmp_path):
    image = Image.new("RGBA", (40, 30), (200, 100, 50, 0))
    path = tmp_path / "clear.png"
    image.save(path)
    df = sample_head.head(1).copy()
    df.loc[0, "path"] = str(path)

    images = load_image_cache(df, 8, tmp_path / "cache", progress=False)

    assert images.max() == 0


def test_sixteen_bit_png_scaled(sample_head, tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((30, 40), 65535, dtype=np.uint16)).save(path)
    df = sample_head.head(1).copy()
    df.loc[0, "path"] = str(path)

    images = load_image_cache(df, 8, tmp_path / "cache", progress=False)

    assert images.min() == 255


@pytest.mark.parametrize("size", [0, -4, 3.5, True, "64"])
def test_invalid_size_raises(sample_head, tmp_path, size):
    with pytest.raises(ParamsError, match=r"image_size must be a positive int"):
        load_image_cache(sample_head, size, tmp_path, progress=False)
