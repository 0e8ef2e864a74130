"""Classification metrics with percentile-bootstrap confidence intervals.

Point values come from scikit-learn's metric functions. Bootstrap resamples are
scored by a vectorized implementation of the same formulas (one-vs-rest ROC and
precision-recall curves, confusion matrices), because calling scikit-learn once per
resample took about 4.8 s per 200 resamples at 1,500 samples. The tests check the
vectorized scores against scikit-learn on materialized resamples.

Conventions, chosen to match what scikit-learn returns for the same call:

- ``y_pred`` is ``argmax(y_prob, axis=1)``. Ties go to the lower class index.
- ``balanced_accuracy`` is the mean recall over the classes present in ``y_true``
  (``balanced_accuracy_score``).
- ``macro_f1`` is the mean F1 over the classes present in ``y_true`` or ``y_pred``
  (``f1_score(average="macro")``). A class that is predicted but absent from
  ``y_true`` counts with F1 = 0.
- ``macro_auroc``, ``macro_auprc`` and ``macro_sens_at_95spec`` average the
  one-vs-rest values over the classes where they are defined, that is, classes with
  at least one positive and one negative sample.

Limits: a cluster bootstrap (``groups``) assumes that groups are independent of each
other. Percentile intervals are known to undercover for small samples and for
metrics near their bounds (Efron and Tibshirani 1993, "An Introduction to the
Bootstrap", ch. 13-14).
"""

import logging
import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    roc_auc_score,
    roc_curve,
)

from dermaudit.classes import CLASSES
from dermaudit.exceptions import DataValidationError, ParamsError

logger = logging.getLogger(__name__)

OVERALL_METRICS = (
    "balanced_accuracy",
    "macro_f1",
    "accuracy",
    "macro_auroc",
    "macro_auprc",
    "macro_sens_at_95spec",
)
PER_CLASS_METRICS = ("auroc", "auprc", "sens_at_95spec")

PROBABILITY_SUM_TOLERANCE = 1e-3
"""Maximum allowed ``|sum(row) - 1|`` for a row of ``y_prob``, loose enough for probabilities rounded to 4 decimals."""

_FPR_TOLERANCE = 1e-12
# The maximum number of (resample, sample) cells scored at once. It bounds each
# temporary array to 16 MB of float64.
_MAX_CHUNK_CELLS = 2_000_000


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _check_label_shape(y_true):
    y_true = np.asarray(y_true)
    if y_true.ndim != 1:
        raise DataValidationError(f"y_true must be 1-D of shape (n_samples,), got shape {y_true.shape}.")
    if y_true.size == 0:
        raise DataValidationError("y_true is empty. Pass at least one sample.")
    return y_true


def _check_label_values(y_true, n_classes):
    if y_true.dtype.kind == "f" and np.all(np.isfinite(y_true)) and np.all(y_true == np.round(y_true)):
        y_true = y_true.astype(np.int64)
    if y_true.dtype.kind not in "iu":
        raise DataValidationError(f"y_true must contain integer class indices, got dtype {y_true.dtype}.")

    bad = np.flatnonzero((y_true < 0) | (y_true >= n_classes))
    if bad.size:
        row = int(bad[0])
        raise DataValidationError(
            f"y_true[{row}] = {y_true[row]} is not a class index in 0..{n_classes - 1} "
            f"({bad.size} invalid labels in total)."
        )
    return y_true.astype(np.int64, copy=False)


def _check_probabilities(y_prob, n_samples, n_classes=None):
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2 or y_prob.shape[0] != n_samples:
        raise DataValidationError(
            f"y_prob must have shape (n_samples, n_classes) = ({n_samples}, n_classes), got {y_prob.shape}."
        )
    if n_classes is not None and y_prob.shape[1] != n_classes:
        raise DataValidationError(f"y_prob must have {n_classes} columns (one per class), got {y_prob.shape[1]}.")
    if y_prob.shape[1] < 2:
        raise DataValidationError(f"y_prob must have at least 2 class columns, got {y_prob.shape[1]}.")

    bad_rows = np.flatnonzero(~np.all(np.isfinite(y_prob) & (y_prob >= 0) & (y_prob <= 1), axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        raise DataValidationError(
            f"y_prob[{row}] = {y_prob[row].tolist()} contains values outside [0, 1] or NaN. "
            "Pass probabilities (apply softmax to logits first)."
        )

    row_sums = y_prob.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(row_sums - 1.0) > PROBABILITY_SUM_TOLERANCE)
    if bad_rows.size:
        row = int(bad_rows[0])
        raise DataValidationError(
            f"row {row} of y_prob sums to {row_sums[row]:.6g}, expected 1 within {PROBABILITY_SUM_TOLERANCE} "
            f"({bad_rows.size} rows in total). Pass softmax outputs, not logits or sigmoid scores."
        )
    return y_prob


def check_predictions(y_true, y_prob, n_classes=None):
    """Validate labels and probabilities and return them as numpy arrays.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices. Floats with integral values are accepted.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities in [0, 1]. Each row must sum to 1 within
        ``PROBABILITY_SUM_TOLERANCE``.
    n_classes : int, optional
        Required number of columns of `y_prob`. Defaults to ``y_prob.shape[1]``.

    Returns
    -------
    y_true : ndarray of shape (n_samples,), dtype int64
    y_prob : ndarray of shape (n_samples, n_classes), dtype float64

    Raises
    ------
    DataValidationError
        If a shape, label or probability is invalid. The message names the first bad
        row and its value.
    """
    y_true = _check_label_shape(y_true)
    y_prob = _check_probabilities(y_prob, y_true.size, n_classes)
    y_true = _check_label_values(y_true, y_prob.shape[1])
    return y_true, y_prob


def _check_specificity(specificity):
    if isinstance(specificity, bool) or not isinstance(specificity, (int, float, np.number)):
        raise ParamsError(f"specificity must be a number in [0, 1], got {specificity!r}.")
    if not 0.0 <= float(specificity) <= 1.0:
        raise ParamsError(f"specificity must be in [0, 1], got {specificity!r}.")
    return float(specificity)


# ---------------------------------------------------------------------------
# Point metrics (scikit-learn)
# ---------------------------------------------------------------------------


def _warn_undefined(message):
    warnings.warn(message, UndefinedMetricWarning, stacklevel=3)


def sensitivity_at_specificity(y_true_binary, y_score, specificity=0.95):
    """Compute the highest sensitivity (TPR) reachable at a minimum specificity.

    The value is the maximum TPR over the points of scikit-learn's ROC curve
    (``roc_curve`` with ``drop_intermediate=False``) whose specificity ``1 - FPR`` is
    at least `specificity`. The point (FPR 0, TPR 0) is on the curve, so a defined
    result is never below 0, and a perfect ranking gives 1.0.

    Parameters
    ----------
    y_true_binary : array-like of shape (n_samples,)
        True binary labels, 1 or True for the positive class.
    y_score : array-like of shape (n_samples,)
        Scores, higher meaning more likely positive (for example ``y_prob[:, k]``).
    specificity : float, default=0.95
        Minimum specificity in [0, 1]. A tolerance of 1e-12 absorbs the rounding of
        ``FPR = FP / N``.

    Returns
    -------
    float
        Sensitivity in [0, 1], or nan with an ``UndefinedMetricWarning`` when
        `y_true_binary` has no positive or no negative sample.
    """
    specificity = _check_specificity(specificity)
    y_true_binary = np.asarray(y_true_binary).astype(bool)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true_binary.shape != y_score.shape or y_true_binary.ndim != 1:
        raise DataValidationError(
            f"y_true_binary and y_score must be 1-D of equal length, got {y_true_binary.shape} and {y_score.shape}."
        )

    n_positive = int(y_true_binary.sum())
    if n_positive == 0 or n_positive == y_true_binary.size:
        _warn_undefined(
            "sensitivity at specificity is undefined because y_true_binary contains only one class, so it is nan."
        )
        return float("nan")

    fpr, tpr, _ = roc_curve(y_true_binary, y_score, drop_intermediate=False)
    allowed = fpr <= (1.0 - specificity) + _FPR_TOLERANCE
    return float(tpr[allowed].max())


def _binary_ranking_metrics(y_true_binary, y_score, class_name):
    n_positive = int(y_true_binary.sum())
    if n_positive == 0 or n_positive == y_true_binary.size:
        missing_kind = "positive" if n_positive == 0 else "negative"
        _warn_undefined(
            f"AUROC, AUPRC and sensitivity at 95% specificity of class {class_name!r} are undefined because "
            f"it has no {missing_kind} sample, so they are nan."
        )
        return {name: float("nan") for name in PER_CLASS_METRICS}

    return {
        "auroc": float(roc_auc_score(y_true_binary, y_score)),
        "auprc": float(average_precision_score(y_true_binary, y_score)),
        "sens_at_95spec": sensitivity_at_specificity(y_true_binary, y_score, 0.95),
    }


def one_vs_rest_metrics(y_true, y_prob, classes=CLASSES):
    """Compute one-vs-rest AUROC, AUPRC and sensitivity at 95% specificity per class.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices into `classes`.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities; column k scores class ``classes[k]``.
    classes : sequence of str, default=CLASSES
        Class names, one per column of `y_prob`.

    Returns
    -------
    pandas.DataFrame
        Indexed by class name, with columns ``auroc`` (``roc_auc_score``), ``auprc``
        (``average_precision_score``), ``sens_at_95spec``
        (:func:`sensitivity_at_specificity`) and ``n_positive``. The three metrics are
        nan, with an ``UndefinedMetricWarning``, for a class without positive or
        without negative samples.
    """
    classes = list(classes)
    y_true, y_prob = check_predictions(y_true, y_prob, n_classes=len(classes))

    rows = {}
    for k, class_name in enumerate(classes):
        is_positive = y_true == k
        rows[class_name] = _binary_ranking_metrics(is_positive, y_prob[:, k], class_name)
        rows[class_name]["n_positive"] = int(is_positive.sum())

    table = pd.DataFrame.from_dict(rows, orient="index", columns=[*PER_CLASS_METRICS, "n_positive"])
    table.index.name = "class"
    return table


def _nanmean_or_warn(values, metric):
    values = np.asarray(values, dtype=np.float64)
    if np.all(np.isnan(values)):
        _warn_undefined(
            f"{metric} is undefined because no class has both positive and negative samples, so it is nan."
        )
        return float("nan")
    return float(np.nanmean(values))


def _label_metrics(y_true, y_pred):
    with warnings.catch_warnings():
        # balanced_accuracy_score warns when y_pred contains a class absent from y_true
        # and then ignores that class, which is the documented definition here. With a
        # single label its internal confusion_matrix call warns about the shape, but
        # the result (the recall of that class) is still correct.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced_accuracy = balanced_accuracy_score(y_true, y_pred)

    return {
        "balanced_accuracy": float(balanced_accuracy),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro")),
        "accuracy": float(accuracy_score(y_true, y_pred)),
    }


def _combine_point_metrics(y_true, y_prob, per_class_table):
    metrics = _label_metrics(y_true, y_prob.argmax(axis=1))
    for name in PER_CLASS_METRICS:
        metrics[f"macro_{name}"] = _nanmean_or_warn(per_class_table[name], f"macro_{name}")
    return metrics


def point_metrics(y_true, y_prob):
    """Compute the overall metrics of a set of predictions.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities. The predicted class is the argmax of each row.

    Returns
    -------
    dict of str to float
        ``balanced_accuracy`` (mean recall over classes present in `y_true`),
        ``macro_f1`` (over classes present in `y_true` or the predictions),
        ``accuracy``, and ``macro_auroc``, ``macro_auprc`` and
        ``macro_sens_at_95spec`` (means of the one-vs-rest values over the classes
        where they are defined). When every class is present, ``macro_auroc`` equals
        ``roc_auc_score(y_true, y_prob, multi_class="ovr", average="macro")``.
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    if y_prob.shape[1] == len(CLASSES):
        classes = CLASSES
    else:
        classes = [str(k) for k in range(y_prob.shape[1])]
    per_class_table = one_vs_rest_metrics(y_true, y_prob, classes=classes)
    return _combine_point_metrics(y_true, y_prob, per_class_table)


# ---------------------------------------------------------------------------
# Vectorized scoring of bootstrap resamples
# ---------------------------------------------------------------------------


def _resample_counts(n_samples, n_bootstrap, groups, rng):
    """Draw bootstrap resamples as per-sample multiplicities, shape (n_bootstrap, n_samples).

    Without `groups`, each resample draws n_samples samples with replacement. With
    `groups` (integer codes of shape (n_samples,)), each resample draws n_groups whole
    groups with replacement, and every sample inherits the count of its group.
    """
    if groups is None:
        n_units, unit_of_sample = n_samples, None
    else:
        n_units = int(groups.max()) + 1
        unit_of_sample = groups

    unit_counts = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_bootstrap)
    if unit_of_sample is None:
        return unit_counts.astype(np.float64)
    return unit_counts[:, unit_of_sample].astype(np.float64)


def _chunks(n_rows, n_columns):
    step = max(1, _MAX_CHUNK_CELLS // max(1, n_columns))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def _weighted_ranking_metrics(is_positive, score, weights, specificity=0.95):
    """Score one class on every resample at once.

    Equivalent to ``roc_auc_score``, ``average_precision_score`` and
    :func:`sensitivity_at_specificity` applied to each resample, where row i of
    `weights` (shape (n_resamples, n_samples)) is the multiplicity of each sample.
    Returns a dict of arrays of shape (n_resamples,), nan where the resample has no
    positive or no negative sample.
    """
    order = np.argsort(-score, kind="stable")
    sorted_score = score[order]
    # Last index of each block of tied scores: the ROC curve has one point per block.
    block_ends = np.flatnonzero(np.r_[sorted_score[1:] != sorted_score[:-1], True])
    sorted_weights = weights[:, order]

    true_positives = np.cumsum(sorted_weights * is_positive[order], axis=1)[:, block_ends]
    all_positives = np.cumsum(sorted_weights, axis=1)[:, block_ends]
    false_positives = all_positives - true_positives
    n_positive = true_positives[:, -1:]
    n_negative = false_positives[:, -1:]

    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.concatenate([np.zeros_like(n_positive), true_positives / n_positive], axis=1)
        fpr = np.concatenate([np.zeros_like(n_negative), false_positives / n_negative], axis=1)
        precision = np.where(all_positives > 0, true_positives / np.maximum(all_positives, 1e-300), 0.0)

    auroc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2.0, axis=1)
    auprc = np.sum(np.diff(tpr, axis=1) * precision, axis=1)
    allowed = fpr <= (1.0 - specificity) + _FPR_TOLERANCE
    sensitivity = np.max(np.where(allowed, tpr, -np.inf), axis=1)

    undefined = (n_positive[:, 0] == 0) | (n_negative[:, 0] == 0)
    results = {"auroc": auroc, "auprc": auprc, "sens_at_95spec": sensitivity}
    for values in results.values():
        values[undefined] = np.nan
    return results


def _weighted_label_metrics(y_true, y_pred, weights, n_classes):
    """Compute accuracy, balanced accuracy and macro F1 on every resample at once.

    Returns a dict of arrays of shape (n_resamples,), computed from the weighted
    confusion matrices with the same class conventions as :func:`point_metrics`.
    """
    cell = y_true * n_classes + y_pred
    cell_indicator = np.zeros((y_true.size, n_classes * n_classes))
    cell_indicator[np.arange(y_true.size), cell] = 1.0
    matrices = (weights @ cell_indicator).reshape(-1, n_classes, n_classes)

    true_count = matrices.sum(axis=2)
    predicted_count = matrices.sum(axis=1)
    hits = np.diagonal(matrices, axis1=1, axis2=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(true_count > 0, hits / true_count, np.nan)
        f1_denominator = true_count + predicted_count
        f1 = np.where(f1_denominator > 0, 2.0 * hits / f1_denominator, np.nan)

    return {
        "balanced_accuracy": np.nanmean(recall, axis=1),
        "macro_f1": np.nanmean(f1, axis=1),
        "accuracy": hits.sum(axis=1) / true_count.sum(axis=1),
    }


def _nanmean_rows(values):
    # np.nanmean warns on all-nan rows, which are the resamples where the macro metric is undefined.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=1)


def _score_resamples(y_true, y_prob, weights):
    """Score every resample: overall arrays of shape (n_resamples,) and per-class (n_resamples, n_classes)."""
    n_classes = y_prob.shape[1]
    per_class = {name: np.empty((weights.shape[0], n_classes)) for name in PER_CLASS_METRICS}
    for k in range(n_classes):
        class_scores = _weighted_ranking_metrics(y_true == k, y_prob[:, k], weights)
        for name in PER_CLASS_METRICS:
            per_class[name][:, k] = class_scores[name]

    overall = _weighted_label_metrics(y_true, y_prob.argmax(axis=1), weights, n_classes)
    for name in PER_CLASS_METRICS:
        overall[f"macro_{name}"] = _nanmean_rows(per_class[name])
    return overall, per_class


def _bootstrap_scores(y_true, y_prob, groups, n_bootstrap, seed):
    """Score `n_bootstrap` resamples in chunks and return the same structure as `_score_resamples`."""
    rng = np.random.default_rng(seed)
    overall_parts, per_class_parts = [], []
    for rows in _chunks(n_bootstrap, y_true.size):
        weights = _resample_counts(y_true.size, rows.stop - rows.start, groups, rng)
        overall, per_class = _score_resamples(y_true, y_prob, weights)
        overall_parts.append(overall)
        per_class_parts.append(per_class)

    overall = {name: np.concatenate([part[name] for part in overall_parts]) for name in OVERALL_METRICS}
    per_class = {name: np.concatenate([part[name] for part in per_class_parts]) for name in PER_CLASS_METRICS}
    return overall, per_class


# ---------------------------------------------------------------------------
# Confidence intervals
# ---------------------------------------------------------------------------


def _check_bootstrap_params(n_bootstrap, confidence):
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ParamsError(f"n_bootstrap must be an int >= 0 (0 skips the intervals), got {n_bootstrap!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.number)):
        raise ParamsError(f"confidence must be a number in (0, 1), got {confidence!r}.")
    if not 0.0 < float(confidence) < 1.0:
        raise ParamsError(f"confidence must be in (0, 1), for example 0.95, got {confidence!r}.")


def _check_groups(groups, n_samples):
    """Return integer group codes of shape (n_samples,), or None when `groups` is None."""
    if groups is None:
        return None
    groups = np.asarray(groups, dtype=object)
    if groups.shape != (n_samples,):
        raise DataValidationError(f"groups must have shape ({n_samples},) like y_true, got {groups.shape}.")

    missing = np.flatnonzero(pd.isna(groups))
    if missing.size:
        raise DataValidationError(
            f"groups[{missing[0]}] is missing ({missing.size} missing in total). Every sample needs a group id "
            "such as its lesion_id."
        )
    codes, _ = pd.factorize(groups)
    return codes


def percentile_interval(values, value, confidence, metric):
    """Summarize bootstrap replicates as a percentile interval.

    Parameters
    ----------
    values : ndarray of shape (n_resamples,)
        Bootstrap replicates. nan marks a resample where the metric is undefined, and
        such resamples are skipped.
    value : float
        Point estimate on the full data.
    confidence : float
        Coverage in (0, 1); the interval spans the ``(1 - confidence) / 2`` and
        ``(1 + confidence) / 2`` quantiles.
    metric : str
        Metric name for the warning.

    Returns
    -------
    dict
        ``value``, ``ci_low``, ``ci_high`` (floats, nan without defined resamples) and
        ``n_resamples`` (the number of resamples used). A warning is issued when fewer
        than half of the resamples are defined, because the interval is then
        conditional on a rare event.
    """
    defined = values[~np.isnan(values)]
    nan = float("nan")
    interval = {"value": float(value), "ci_low": nan, "ci_high": nan, "n_resamples": int(defined.size)}
    if values.size and defined.size < values.size / 2:
        warnings.warn(
            f"the interval of {metric} uses {defined.size} of {values.size} resamples because the metric is "
            "undefined in the others (a class is missing from them).",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    if defined.size:
        tail = 100.0 * (1.0 - confidence) / 2.0
        interval["ci_low"], interval["ci_high"] = (float(q) for q in np.percentile(defined, [tail, 100.0 - tail]))
    return interval


# ---------------------------------------------------------------------------
# Report-level API
# ---------------------------------------------------------------------------


def _per_class_summary(per_class_table, per_class_replicates, confidence):
    summary = {}
    for k, class_name in enumerate(per_class_table.index):
        entry = {}
        for name in PER_CLASS_METRICS:
            replicates = per_class_replicates[name][:, k]
            value = per_class_table.at[class_name, name]
            entry[name] = percentile_interval(replicates, value, confidence, f"{name} of {class_name!r}")
        entry["n_positive"] = int(per_class_table.at[class_name, "n_positive"])
        summary[str(class_name)] = entry
    return summary


def evaluate_predictions(y_true, y_prob, groups=None, n_bootstrap=1000, confidence=0.95, seed=0, classes=CLASSES):
    """Compute every overall and per-class metric with a bootstrap confidence interval.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices into `classes`.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities; rows sum to 1.
    groups : array-like of shape (n_samples,), optional
        Cluster ids, such as HAM10000's ``lesion_id``. When given, each resample draws
        whole groups with replacement (cluster bootstrap), because images of one lesion
        are correlated and resampling them independently makes intervals too narrow.
    n_bootstrap : int, default=1000
        Number of resamples. 0 skips the intervals (they are nan).
    confidence : float, default=0.95
        Coverage of the percentile intervals.
    seed : int, default=0
        Seed of the ``numpy.random.Generator`` that draws the resamples.
    classes : sequence of str, default=CLASSES
        Class names, one per column of `y_prob`.

    Returns
    -------
    dict
        JSON-ready (Python ints, floats, lists; undefined values are float nan)::

            {"n": int, "n_groups": int,
             "overall": {metric: {"value", "ci_low", "ci_high", "n_resamples"}},
             "per_class": {class: {"auroc": {...}, "auprc": {...},
                                   "sens_at_95spec": {...}, "n_positive": int}},
             "confusion_matrix": [[...]],  # rows true, columns predicted, all classes
             "n_bootstrap", "confidence", "seed", "ci_method"}

        The overall metrics are those of :func:`point_metrics`. A resample where a
        metric is undefined is skipped for that metric only, and ``n_resamples`` counts
        the resamples used.
    """
    classes = list(classes)
    y_true, y_prob = check_predictions(y_true, y_prob, n_classes=len(classes))
    _check_bootstrap_params(n_bootstrap, confidence)
    group_codes = _check_groups(groups, y_true.size)

    per_class_table = one_vs_rest_metrics(y_true, y_prob, classes=classes)
    values = _combine_point_metrics(y_true, y_prob, per_class_table)

    empty = np.empty((0, len(classes)))
    overall_replicates = {name: np.empty(0) for name in OVERALL_METRICS}
    per_class_replicates = {name: empty for name in PER_CLASS_METRICS}
    if n_bootstrap:
        overall_replicates, per_class_replicates = _bootstrap_scores(y_true, y_prob, group_codes, n_bootstrap, seed)

    overall = {
        name: percentile_interval(overall_replicates[name], values[name], confidence, name) for name in OVERALL_METRICS
    }
    matrix = confusion_matrix(y_true, y_prob.argmax(axis=1), labels=np.arange(len(classes)))
    if group_codes is None:
        ci_method = "percentile bootstrap"
    else:
        ci_method = "cluster percentile bootstrap (resampling groups)"
    return {
        "n": int(y_true.size),
        "n_groups": int(y_true.size if group_codes is None else group_codes.max() + 1),
        "overall": overall,
        "per_class": _per_class_summary(per_class_table, per_class_replicates, confidence),
        "confusion_matrix": matrix.tolist(),
        "n_bootstrap": int(n_bootstrap),
        "confidence": float(confidence),
        "seed": int(seed),
        "ci_method": ci_method,
    }


def _overall_values(result):
    # Accepts an evaluate_predictions result or a point_metrics dict.
    if "overall" in result:
        return {name: entry["value"] for name, entry in result["overall"].items()}
    return dict(result)


def metric_deltas(clean, shifted):
    """Compute the change of each overall metric from clean to shifted (shifted minus clean).

    Parameters
    ----------
    clean, shifted : dict
        Results of :func:`evaluate_predictions` or :func:`point_metrics`.

    Returns
    -------
    dict of str to float
        One entry per overall metric, nan when either value is nan. For confidence
        intervals of the deltas use :func:`paired_metric_deltas`, which resamples the
        same images for both.
    """
    clean_values = _overall_values(clean)
    shifted_values = _overall_values(shifted)
    if set(clean_values) != set(shifted_values):
        raise ParamsError(
            f"clean and shifted contain different metrics: {sorted(clean_values)} vs {sorted(shifted_values)}. "
            "Pass two results of the same function."
        )
    return {name: float(shifted_values[name]) - float(clean_values[name]) for name in clean_values}


def paired_metric_deltas(y_true, y_prob_clean, y_prob_shifted, groups=None, n_bootstrap=1000, confidence=0.95, seed=0):
    """Compute shifted-minus-clean deltas of the overall metrics with paired bootstrap intervals.

    Each resample draws one set of samples (or groups) and scores both predictions on
    it, so the interval reflects the change on the same images, not the sum of two
    independent sampling errors.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob_clean, y_prob_shifted : array-like of shape (n_samples, n_classes)
        Probabilities for the same images before and after the shift.
    groups, n_bootstrap, confidence, seed
        As in :func:`evaluate_predictions`.

    Returns
    -------
    dict
        ``{metric: {"value", "ci_low", "ci_high", "n_resamples"}}`` for each overall
        metric, where ``value`` is ``metric_deltas`` of the two point estimates.
    """
    y_true, y_prob_clean = check_predictions(y_true, y_prob_clean)
    _, y_prob_shifted = check_predictions(y_true, y_prob_shifted, n_classes=y_prob_clean.shape[1])
    _check_bootstrap_params(n_bootstrap, confidence)
    group_codes = _check_groups(groups, y_true.size)

    deltas = metric_deltas(point_metrics(y_true, y_prob_clean), point_metrics(y_true, y_prob_shifted))
    replicates = {name: np.empty(0) for name in OVERALL_METRICS}
    if n_bootstrap:
        # The same seed draws the same resamples for both, which makes the bootstrap paired.
        clean_replicates, _ = _bootstrap_scores(y_true, y_prob_clean, group_codes, n_bootstrap, seed)
        shifted_replicates, _ = _bootstrap_scores(y_true, y_prob_shifted, group_codes, n_bootstrap, seed)
        replicates = {name: shifted_replicates[name] - clean_replicates[name] for name in OVERALL_METRICS}

    return {
        name: percentile_interval(replicates[name], deltas[name], confidence, f"delta of {name}")
        for name in OVERALL_METRICS
    }
