"""Deterministic synthetic dermoscopy data set in the HAM10000 layout.

When no real data is configured, this data set lets every chapter of a report run end to
end. The images are procedural drawings of lesions on skin, not models of real lesions,
so results on them are no evidence of clinical performance.

The class (dx) sets the distributions that each lesion is drawn from, and the
distributions overlap between classes:

- colour, size, border irregularity, edge sharpness and colour variegation;
- structures: pigment network and dots (mostly nv, mel), streaks and blue-white veil
  (mel), arborizing vessels and blue-grey nests (bcc), dotted vessels and white scale
  (akiec, some bkl), milia-like cysts (bkl), a central white patch (df) and red-purple
  lacunae (vasc).

About a quarter of the lesions blend their style with a confusable class (nv with mel, bcc
with akiec, and so on). About 5% of the lesions carry the label of another class than
the one drawn. ``SYNTHETIC.json`` lists the image ids of these label-noise images.
Images of one lesion differ in position, rotation, scale, lighting and artefacts.

Metadata: age, localization, dx_type and acquisition site depend mildly on dx. Site b
(``synthetic_site_b``) has a warmer, lower-contrast colour response and more akiec, bcc
and bkl, so a slice by ``dataset`` shows a domain shift. Ruler marks are three times as
frequent on mel, bcc and akiec as on the other classes, which gives a saliency map a
spurious cue to find.

Limits: the output bytes are reproducible for one seed with the same numpy and Pillow
(libjpeg) versions. Other versions may change them.
"""

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

from dermaudit.classes import CLASSES
from dermaudit.data.metadata import METADATA_FILENAME, PART_FOLDERS, SYNTHETIC_MARKER_FILENAME, is_synthetic
from dermaudit.exceptions import ParamsError
from dermaudit.io import write_json

logger = logging.getLogger(__name__)

SYNTHETIC_VERSION = 2
DEFAULT_N_IMAGES = 1600
SITES = ("synthetic_site_a", "synthetic_site_b")
MIN_IMAGES = 35
JPEG_QUALITY = 90
FIRST_IMAGE_NUMBER = 24306  # HAM10000 image ids run from ISIC_0024306; the numbering follows them.
# Own prefixes, so that no synthetic id equals a real HAM10000 id (ISIC_/HAM_) when both are used in one run.
IMAGE_ID_PREFIX = "SYNISIC_"
LESION_ID_PREFIX = "SYNHAM_"
LABEL_NOISE_FRACTION = 0.05
ATYPICAL_FRACTION = 0.25
SUPERSAMPLING = 2  # drawn structures are rendered at this factor, then reduced

# Image counts of the 10,015-image HAM10000 release, which set the class proportions.
HAM10000_COUNTS = {"akiec": 327, "bcc": 514, "bkl": 1099, "df": 115, "mel": 1113, "nv": 6705, "vasc": 142}
# Each class gets at least this share of the images, so the rarest class has about 40 of 1,600.
MIN_CLASS_SHARE = 0.025

LOCALIZATIONS = (
    "abdomen", "acral", "back", "chest", "ear", "face", "foot", "genital", "hand",
    "lower extremity", "neck", "scalp", "trunk", "unknown", "upper extremity",
)
_BASE_LOCALIZATION_WEIGHTS = dict(zip(LOCALIZATIONS, (
    0.10, 0.002, 0.22, 0.04, 0.005, 0.06, 0.03, 0.005, 0.01, 0.20, 0.02, 0.015, 0.14, 0.023, 0.10,
)))
_LOCALIZATION_FACTORS = {
    "akiec": {"face": 6, "scalp": 4, "ear": 4, "hand": 3, "upper extremity": 1.5, "back": 0.5},
    "bcc": {"face": 5, "neck": 2, "scalp": 2, "back": 1.2},
    "bkl": {"face": 3, "trunk": 1.2},
    "df": {"lower extremity": 3, "upper extremity": 1.5},
    "mel": {"back": 1.3, "upper extremity": 1.3, "face": 1.5},
    "nv": {},
    "vasc": {"trunk": 1.5, "lower extremity": 1.3, "face": 1.5},
}
AGE_MEAN = {"akiec": 67, "bcc": 66, "bkl": 63, "df": 51, "mel": 60, "nv": 45, "vasc": 50}
AGE_SD = 14.0
AGE_MISSING_FRACTION = 0.006
DX_TYPES = ("histo", "follow_up", "consensus", "confocal")
_DX_TYPE_WEIGHTS = {
    "akiec": (1, 0, 0, 0), "bcc": (1, 0, 0, 0), "bkl": (0.6, 0, 0.3, 0.1), "df": (0.55, 0, 0.45, 0),
    "mel": (1, 0, 0, 0), "nv": (0.3, 0.55, 0.15, 0), "vasc": (0.5, 0, 0.5, 0),
}
_SITE_B_PROBABILITY = {"akiec": 0.7, "bcc": 0.55, "bkl": 0.5, "df": 0.35, "mel": 0.35, "nv": 0.25, "vasc": 0.2}
# Probabilities of 1, 2, 3 and 4 images per lesion.
_IMAGES_PER_LESION = {"nv": (0.8, 0.15, 0.04, 0.01), "mel": (0.45, 0.3, 0.15, 0.1)}
_IMAGES_PER_LESION_DEFAULT = (0.55, 0.3, 0.1, 0.05)
_RULER_PROBABILITY = {"mel": 0.15, "bcc": 0.15, "akiec": 0.15}
_RULER_PROBABILITY_DEFAULT = 0.05
_HAIR_PROBABILITY = 0.3
_VIGNETTE_PROBABILITY = {"synthetic_site_a": 0.3, "synthetic_site_b": 0.15}

_CONFUSABLE = {
    "akiec": ("bcc", "bkl"), "bcc": ("akiec", "mel"), "bkl": ("mel", "nv", "akiec"), "df": ("nv", "bkl"),
    "mel": ("nv", "bkl"), "nv": ("mel", "bkl", "df"), "vasc": ("mel", "bcc"),
}

# Colours are RGB in [0, 1]. radius is a fraction of the image height, irregularity the
# amplitude of the border harmonics, edge the width of the border blur in radius units.
_STYLE_KEYS = ("color", "color2", "radius", "irregularity", "edge", "variegation")
_STYLES = {
    "akiec": ((0.76, 0.50, 0.44), (0.62, 0.34, 0.30), 0.30, 0.090, 0.14, 0.25),
    "bcc": ((0.72, 0.52, 0.52), (0.50, 0.50, 0.58), 0.28, 0.080, 0.09, 0.30),
    "bkl": ((0.58, 0.42, 0.30), (0.40, 0.27, 0.18), 0.32, 0.070, 0.04, 0.25),
    "df": ((0.60, 0.43, 0.34), (0.45, 0.30, 0.22), 0.20, 0.035, 0.16, 0.20),
    "mel": ((0.36, 0.23, 0.18), (0.15, 0.10, 0.10), 0.35, 0.130, 0.08, 0.50),
    "nv": ((0.50, 0.33, 0.22), (0.40, 0.26, 0.17), 0.27, 0.040, 0.06, 0.15),
    "vasc": ((0.62, 0.22, 0.32), (0.40, 0.15, 0.30), 0.22, 0.050, 0.05, 0.25),
}
FEATURES = (
    "network", "dots", "streaks", "veil", "arborizing_vessels", "dotted_vessels",
    "nests", "scale", "cysts", "central_patch", "lacunae",
)
_FEATURE_PROBABILITY = {
    "akiec": (0.05, 0.15, 0.00, 0.05, 0.10, 0.50, 0.00, 0.70, 0.05, 0.10, 0.00),
    "bcc": (0.00, 0.10, 0.05, 0.15, 0.75, 0.10, 0.55, 0.10, 0.00, 0.10, 0.05),
    "bkl": (0.25, 0.20, 0.05, 0.05, 0.05, 0.10, 0.00, 0.45, 0.50, 0.00, 0.00),
    "df": (0.45, 0.10, 0.00, 0.00, 0.00, 0.10, 0.00, 0.05, 0.00, 0.80, 0.00),
    "mel": (0.55, 0.60, 0.45, 0.45, 0.05, 0.10, 0.10, 0.05, 0.00, 0.10, 0.03),
    "nv": (0.65, 0.40, 0.08, 0.05, 0.00, 0.02, 0.05, 0.03, 0.03, 0.05, 0.00),
    "vasc": (0.00, 0.05, 0.00, 0.10, 0.10, 0.10, 0.00, 0.00, 0.00, 0.05, 0.90),
}
_CSV_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset")
_LIGHT_SKIN = np.array([0.95, 0.83, 0.80])
_DARK_SKIN = np.array([0.66, 0.47, 0.38])


@dataclass
class _Lesion:
    """Parameters shared by all images of one lesion.

    Lengths are in pixels, and feature positions in lesion radii.
    """

    dx: str
    drawn_dx: str
    site: str
    rng: np.random.Generator
    skin: np.ndarray
    skin_waves: np.ndarray
    color: np.ndarray
    color2: np.ndarray
    radius: float
    aspect: float
    angle: float
    center: np.ndarray
    harmonics: np.ndarray
    edge: float
    variegation: float
    center_bias: float
    variegation_waves: np.ndarray
    hairy: bool
    features: dict = field(default_factory=dict)


def generate_synthetic_dataset(root, n_images=DEFAULT_N_IMAGES, seed=0, image_size=(200, 150)):
    """Generate a synthetic HAM10000-style data set into the new folder `root`.

    The files are written into a temporary folder beside `root`, the marker file
    ``SYNTHETIC.json`` last, and the folder is then renamed to `root`, so `root` never
    contains a partial data set.

    Parameters
    ----------
    root : str or os.PathLike
        Output folder. It must not exist or be empty.
    n_images : int, default=1600
        Number of images, at least 35.
    seed : int, default=0
        Seed of every random draw. The same seed gives the same files with the same
        numpy and Pillow versions.
    image_size : tuple of int, default=(200, 150)
        (width, height) of the images in pixels, each at least 32.

    Returns
    -------
    root : pathlib.Path
        The folder, with ``HAM10000_metadata.csv`` (8 columns), the JPEGs in
        ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``, and ``SYNTHETIC.json``.

    Raises
    ------
    ParamsError
        If a parameter is invalid or `root` exists and is not empty.
    """
    width, height = _validate_generate_params(n_images, seed, image_size)
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ParamsError(f"output folder {root} already exists and is not empty. Choose a new folder or delete it.")

    root.parent.mkdir(parents=True, exist_ok=True)
    tmp_root = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        _write_dataset(tmp_root, n_images, seed, width, height)
        os.rename(tmp_root, root)
    except BaseException:
        shutil.rmtree(tmp_root, ignore_errors=True)
        raise
    logger.info("generated %d synthetic images (seed %d) in %s", n_images, seed, root)
    return root


def ensure_synthetic_dataset(cache_root, seed=0, n_images=DEFAULT_N_IMAGES):
    """Return the synthetic data set under `cache_root`, generating it if absent.

    Parameters
    ----------
    cache_root : str or os.PathLike
        Folder that contains the generated data sets.
    seed : int, default=0
        Seed of the data set.
    n_images : int, default=1600
        Number of images, at least 35.

    Returns
    -------
    root : pathlib.Path
        ``cache_root/synthetic-v{SYNTHETIC_VERSION}-seed{seed}`` for the default 1,600 images, else
        ``cache_root/synthetic-v{SYNTHETIC_VERSION}-seed{seed}-n{n_images}``. The images are 200x150
        pixels. A folder there without the marker file (left by an interrupted run)
        is deleted and generated again.
    """
    name = f"synthetic-v{SYNTHETIC_VERSION}-seed{seed}"
    if n_images != DEFAULT_N_IMAGES:
        name += f"-n{n_images}"
    root = Path(cache_root) / name
    if is_synthetic(root):
        return root
    if root.exists():
        logger.warning("deleting incomplete synthetic data set %s (no %s)", root, SYNTHETIC_MARKER_FILENAME)
        shutil.rmtree(root)

    try:
        return generate_synthetic_dataset(root, n_images=n_images, seed=seed)
    except OSError:
        # Another process may have renamed its finished copy into place first.
        if is_synthetic(root):
            return root
        raise


def _validate_generate_params(n_images, seed, image_size):
    if isinstance(n_images, bool) or not isinstance(n_images, (int, np.integer)) or n_images < MIN_IMAGES:
        raise ParamsError(f"n_images must be an int of at least {MIN_IMAGES}, got {n_images!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ParamsError(f"seed must be a non-negative int, got {seed!r}.")
    try:
        width, height = (int(value) for value in image_size)
    except (TypeError, ValueError):
        raise ParamsError(f"image_size must be (width, height) in pixels, got {image_size!r}.") from None
    if min(width, height) < 32:
        raise ParamsError(f"image_size must be at least (32, 32) pixels, got {image_size!r}.")
    return width, height


def _write_dataset(root, n_images, seed, width, height):
    """Draw the lesions, write images and CSV into `root`, and write the marker last."""
    rng = np.random.default_rng(seed)
    plan = _plan_images(n_images, rng)
    for folder in PART_FOLDERS:
        (root / folder).mkdir()

    for lesion_index, rows in plan.groupby("lesion_index", sort=False):
        first = rows.iloc[0]
        lesion = _draw_lesion(first["dx"], first["drawn_dx"], first["dataset"], seed, lesion_index, width, height)
        for row in rows.itertuples():
            image = _render_image(lesion, width, height)
            Image.fromarray(image).save(root / row.part / f"{row.image_id}.jpg", quality=JPEG_QUALITY)

    plan[list(_CSV_COLUMNS)].to_csv(root / METADATA_FILENAME, index=False)
    write_json(root / SYNTHETIC_MARKER_FILENAME, _marker(plan, seed, width, height))


def _marker(plan, seed, width, height):
    noisy = plan.loc[plan["dx"] != plan["drawn_dx"], "image_id"]
    return {
        "generator": "dermaudit.data.synthetic",
        "version": SYNTHETIC_VERSION,
        "seed": int(seed),
        "n_images": len(plan),
        "n_lesions": int(plan["lesion_id"].nunique()),
        "image_size": [width, height],
        "class_counts": {dx: int((plan["dx"] == dx).sum()) for dx in CLASSES},
        "site_counts": {site: int((plan["dataset"] == site).sum()) for site in SITES},
        "label_noise_image_ids": sorted(noisy),
    }


# --- Planning: class counts, lesions and metadata -------------------------------------


def _class_image_counts(n_images):
    """Return the number of images per class: HAM10000 shares, with a floor for rare classes."""
    total = sum(HAM10000_COUNTS.values())
    floor = max(3, round(MIN_CLASS_SHARE * n_images))
    counts = {dx: max(floor, round(n_images * count / total)) for dx, count in HAM10000_COUNTS.items() if dx != "nv"}
    counts["nv"] = n_images - sum(counts.values())
    return {dx: counts[dx] for dx in CLASSES}


def _lesion_sizes(dx, n_class_images, rng):
    probabilities = _IMAGES_PER_LESION.get(dx, _IMAGES_PER_LESION_DEFAULT)
    sizes = []
    while sum(sizes) < n_class_images:
        size = int(rng.choice(4, p=probabilities)) + 1
        sizes.append(min(size, n_class_images - sum(sizes)))
    return sizes


def _plan_images(n_images, rng):
    """Return one row per image with ids, metadata, drawn class and output folder."""
    lesion_dx = []
    for dx, n_class_images in _class_image_counts(n_images).items():
        lesion_dx += [(dx, size) for size in _lesion_sizes(dx, n_class_images, rng)]
    order = rng.permutation(len(lesion_dx))
    lesion_numbers = rng.choice(max(10_000, 2 * len(lesion_dx)), size=len(lesion_dx), replace=False)

    rows = []
    for lesion_index, position in enumerate(order):
        dx, size = lesion_dx[position]
        lesion_meta = _draw_lesion_metadata(dx, rng)
        lesion_meta["lesion_id"] = f"{LESION_ID_PREFIX}{lesion_numbers[lesion_index]:07d}"
        rows += [dict(lesion_meta, lesion_index=lesion_index) for _ in range(size)]
    plan = pd.DataFrame(rows)

    image_numbers = FIRST_IMAGE_NUMBER + rng.permutation(n_images)
    plan["image_id"] = [f"{IMAGE_ID_PREFIX}{number:07d}" for number in image_numbers]
    first_part_2 = FIRST_IMAGE_NUMBER + n_images // 2
    plan["part"] = np.where(image_numbers < first_part_2, PART_FOLDERS[0], PART_FOLDERS[1])
    return plan


def _draw_lesion_metadata(dx, rng):
    """Draw the metadata that all images of one lesion share."""
    drawn_dx = dx
    if rng.random() < LABEL_NOISE_FRACTION:
        drawn_dx = str(rng.choice(_CONFUSABLE[dx]))

    age = float(np.clip(5 * round(rng.normal(AGE_MEAN[dx], AGE_SD) / 5), 0, 85))
    if rng.random() < AGE_MISSING_FRACTION:
        age = np.nan

    factors = _LOCALIZATION_FACTORS[dx]
    weights = np.array([_BASE_LOCALIZATION_WEIGHTS[name] * factors.get(name, 1) for name in LOCALIZATIONS])
    return {
        "dx": dx,
        "drawn_dx": drawn_dx,
        "dx_type": str(rng.choice(DX_TYPES, p=np.array(_DX_TYPE_WEIGHTS[dx]) / sum(_DX_TYPE_WEIGHTS[dx]))),
        "age": age,
        "sex": str(rng.choice(("male", "female", "unknown"), p=(0.53, 0.46, 0.01))),
        "localization": str(rng.choice(LOCALIZATIONS, p=weights / weights.sum())),
        "dataset": SITES[int(rng.random() < _SITE_B_PROBABILITY[dx])],
    }


# --- Lesion style ---------------------------------------------------------------------


def _draw_lesion(dx, drawn_dx, site, seed, lesion_index, width, height):
    """Draw the parameters of one lesion from the style of `drawn_dx`."""
    rng = np.random.default_rng([seed, lesion_index])
    style, feature_probability = _blended_style(drawn_dx, rng)
    tone = rng.beta(1.5, 3.0)
    skin = _LIGHT_SKIN + tone * (_DARK_SKIN - _LIGHT_SKIN) + rng.normal(0, 0.015, 3)
    # Lesions on darker skin are darker, and each lesion varies in brightness and hue.
    brightness = rng.normal(1.0, 0.08) * (1.0 - 0.3 * tone)
    lesion = _Lesion(
        dx=dx, drawn_dx=drawn_dx, site=site, rng=rng,
        skin=_rgb(skin),
        skin_waves=_random_waves(rng, 8, 1 / 90, 1 / 30, 0.025),
        color=_rgb(np.array(style["color"]) * brightness + rng.normal(0, 0.025, 3)),
        color2=_rgb(np.array(style["color2"]) * brightness + rng.normal(0, 0.025, 3)),
        radius=style["radius"] * height * rng.lognormal(0, 0.2),
        aspect=rng.uniform(0.7, 1.0),
        angle=rng.uniform(0, 2 * np.pi),
        center=np.array([width, height]) / 2 + rng.normal(0, 0.04, 2) * height,
        harmonics=_border_harmonics(style["irregularity"] * rng.lognormal(0, 0.4), rng),
        edge=style["edge"] * rng.lognormal(0, 0.3),
        variegation=style["variegation"] * rng.lognormal(0, 0.3),
        center_bias=rng.uniform(-0.2, 0.4),
        variegation_waves=_random_waves(rng, 4, 0.8, 2.5, 1.0),
        hairy=bool(rng.random() < _HAIR_PROBABILITY),
    )
    for name, probability in zip(FEATURES, feature_probability):
        if rng.random() < probability:
            lesion.features[name] = _FEATURE_DRAWERS[name](lesion, rng)
    return lesion


def _blended_style(drawn_dx, rng):
    """Return the style and feature probabilities, blended with a confusable class for some lesions."""
    style = dict(zip(_STYLE_KEYS, _STYLES[drawn_dx]))
    probability = np.array(_FEATURE_PROBABILITY[drawn_dx])
    if rng.random() < ATYPICAL_FRACTION:
        other = str(rng.choice(_CONFUSABLE[drawn_dx]))
        weight = rng.uniform(0.25, 0.6)
        for key, value in zip(_STYLE_KEYS, _STYLES[other]):
            style[key] = (1 - weight) * np.asarray(style[key]) + weight * np.asarray(value)
        probability = (1 - weight) * probability + weight * np.array(_FEATURE_PROBABILITY[other])
    return style, probability


def _rgb(values):
    """Return an RGB colour as a float32 array clipped to [0.02, 0.98]."""
    return np.clip(np.asarray(values, dtype=np.float32), 0.02, 0.98)


def _random_waves(rng, n_waves, min_frequency, max_frequency, amplitude):
    """Return (n_waves, 4) rows of (frequency_x, frequency_y, phase, amplitude) in radians per unit."""
    frequency = rng.uniform(min_frequency, max_frequency, n_waves) * 2 * np.pi
    direction = rng.uniform(0, 2 * np.pi, n_waves)
    return np.column_stack([
        frequency * np.cos(direction), frequency * np.sin(direction),
        rng.uniform(0, 2 * np.pi, n_waves), np.full(n_waves, amplitude / np.sqrt(n_waves)),
    ]).astype(np.float32)


def _border_harmonics(irregularity, rng):
    orders = np.arange(2, 9)
    amplitude = irregularity * rng.uniform(0.3, 1.0, len(orders)) / np.sqrt(orders - 1)
    return np.column_stack([orders, amplitude, rng.uniform(0, 2 * np.pi, len(orders))])


def _points_inside(rng, n_points, max_radius):
    """Return (n_points, 2) points uniform in a disc of `max_radius` lesion radii."""
    radius = max_radius * np.sqrt(rng.random(n_points))
    angle = rng.uniform(0, 2 * np.pi, n_points)
    return np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])


def _draw_network(lesion, rng):
    cell = rng.uniform(7, 11) if lesion.drawn_dx != "mel" else rng.uniform(6, 13)
    return dict(
        frequency=2 * np.pi * lesion.radius / cell, strength=rng.uniform(0.12, 0.35),
        warp=_random_waves(rng, 3, 0.5, 1.5, rng.uniform(0.05, 0.3)),
    )


def _draw_dots(lesion, rng):
    count = int(rng.integers(5, 30))
    dark = lesion.color2 * rng.uniform(0.4, 0.8)
    spread = 1.0 if lesion.drawn_dx == "mel" else rng.uniform(0.5, 0.9)
    return dict(points=_points_inside(rng, count, spread), sizes=rng.uniform(0.8, 2.2, count), color=dark)


def _draw_streaks(lesion, rng):
    count = int(rng.integers(4, 14))
    angles = rng.uniform(0, 2 * np.pi, count)
    return dict(angles=angles, lengths=rng.uniform(0.2, 0.4, count), color=lesion.color2 * 0.7)


def _draw_veil(lesion, rng):
    return dict(center=_points_inside(rng, 1, 0.4)[0], size=rng.uniform(0.35, 0.6), strength=rng.uniform(0.4, 0.75))


def _draw_arborizing_vessels(lesion, rng):
    segments = []
    for _ in range(int(rng.integers(2, 5))):
        point, heading = _points_inside(rng, 1, 0.6)[0], rng.uniform(0, 2 * np.pi)
        for _ in range(int(rng.integers(6, 14))):
            heading += rng.normal(0, 0.5)
            end = point + rng.uniform(0.06, 0.14) * np.array([np.cos(heading), np.sin(heading)])
            segments.append((point, end))
            if rng.random() < 0.3:
                branch = heading + rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
                segments.append((end, end + 0.1 * np.array([np.cos(branch), np.sin(branch)])))
            point = end
    return dict(segments=segments, color=_rgb(np.array([0.78, 0.16, 0.20]) + rng.normal(0, 0.04, 3)))


def _draw_dotted_vessels(lesion, rng):
    count = int(rng.integers(10, 40))
    points = _points_inside(rng, count, 0.85)
    return dict(points=points, sizes=rng.uniform(0.6, 1.1, count), color=np.array([0.75, 0.2, 0.22]))


def _draw_nests(lesion, rng):
    count = int(rng.integers(2, 8))
    points = _points_inside(rng, count, 0.7)
    return dict(points=points, sizes=rng.uniform(2.0, 4.5, count), color=np.array([0.36, 0.39, 0.50]))


def _draw_scale(lesion, rng):
    waves = _random_waves(rng, 9, 2.0, 6.0, 1.0)
    return dict(waves=waves, threshold=rng.uniform(0.1, 0.6), strength=rng.uniform(0.5, 0.85))


def _draw_cysts(lesion, rng):
    count = int(rng.integers(3, 12))
    points = _points_inside(rng, count, 0.8)
    return dict(points=points, sizes=rng.uniform(1.0, 2.0, count), color=np.array([0.95, 0.92, 0.80]))


def _draw_central_patch(lesion, rng):
    return dict(center=rng.normal(0, 0.08, 2), size=rng.uniform(0.3, 0.55), strength=rng.uniform(0.5, 0.85))


def _draw_lacunae(lesion, rng):
    count = int(rng.integers(6, 20))
    shade = rng.uniform(0, 1, (count, 1))
    colors = (1 - shade) * np.array([0.78, 0.14, 0.22]) + shade * np.array([0.35, 0.08, 0.28])
    return dict(points=_points_inside(rng, count, 0.75), sizes=rng.uniform(0.12, 0.25, count), colors=colors)


_FEATURE_DRAWERS = {
    "network": _draw_network, "dots": _draw_dots, "streaks": _draw_streaks, "veil": _draw_veil,
    "arborizing_vessels": _draw_arborizing_vessels, "dotted_vessels": _draw_dotted_vessels,
    "nests": _draw_nests, "scale": _draw_scale, "cysts": _draw_cysts,
    "central_patch": _draw_central_patch, "lacunae": _draw_lacunae,
}


# --- Rendering ------------------------------------------------------------------------


@dataclass
class _Pose:
    """Camera pose of one image: lesion center (x, y) in px, rotation in rad and scale factor."""

    center: np.ndarray
    angle: float
    scale: float

    def to_image(self, lesion, points):
        """Map (n, 2) points in lesion units to (n, 2) image pixel coordinates."""
        local = points * np.array([1.0, lesion.aspect]) * lesion.radius * self.scale
        cos, sin = float(np.cos(self.angle)), float(np.sin(self.angle))
        return np.column_stack([
            self.center[0] + cos * local[:, 0] - sin * local[:, 1],
            self.center[1] + sin * local[:, 0] + cos * local[:, 1],
        ])


def _render_image(lesion, width, height):
    """Render one image of `lesion` as a (height, width, 3) uint8 array."""
    rng = lesion.rng
    pose = _Pose(
        center=lesion.center + rng.normal(0, 0.04, 2) * np.array([width, height]),
        angle=lesion.angle + rng.normal(0, 0.3),
        scale=rng.uniform(0.9, 1.1),
    )
    u, v = _lesion_coordinates(lesion, pose, width, height)

    alpha, distance = _lesion_mask(lesion, u, v)
    image = _skin_layer(lesion, u, v, rng)
    body = _body_color(lesion, u, v, distance)
    body = _apply_field_features(lesion, body, u, v, alpha)
    image = image * (1 - alpha[..., None]) + body * alpha[..., None]

    image = _composite(image, _drawn_features(lesion, pose, width, height, rng))
    return _finish(image, lesion.site, rng)


def _lesion_coordinates(lesion, pose, width, height):
    """Return pixel coordinates in lesion units: (u, v) of shape (height, width), 1 at the border."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = x - float(pose.center[0]), y - float(pose.center[1])
    cos, sin = float(np.cos(pose.angle)), float(np.sin(pose.angle))
    scale = float(lesion.radius * pose.scale)
    u = (cos * dx + sin * dy) / scale
    v = (-sin * dx + cos * dy) / (scale * float(lesion.aspect))
    return u, v


def _lesion_mask(lesion, u, v):
    """Return the soft lesion mask and the distance relative to the irregular border."""
    rho = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    border = np.ones_like(rho)
    for order, amplitude, phase in lesion.harmonics.tolist():
        border += amplitude * np.cos(order * phi + phase)
    distance = rho / np.maximum(border, 0.3)
    alpha = 1.0 / (1.0 + np.exp(np.clip((distance - 1.0) / float(lesion.edge), -30, 30)))
    return alpha, distance


def _wave_field(waves, u, v):
    total = np.zeros_like(u)
    # Python floats keep the float32 dtype of u and v (NumPy 2 promotion rules).
    for fx, fy, phase, amplitude in waves.tolist():
        total += amplitude * np.sin(fx * u + fy * v + phase)
    return total


def _skin_layer(lesion, u, v, rng):
    # Skin texture moves with the lesion, so it is drawn in pixel units of the lesion frame.
    radius = float(lesion.radius)
    blotches = _wave_field(lesion.skin_waves, u * radius, v * radius)
    pores = 0.015 * rng.standard_normal(u.shape, dtype=np.float32)
    return lesion.skin[None, None, :] * (1 + blotches + pores)[..., None]


def _body_color(lesion, u, v, distance):
    mix = float(lesion.variegation) * _wave_field(lesion.variegation_waves, u, v)
    mix += float(lesion.center_bias) * np.clip(1 - distance, 0, 1)
    mix = np.clip(0.3 + mix, 0, 1)[..., None]
    return lesion.color * (1 - mix) + lesion.color2 * mix


def _apply_field_features(lesion, body, u, v, alpha):
    """Apply the features that are functions of position: network, scale, veil, central patch."""
    features = lesion.features
    if "network" in features:
        net = features["network"]
        warp = _wave_field(net["warp"], u, v)
        frequency = float(net["frequency"])
        lines = np.exp(-((1 + np.cos(frequency * (u + warp))) ** 2) / 0.2)
        lines = np.maximum(lines, np.exp(-((1 + np.cos(frequency * (v - warp))) ** 2) / 0.2))
        body = body * (1 - float(net["strength"]) * lines * alpha)[..., None]
    if "central_patch" in features:
        body = _blend_blob(body, u, v, features["central_patch"], _rgb([0.92, 0.86, 0.82]))
    if "veil" in features:
        body = _blend_blob(body, u, v, features["veil"], _rgb([0.48, 0.53, 0.62]))
    if "scale" in features:
        scale = features["scale"]
        flakes = np.clip((_wave_field(scale["waves"], u, v) - float(scale["threshold"])) * 4, 0, 1)
        body = _blend(body, _rgb([0.94, 0.91, 0.84]), float(scale["strength"]) * flakes * alpha)
    return body


def _blend_blob(body, u, v, blob, color):
    center_u, center_v = blob["center"].tolist()
    squared = (u - center_u) ** 2 + (v - center_v) ** 2
    return _blend(body, color, float(blob["strength"]) * np.exp(squared * (-1.0 / float(blob["size"]) ** 2)))


def _blend(image, color, weight):
    weight = weight[..., None]
    return image * (1 - weight) + color * weight


def _drawn_features(lesion, pose, width, height, rng):
    """Draw dots, lines and artefacts at SUPERSAMPLING times the size, then reduce them.

    Returns the premultiplied colour, shape (height, width, 3), and the coverage, shape
    (height, width), both float32 in [0, 1].
    """
    factor = SUPERSAMPLING
    color_layer = Image.new("RGB", (width * factor, height * factor))
    coverage_layer = Image.new("L", (width * factor, height * factor))
    canvas = _Canvas(ImageDraw.Draw(color_layer), ImageDraw.Draw(coverage_layer), factor)

    features = lesion.features
    for name in ("nests", "dots", "cysts", "dotted_vessels"):
        if name in features:
            spec = features[name]
            canvas.dots(pose.to_image(lesion, spec["points"]), spec["sizes"], spec["color"])
    if "lacunae" in features:
        spec = features["lacunae"]
        sizes = spec["sizes"] * lesion.radius * pose.scale
        for point, size, color in zip(pose.to_image(lesion, spec["points"]), sizes, spec["colors"]):
            canvas.dots(point[None], [size], color, opacity=0.9)
    if "streaks" in features:
        _draw_streak_lines(canvas, lesion, pose, features["streaks"])
    if "arborizing_vessels" in features:
        spec = features["arborizing_vessels"]
        for start, end in spec["segments"]:
            canvas.line(pose.to_image(lesion, np.array([start, end])), spec["color"], width=0.8)

    _draw_artefacts(canvas, lesion, width, height, rng)
    size = (width, height)
    color = np.asarray(color_layer.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255
    coverage = np.asarray(coverage_layer.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255
    return color, coverage


class _Canvas:
    """Pair of PIL drawings (premultiplied colour and coverage) in final-image pixel units."""

    def __init__(self, color_draw, coverage_draw, factor):
        self.color_draw, self.coverage_draw, self.factor = color_draw, coverage_draw, factor

    def _fills(self, color, opacity):
        rgb = tuple(int(round(255 * opacity * c)) for c in np.clip(color, 0, 1))
        return rgb, int(round(255 * opacity))

    def dots(self, points, sizes, color, opacity=0.85):
        rgb, coverage = self._fills(color, opacity)
        for (x, y), size in zip(points * self.factor, np.asarray(sizes) * self.factor):
            box = (x - size, y - size, x + size, y + size)
            self.color_draw.ellipse(box, fill=rgb)
            self.coverage_draw.ellipse(box, fill=coverage)

    def line(self, points, color, width, opacity=0.85):
        rgb, coverage = self._fills(color, opacity)
        xy = [tuple(point) for point in points * self.factor]
        line_width = max(1, int(round(width * self.factor)))
        self.color_draw.line(xy, fill=rgb, width=line_width, joint="curve")
        self.coverage_draw.line(xy, fill=coverage, width=line_width, joint="curve")


def _draw_streak_lines(canvas, lesion, pose, spec):
    border = np.ones(len(spec["angles"]))
    for order, amplitude, phase in lesion.harmonics:
        border += amplitude * np.cos(order * spec["angles"] + phase)
    directions = np.column_stack([np.cos(spec["angles"]), np.sin(spec["angles"])])
    for direction, radius, length in zip(directions, border, spec["lengths"]):
        points = np.array([direction * radius * (1 - length), direction * radius * (1 + 0.5 * length)])
        canvas.line(pose.to_image(lesion, points), spec["color"], width=1.0)


def _draw_artefacts(canvas, lesion, width, height, rng):
    if lesion.hairy:
        for _ in range(int(rng.integers(1, 7))):
            start = rng.uniform(0, 1, 2) * np.array([width, height])
            control = rng.uniform(0, 1, 2) * np.array([width, height])
            end = rng.uniform(0, 1, 2) * np.array([width, height])
            t = np.linspace(0, 1, 20)[:, None]
            curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end
            canvas.line(curve, np.array([0.15, 0.11, 0.09]), width=rng.uniform(0.4, 0.9), opacity=0.85)
    if rng.random() < _RULER_PROBABILITY.get(lesion.dx, _RULER_PROBABILITY_DEFAULT):
        _draw_ruler(canvas, width, height, rng)


def _draw_ruler(canvas, width, height, rng):
    color = np.array([0.05, 0.05, 0.05]) if rng.random() < 0.6 else np.array([0.95, 0.95, 0.95])
    base = rng.uniform(0.04, 0.12) * height
    if rng.random() < 0.5:
        base = height - base
    inward = 1 if base < height / 2 else -1
    spacing = rng.uniform(6, 10)
    canvas.line(np.array([[0, base], [width, base]]), color, width=1.0)
    for index, x in enumerate(np.arange(rng.uniform(0, spacing), width, spacing)):
        length = 8 if index % 5 == 0 else 4
        canvas.line(np.array([[x, base], [x, base + inward * length]]), color, width=0.8)


def _composite(image, drawn):
    color, coverage = drawn
    return image * (1 - coverage[..., None]) + color


def _finish(image, site, rng):
    """Apply lighting, vignette, site colour response and noise; return uint8."""
    height, width = image.shape[:2]
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    gradient_x, gradient_y = rng.normal(0, 0.04, 2).tolist()
    light = rng.uniform(0.93, 1.07) * (1 + gradient_x * (x / width - 0.5) + gradient_y * (y / height - 0.5))
    image = image * light[..., None] * _rgb(1 + rng.normal(0, 0.02, 3))

    if rng.random() < _VIGNETTE_PROBABILITY[site]:
        radius = np.hypot(x - width / 2, y - height / 2) / np.hypot(width / 2, height / 2)
        image = image * (1 - np.clip((radius - rng.uniform(0.75, 0.95)) / 0.08, 0, 1))[..., None]
    if site == SITES[1]:
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = (mean + 0.88 * (image - mean)) * _rgb([1.05, 0.99, 0.92])

    image = image + 0.01 * rng.standard_normal(image.shape, dtype=np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
