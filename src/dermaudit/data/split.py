"""Train/validation/test split grouped by lesion and stratified by diagnosis.

HAM10000 has 1 to 6 images per lesion, and images of one lesion are near duplicates.
Putting them in different splits would leak test images into training, so every split
here keeps all images of a lesion together.

Limits: fractions are met per class in image counts by a greedy assignment, so a class
with few lesions, or with one lesion much larger than the others, can miss its target
by a lesion. A class with fewer than 3 lesions goes entirely to ``train`` (with a warning).
"""

import logging
import numbers
import warnings

import numpy as np
import pandas as pd

from dermaudit.exceptions import DataValidationError, ParamsError
from dermaudit.io import atomic_path

logger = logging.getLogger(__name__)

SPLIT_NAMES = ("train", "val", "test")


def split_by_lesion(df, fractions=(0.70, 0.15, 0.15), seed=0):
    """Assign each image to train, val or test, keeping the images of a lesion together.

    Within each dx class the lesions are shuffled with `seed`, one lesion is set aside
    for val and one for test, and the others go, largest first, to the split that is
    furthest below its target image count. A class therefore needs at least 3 lesions
    to appear in every split.

    Parameters
    ----------
    df : pandas.DataFrame of shape (n_images, n_columns)
        Metadata with columns ``lesion_id`` and ``dx``, as from
        :func:`dermaudit.data.load_metadata`.
    fractions : sequence of 3 float, default=(0.70, 0.15, 0.15)
        Target share of each class's images in train, val and test. Each must be
        positive and they must sum to 1.
    seed : int, default=0
        Seed of the lesion shuffle. The same data and seed give the same split.

    Returns
    -------
    split : pandas.Series of shape (n_images,)
        ``"train"``, ``"val"`` or ``"test"`` for each row, with the index of `df` and
        the name ``"split"``.

    Raises
    ------
    ParamsError
        If `fractions` is not 3 positive numbers that sum to 1.
    DataValidationError
        If a column is missing or a lesion has two different dx values.
    """
    fractions = _validate_fractions(fractions)
    lesions = _lesion_table(df)
    rng = np.random.default_rng(seed)

    lesion_split = {}
    for dx, group in lesions.groupby("dx", sort=True):
        lesion_split.update(_split_class(dx, group, fractions, rng))

    split = df["lesion_id"].map(lesion_split).astype(object).rename("split")
    logger.info("split %d images: %s", len(split), split.value_counts().reindex(SPLIT_NAMES, fill_value=0).to_dict())
    return split


def write_split(df, split, path):
    """Write the image_id, lesion_id, dx and split of each image to a CSV file atomically.

    Parameters
    ----------
    df : pandas.DataFrame of shape (n_images, n_columns)
        Metadata with columns ``image_id``, ``lesion_id`` and ``dx``.
    split : pandas.Series of shape (n_images,)
        Output of :func:`split_by_lesion` for `df`.
    path : str or os.PathLike
        CSV file to write. Parent folders are created.

    Raises
    ------
    DataValidationError
        If `split` does not have the index of `df`, or contains a value other than
        train, val and test.
    """
    if not split.index.equals(df.index):
        raise DataValidationError(
            "split and df have different indexes. Pass the Series that split_by_lesion returned for this df."
        )
    invalid = sorted(set(split.unique()) - set(SPLIT_NAMES))
    if invalid:
        raise DataValidationError(f"split contains invalid values {invalid}. Expected only {list(SPLIT_NAMES)}.")

    table = df[["image_id", "lesion_id", "dx"]].assign(split=split.to_numpy())
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)
    logger.info("wrote split of %d images to %s", len(table), path)


def _validate_fractions(fractions):
    try:
        values = list(fractions)
    except TypeError:
        values = None
    if values is None or len(values) != 3:
        raise ParamsError(f"fractions must be 3 numbers (train, val, test), got {fractions!r}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
            raise ParamsError(f"fractions must be positive numbers, got {fractions!r}.")
    if not np.isclose(sum(values), 1.0, rtol=0, atol=1e-6):
        raise ParamsError(f"fractions must sum to 1, got {fractions!r} (sum {sum(values):.6g}).")
    return np.array(values, dtype=float)


def _lesion_table(df):
    """Return one row per lesion with its dx and image count, in first-appearance order."""
    missing = [column for column in ("lesion_id", "dx") if column not in df.columns]
    if missing:
        raise DataValidationError(f"df has no column {missing}. Load it with dermaudit.data.load_metadata.")

    per_lesion = df.groupby("lesion_id", sort=False)["dx"]
    n_dx = per_lesion.nunique()
    if (n_dx > 1).any():
        bad = list(n_dx.index[n_dx > 1][:5])
        raise DataValidationError(
            f"lesions {bad} have more than one dx value. All images of a lesion must share one diagnosis."
        )
    return pd.DataFrame({"dx": per_lesion.first(), "n_images": per_lesion.size()})


def _split_class(dx, group, fractions, rng):
    """Return a dict lesion_id -> split name for the lesions of one class."""
    order = rng.permutation(len(group))
    lesion_ids = group.index.to_numpy()[order]
    n_images = group["n_images"].to_numpy()[order]

    if len(lesion_ids) < len(SPLIT_NAMES):
        warnings.warn(
            f"class {dx!r} has {len(lesion_ids)} lesions, fewer than 3, so all of them go to train "
            "and val and test have no images of it.",
            stacklevel=3,
        )
        return dict.fromkeys(lesion_ids, "train")

    # The two smallest lesions seed val and test, which keeps those splits from
    # overshooting when the class is small.
    by_size = np.argsort(n_images, kind="stable")
    assignment = np.full(len(lesion_ids), -1)
    assignment[by_size[0]] = 1
    assignment[by_size[1]] = 2

    targets = fractions * n_images.sum()
    counts = np.array([0.0, n_images[by_size[0]], n_images[by_size[1]]])
    for index in by_size[2:][::-1]:
        target_split = int(np.argmax(targets - counts))
        assignment[index] = target_split
        counts[target_split] += n_images[index]
    return {lesion_id: SPLIT_NAMES[s] for lesion_id, s in zip(lesion_ids, assignment)}
