"""Data slices of HAM10000 and per-slice metrics.

Each entry of `SLICES` is a function ``(df, images) -> pandas.Series`` that returns a
string group label for every row of the metadata `df`, with df's index. `images` is
the uint8 array of shape (N, H, W, 3) aligned with the rows of `df`, or None. An
entry raises ``SliceUnavailableError`` with the reason when the slice cannot be formed
on this data. Ordered slices (quartiles, age bands) return an ordered categorical
Series of strings so that groups sort in their natural order.

Limits: quartiles are computed on the evaluated data itself, so their edges differ
between test sets. Per-group intervals assume that the groups in one slice are
scored independently, and there is no correction for comparing many groups.
"""

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning

from dermaudit.classes import CLASSES
from dermaudit.exceptions import DataValidationError, ParamsError, SliceUnavailableError
from dermaudit.metrics import check_predictions, evaluate_predictions
from dermaudit.registry import Registry

logger = logging.getLogger(__name__)

SLICES = Registry("slice")
SLICE_METRICS = ("accuracy", "balanced_accuracy", "macro_auroc")
MISSING_LABEL = "missing"

AGE_BAND_EDGES = (30, 45, 60, 75)
AGE_BAND_LABELS = ("<30", "30-44", "45-59", "60-74", "75+")
# ITU-R BT.601 luma weights for R, G and B.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
_LUMINANCE_CHUNK = 64


# ---------------------------------------------------------------------------
# Slice definitions
# ---------------------------------------------------------------------------


def _require_column(df, column):
    if column not in df.columns:
        raise SliceUnavailableError(f"the metadata has no {column!r} column.")
    return df[column]


def _categorical_labels(df, column, name):
    values = _require_column(df, column)
    labels = values.astype(object).where(values.notna(), MISSING_LABEL).astype(str)
    return labels.rename(name)


def _quartile_labels(values, lowest, highest, name, quantity):
    """Split `values` into quartiles labeled "Q1 (lowest)", "Q2", "Q3", "Q4 (highest)"."""
    labels = [f"Q1 ({lowest})", "Q2", "Q3", f"Q4 ({highest})"]
    try:
        quartiles = pd.qcut(values, 4, labels=labels)
    except ValueError as error:
        unique = values.dropna().unique()
        if unique.size == 0:
            detail = "every value is missing"
        elif unique.size == 1:
            detail = f"all values are {unique[0]:g}"
        else:
            detail = f"only {unique.size} distinct values give repeated quartile edges"
        raise SliceUnavailableError(f"quartiles of {quantity} cannot be formed: {detail} ({error}).") from None
    return pd.Series(quartiles, index=values.index, name=name)


def mean_luminance(images):
    """Compute the mean BT.601 luma of each image, shape (N,), in 0-255 units.

    Images are converted in chunks of 64, so a memmap of the whole data set is read
    once without a float copy of all of it.
    """
    luminance = np.empty(images.shape[0])
    for start in range(0, images.shape[0], _LUMINANCE_CHUNK):
        chunk = images[start : start + _LUMINANCE_CHUNK].astype(np.float64)
        luminance[start : start + _LUMINANCE_CHUNK] = (chunk @ LUMA_WEIGHTS).mean(axis=(1, 2))
    return luminance


@SLICES.register("brightness_quartile")
def brightness_quartile(df, images):
    """Group images by quartile of mean luminance: "Q1 (darkest)" to "Q4 (brightest)"."""
    if images is None:
        raise SliceUnavailableError("no images were given, and brightness is measured on the pixels.")
    luminance = pd.Series(mean_luminance(images), index=df.index)
    return _quartile_labels(luminance, "darkest", "brightest", "brightness_quartile", "mean luminance")


@SLICES.register("file_size_quartile")
def file_size_quartile(df, images):
    """Group images by quartile of JPEG file size in bytes: "Q1 (smallest)" to "Q4 (largest)".

    HAM10000 images all have 600 x 450 pixels, so the file size measures image content
    and compression rather than resolution. Rows with a missing size are labeled
    "missing".
    """
    sizes = _require_column(df, "file_size").astype(float)
    labels = _quartile_labels(sizes, "smallest", "largest", "file_size_quartile", "file size")
    if sizes.isna().any():
        labels = labels.cat.add_categories([MISSING_LABEL]).fillna(MISSING_LABEL)
    return labels


@SLICES.register("sex")
def sex(df, images):
    """Group by the ``sex`` column, labeling missing values "missing"."""
    return _categorical_labels(df, "sex", "sex")


@SLICES.register("age_band")
def age_band(df, images):
    """Group by age band: "<30", "30-44", "45-59", "60-74", "75+" and "missing"."""
    ages = _require_column(df, "age").astype(float)
    edges = [-np.inf, *AGE_BAND_EDGES, np.inf]
    bands = pd.cut(ages, edges, right=False, labels=list(AGE_BAND_LABELS))
    bands = bands.cat.add_categories([MISSING_LABEL]).fillna(MISSING_LABEL)
    return bands.rename("age_band")


@SLICES.register("localization")
def localization(df, images):
    """Group by the body site in the ``localization`` column."""
    return _categorical_labels(df, "localization", "localization")


@SLICES.register("dx_type")
def dx_type(df, images):
    """Group by how the diagnosis was confirmed (``dx_type``: histo, follow_up, consensus, confocal)."""
    return _categorical_labels(df, "dx_type", "dx_type")


@SLICES.register("dataset")
def dataset(df, images):
    """Group by the source collection in the optional ``dataset`` column."""
    return _categorical_labels(df, "dataset", "dataset")


# ---------------------------------------------------------------------------
# Per-slice evaluation
# ---------------------------------------------------------------------------


def _check_inputs(df, images, y_true, y_prob, min_group_size):
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"df must be a pandas DataFrame of metadata, got {type(df).__name__}.")
    y_true, y_prob = check_predictions(y_true, y_prob, n_classes=len(CLASSES))
    if len(df) != y_true.size:
        raise DataValidationError(f"df has {len(df)} rows but y_true has {y_true.size} samples. Align them row by row.")
    if images is not None and np.shape(images)[0] != len(df):
        raise DataValidationError(f"images has {np.shape(images)[0]} images but df has {len(df)} rows.")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, (int, np.integer)) or min_group_size < 1:
        raise ParamsError(f"min_group_size must be a positive int, got {min_group_size!r}.")
    return y_true, y_prob


def _group_row(slice_name, group, y_true, y_prob, lesion_ids, bootstrap):
    with warnings.catch_warnings():
        # Small groups often lack classes. The caller counts the undefined values instead.
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        result = evaluate_predictions(y_true, y_prob, groups=lesion_ids, **bootstrap)

    row = {"slice": slice_name, "group": str(group), "n": int(y_true.size)}
    row.update({class_name: int(np.sum(y_true == k)) for k, class_name in enumerate(CLASSES)})
    for metric in SLICE_METRICS:
        entry = result["overall"][metric]
        row.update({metric: entry["value"], f"{metric}_ci_low": entry["ci_low"], f"{metric}_ci_high": entry["ci_high"]})
    row["n_auroc_classes"] = sum(not np.isnan(result["per_class"][c]["auroc"]["value"]) for c in CLASSES)
    return row


def _slice_rows(slice_name, labels, y_true, y_prob, lesion_ids, min_group_size, bootstrap):
    rows = []
    codes = labels.to_numpy()
    group_order = labels.cat.categories if isinstance(labels.dtype, pd.CategoricalDtype) else sorted(labels.unique())
    for group in group_order:
        members = np.flatnonzero(codes == group)
        if members.size == 0:
            continue
        if members.size < min_group_size:
            logger.info(
                "slice %s: skipped group %r with %d < %d images", slice_name, group, members.size, min_group_size
            )
            continue
        group_lesions = None if lesion_ids is None else lesion_ids[members]
        rows.append(_group_row(slice_name, group, y_true[members], y_prob[members], group_lesions, bootstrap))
    return rows


def _slice_labels(name, df, images):
    labels = SLICES.get(name)(df, images)
    if not isinstance(labels, pd.Series) or not labels.index.equals(df.index):
        raise DataValidationError(f"slice {name!r} returned labels that are not a Series with df's index.")
    return labels


def evaluate_slices(df, images, y_true, y_prob, names=None, min_group_size=1, n_bootstrap=200, confidence=0.95, seed=0):
    """Compute accuracy, balanced accuracy and macro AUROC per group of each slice.

    Parameters
    ----------
    df : pandas.DataFrame
        Metadata, one row per image, aligned with `y_true`. When it has a
        ``lesion_id`` column, the intervals resample whole lesions.
    images : ndarray of shape (n_samples, H, W, 3), dtype uint8, or None
        Images aligned with `df`; slices that need pixels are unavailable without them.
    y_true : array-like of shape (n_samples,)
        Integer class indices into ``CLASSES``.
    y_prob : array-like of shape (n_samples, 7)
        Class probabilities.
    names : list of str, optional
        Slice names from `SLICES`; defaults to all. An unknown name raises
        ``RegistryError`` listing the valid ones.
    min_group_size : int, default=1
        Groups with fewer images are left out of the table (logged at INFO).
    n_bootstrap : int, default=200
        Resamples per group for the percentile intervals; 0 skips them.
    confidence : float, default=0.95
        Coverage of the intervals.
    seed : int, default=0
        Seed of the resampling, the same for every group.

    Returns
    -------
    table : pandas.DataFrame
        One row per (slice, group) with ``slice``, ``group``, ``n``, one column per
        class with its count in the group, ``accuracy``, ``balanced_accuracy`` and
        ``macro_auroc`` each with ``_ci_low`` and ``_ci_high`` columns, and
        ``n_auroc_classes``. That last column counts the classes whose one-vs-rest
        AUROC is defined in the group. ``macro_auroc`` averages over them and is nan
        when there are none.
    unavailable : dict of str to str
        The reason for each slice that could not be formed.
    """
    y_true, y_prob = _check_inputs(df, images, y_true, y_prob, min_group_size)
    names = SLICES.names() if names is None else list(names)
    lesion_ids = df["lesion_id"].to_numpy() if "lesion_id" in df.columns else None
    bootstrap = {"n_bootstrap": n_bootstrap, "confidence": confidence, "seed": seed}

    rows, unavailable = [], {}
    for name in names:
        try:
            labels = _slice_labels(name, df, images)
        except SliceUnavailableError as error:
            unavailable[name] = str(error)
            logger.info("slice %s is unavailable: %s", name, error)
            continue
        rows.extend(_slice_rows(name, labels, y_true, y_prob, lesion_ids, min_group_size, bootstrap))

    columns = ["slice", "group", "n", *CLASSES]
    columns += [f"{metric}{suffix}" for metric in SLICE_METRICS for suffix in ("", "_ci_low", "_ci_high")]
    table = pd.DataFrame(rows, columns=[*columns, "n_auroc_classes"])
    _log_undefined_auroc(table)
    return table, unavailable


def _log_undefined_auroc(table):
    undefined = int(table["macro_auroc"].isna().sum())
    if undefined:
        logger.info(
            "macro_auroc is undefined (nan) in %d of %d groups, because each contains a single class",
            undefined,
            len(table),
        )
