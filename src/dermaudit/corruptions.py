"""Image corruptions and domain shifts at five severities, in the style of ImageNet-C.

Each entry of `CORRUPTIONS` is a pure function ``(image, severity, rng) -> image``
on a uint8 RGB array of shape (H, W, 3). It returns a new array of the same shape,
dtype and range, uses no global random state, and indexes a 5-entry parameter table
with ``severity - 1`` (Hendrycks and Dietterich 2019, "Benchmarking Neural Network
Robustness to Common Corruptions and Perturbations", ICLR). Each function carries two
attributes: ``kind`` (``"corruption"`` or ``"domain_shift"``) and
``severity_params`` (its parameter table).

Limits: the parameter tables were chosen for this project by eye on dermoscopy
images, not calibrated against a measured shift between HAM10000 sources.
Blur and resolution parameters scale with the shorter image side, so a severity means
the same relative loss at 224 px and at 600 px. Noise, JPEG, brightness and color
parameters do not depend on the image size. ``color_cast`` applies its channel gains
to sRGB values, not to linear light as a camera's white balance does.
"""

import io
import logging

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter
from tqdm import tqdm  # plain text bars on stderr, also inside a notebook kernel

from dermaudit.exceptions import DataValidationError, ParamsError
from dermaudit.registry import Registry

logger = logging.getLogger(__name__)

CORRUPTIONS = Registry("corruption")
SEVERITIES = (1, 2, 3, 4, 5)

# Standard deviation of additive noise, in units of the full intensity range [0, 1].
GAUSSIAN_NOISE_STD = (0.03, 0.06, 0.10, 0.15, 0.22)
# Gaussian blur sigma as a fraction of the shorter image side: 1, 2, 3, 4 and 6 px at 224 px.
GAUSSIAN_BLUR_SIGMA = (0.0045, 0.009, 0.0135, 0.018, 0.027)
# Pillow JPEG quality (1-95). Lower quality means stronger compression.
JPEG_QUALITY = (70, 45, 25, 15, 7)
# (contrast factor around the image mean, brightness shift in units of [0, 1]).
BRIGHTNESS_CONTRAST = ((0.9, 0.05), (0.8, 0.10), (0.65, 0.15), (0.5, 0.20), (0.35, 0.25))
# Gain offset a of a warm cast: red is multiplied by 1 + a and blue by 1 - a.
COLOR_CAST_GAIN = (0.04, 0.08, 0.12, 0.17, 0.24)
# Side length after downsampling, as a fraction of the original side.
DOWNSAMPLE_SCALE = (0.6, 0.45, 0.33, 0.25, 0.17)


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def check_severity(severity):
    """Return `severity` as an int, or raise ParamsError unless it is an int from 1 to 5.

    bool and float values are rejected, even ``True`` and ``3.0``, because they
    usually mean that a parameter was read from the wrong field.
    """
    if isinstance(severity, (bool, np.bool_)) or not isinstance(severity, (int, np.integer)):
        raise ParamsError(f"severity must be an int from 1 to 5, got {severity!r} of type {type(severity).__name__}.")
    if severity not in SEVERITIES:
        raise ParamsError(f"severity must be an int from 1 to 5, got {severity}.")
    return int(severity)


def _check_image(image):
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise DataValidationError(
            f"image must be a uint8 array of shape (H, W, 3), got shape {shape} and dtype {dtype}."
        )


def _check_rng(rng):
    if not isinstance(rng, np.random.Generator):
        raise ParamsError(
            f"rng must be a numpy.random.Generator, got {type(rng).__name__}. Use numpy.random.default_rng(seed)."
        )


def _check_call(image, severity, rng):
    _check_image(image)
    _check_rng(rng)
    return check_severity(severity) - 1


def _to_uint8(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# Corruptions
# ---------------------------------------------------------------------------


@CORRUPTIONS.register("gaussian_noise", kind="corruption", severity_params=GAUSSIAN_NOISE_STD)
def gaussian_noise(image, severity, rng):
    """Add independent Gaussian noise to every pixel and channel (sensor noise).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; the noise standard deviation is ``GAUSSIAN_NOISE_STD[severity - 1]``
        of the intensity range.
    rng : numpy.random.Generator
        Source of the noise.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    noise = rng.normal(0.0, 255.0 * GAUSSIAN_NOISE_STD[level], size=image.shape)
    return _to_uint8(image + noise)


@CORRUPTIONS.register("gaussian_blur", kind="corruption", severity_params=GAUSSIAN_BLUR_SIGMA)
def gaussian_blur(image, severity, rng):
    """Blur with a Gaussian kernel (defocus, motion of the dermatoscope).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; sigma is ``GAUSSIAN_BLUR_SIGMA[severity - 1]`` times the shorter side,
        in pixels. Borders are reflected. Below about 100 px, severity 1 has a sigma
        under 0.5 px and barely changes the image.
    rng : numpy.random.Generator
        Unused; the blur is deterministic.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    sigma = GAUSSIAN_BLUR_SIGMA[level] * min(image.shape[:2])
    blurred = gaussian_filter(image.astype(np.float32), sigma=(sigma, sigma, 0), mode="reflect")
    return _to_uint8(blurred)


@CORRUPTIONS.register("jpeg_compression", kind="corruption", severity_params=JPEG_QUALITY)
def jpeg_compression(image, severity, rng):
    """Encode and decode as JPEG with Pillow (block artifacts, chroma loss).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; the JPEG quality is ``JPEG_QUALITY[severity - 1]``.
    rng : numpy.random.Generator
        Unused; the encoding is deterministic.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image), mode="RGB").save(buffer, format="JPEG", quality=JPEG_QUALITY[level])
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), dtype=np.uint8).copy()


@CORRUPTIONS.register("brightness_contrast", kind="corruption", severity_params=BRIGHTNESS_CONTRAST)
def brightness_contrast(image, severity, rng):
    """Lower the contrast around the image mean and raise the brightness (overexposure).

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; ``(factor, shift) = BRIGHTNESS_CONTRAST[severity - 1]`` maps each value
        x to ``(x - mean) * factor + mean + 255 * shift``, where mean is over all
        pixels and channels.
    rng : numpy.random.Generator
        Unused; the change is deterministic.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    factor, shift = BRIGHTNESS_CONTRAST[level]
    values = image.astype(np.float32)
    mean = values.mean()
    return _to_uint8((values - mean) * factor + mean + 255.0 * shift)


# ---------------------------------------------------------------------------
# Domain shifts
# ---------------------------------------------------------------------------


@CORRUPTIONS.register("color_cast", kind="domain_shift", severity_params=COLOR_CAST_GAIN)
def color_cast(image, severity, rng):
    """Apply a warm color cast, as from a dermatoscope with another white balance.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; with ``a = COLOR_CAST_GAIN[severity - 1]`` the red channel is
        multiplied by ``1 + a`` and the blue channel by ``1 - a``.
    rng : numpy.random.Generator
        Unused; the cast is the same for every image, as for one device.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    gain = COLOR_CAST_GAIN[level]
    channel_gains = np.array([1.0 + gain, 1.0, 1.0 - gain], dtype=np.float32)
    return _to_uint8(image.astype(np.float32) * channel_gains)


@CORRUPTIONS.register("downsample_upsample", kind="domain_shift", severity_params=DOWNSAMPLE_SCALE)
def downsample_upsample(image, severity, rng):
    """Lose resolution: downsample with box filtering, then upsample bilinearly to the original size.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3), dtype uint8
    severity : int
        1 to 5; the intermediate image has sides ``DOWNSAMPLE_SCALE[severity - 1]``
        times the original (at least 1 px).
    rng : numpy.random.Generator
        Unused; the resampling is deterministic.

    Returns
    -------
    ndarray of shape (H, W, 3), dtype uint8
    """
    level = _check_call(image, severity, rng)
    height, width = image.shape[:2]
    scale = DOWNSAMPLE_SCALE[level]
    small_size = (max(1, round(width * scale)), max(1, round(height * scale)))

    original = Image.fromarray(np.ascontiguousarray(image), mode="RGB")
    small = original.resize(small_size, resample=Image.Resampling.BOX)
    restored = small.resize((width, height), resample=Image.Resampling.BILINEAR)
    return np.asarray(restored, dtype=np.uint8).copy()


# ---------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------


def apply_corruption(name, images, severity, seed=0, progress=False):
    """Apply a registered corruption to every image of a batch.

    Parameters
    ----------
    name : str
        A name in `CORRUPTIONS`; an unknown name raises ``RegistryError`` listing the
        valid names.
    images : ndarray of shape (N, H, W, 3), dtype uint8
        The batch. It is only read, so a read-only memmap works.
    severity : int
        1 to 5.
    seed : int, default=0
        Seed of the one ``numpy.random.Generator`` used for the images in order. The
        same seed and batch give the same output. Corrupting a batch in parts with one
        seed repeats the noise of each part, so give each part its own seed or pass
        the whole batch.
    progress : bool, default=False
        Show a tqdm progress bar.

    Returns
    -------
    ndarray of shape (N, H, W, 3), dtype uint8
        A new in-memory array.
    """
    corruption = CORRUPTIONS.get(name)
    severity = check_severity(severity)
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
        raise DataValidationError(
            f"images must be a uint8 array of shape (N, H, W, 3), got shape {getattr(images, 'shape', None)} "
            f"and dtype {getattr(images, 'dtype', type(images).__name__)}."
        )

    rng = np.random.default_rng(seed)
    corrupted = np.empty(images.shape, dtype=np.uint8)
    for index in tqdm(range(images.shape[0]), desc=f"{name} s{severity}", disable=not progress):
        corrupted[index] = corruption(images[index], severity, rng)

    logger.debug("applied %s at severity %d to %d images (seed %d)", name, severity, images.shape[0], seed)
    return corrupted
