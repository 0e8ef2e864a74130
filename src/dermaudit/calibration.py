"""Calibration metrics and post-hoc calibrators.

Temperature scaling follows Guo et al. 2017, "On Calibration of Modern Neural
Networks" (ICML): one scalar T divides the logits and is fitted by minimizing the
negative log-likelihood on held-out data. The expected calibration error (ECE) is the
top-label ECE with equal-width confidence bins (Naeini et al. 2015, "Obtaining Well
Calibrated Probabilities Using Bayesian Binning", AAAI; Guo et al. 2017, eq. 3).

Limits: ECE depends on `n_bins` and is biased upward for small samples, because
every bin's accuracy is estimated from few samples. Temperature scaling cannot change
the ranking of the classes, so accuracy and AUROC are unchanged by it.
"""

import logging

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError
from sklearn.metrics import brier_score_loss, log_loss

from dermaudit.exceptions import DataValidationError, ParamsError
from dermaudit.metrics import (
    _check_bootstrap_params,
    _check_groups,
    _check_label_shape,
    _check_label_values,
    _chunks,
    _resample_counts,
    check_predictions,
    percentile_interval,
)
from dermaudit.registry import Registry

logger = logging.getLogger(__name__)

CALIBRATORS = Registry("calibrator")
CALIBRATION_METRICS = ("ece", "brier", "nll", "accuracy", "mean_confidence")


# ---------------------------------------------------------------------------
# Temperature scaling
# ---------------------------------------------------------------------------


def _check_logits(logits, y_true=None):
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise DataValidationError(f"logits must have shape (n_samples, n_classes >= 2), got {logits.shape}.")

    bad_rows = np.flatnonzero(~np.all(np.isfinite(logits), axis=1))
    if bad_rows.size:
        row = int(bad_rows[0])
        raise DataValidationError(
            f"logits[{row}] = {logits[row].tolist()} contains NaN or inf ({bad_rows.size} rows in total). "
            "Check the model outputs, for example for an overflow in float16."
        )
    if y_true is None:
        return logits

    y_true = _check_label_shape(y_true)
    if y_true.size != logits.shape[0]:
        raise DataValidationError(f"y_true has {y_true.size} samples but logits has {logits.shape[0]} rows.")
    return logits, _check_label_values(y_true, logits.shape[1])


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)):
        raise ParamsError(f"temperature must be a positive number, got {temperature!r}.")
    if not (np.isfinite(temperature) and temperature > 0):
        raise ParamsError(f"temperature must be finite and > 0, got {temperature!r}.")
    return float(temperature)


def softmax(logits, temperature=1.0):
    """Convert logits to probabilities, dividing them by a temperature first.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Unnormalized scores; must be finite.
    temperature : float, default=1.0
        Positive divisor of the logits. Values above 1 soften the probabilities.

    Returns
    -------
    ndarray of shape (n_samples, n_classes), dtype float64
        Rows sum to 1. The row maximum is subtracted before exponentiation, so large
        logits do not overflow.
    """
    logits = _check_logits(logits)
    temperature = _check_temperature(temperature)

    scaled = logits / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def _mean_nll(logits, labels, log_temperature):
    return torch.nn.functional.cross_entropy(logits / torch.exp(log_temperature), labels)


def fit_temperature(logits, y_true, max_iter=200):
    """Fit the temperature T that minimizes the NLL of ``softmax(logits / T)``.

    The optimizer is ``torch.optim.LBFGS`` with a strong Wolfe line search on
    ``log(T)``, which keeps T positive (Guo et al. 2017). When the fitted T does not
    lower the NLL below that of T = 1 (for example when the optimizer diverges), the
    function logs a warning and returns 1.0, so the fitted NLL is never above the
    NLL at T = 1.

    Parameters
    ----------
    logits : array-like of shape (n_samples, n_classes)
        Validation logits; must be finite.
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    max_iter : int, default=200
        Maximum number of LBFGS iterations.

    Returns
    -------
    float
        The temperature T > 0. When the argmax of the logits is always correct, the
        NLL keeps falling as T -> 0, and the returned T is where LBFGS stops (its
        `tolerance_change` or `max_iter`).

    Raises
    ------
    DataValidationError
        If `logits` contain NaN or inf, or the shapes or labels are invalid.
    """
    logits, y_true = _check_logits(logits, y_true)
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ParamsError(f"max_iter must be a positive int, got {max_iter!r}.")

    logit_tensor = torch.tensor(logits, dtype=torch.float64)  # a copy: inputs may be read-only
    label_tensor = torch.tensor(y_true, dtype=torch.long)
    log_temperature = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_temperature], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = _mean_nll(logit_tensor, label_tensor, log_temperature)
        loss.backward()
        return loss

    optimizer.step(closure)

    with torch.no_grad():
        nll_fitted = float(_mean_nll(logit_tensor, label_tensor, log_temperature))
        nll_identity = float(_mean_nll(logit_tensor, label_tensor, torch.zeros(1, dtype=torch.float64)))
    temperature = float(torch.exp(log_temperature.detach()))
    if not (np.isfinite(temperature) and temperature > 0 and nll_fitted <= nll_identity):
        logger.warning(
            "temperature scaling did not lower the NLL (T=%.4g gives %.6g, T=1 gives %.6g), so T=1 is used.",
            temperature, nll_fitted, nll_identity,
        )
        return 1.0

    logger.info(
        "fitted temperature T=%.4g: NLL %.6g -> %.6g on %d samples", temperature, nll_identity, nll_fitted, len(y_true)
    )
    return temperature


@CALIBRATORS.register("temperature_scaling")
class TemperatureScaling:
    """Temperature scaling calibrator (Guo et al. 2017).

    Parameters
    ----------
    max_iter : int, default=200
        Maximum number of LBFGS iterations, passed to :func:`fit_temperature`.

    Attributes
    ----------
    temperature_ : float
        The fitted temperature; set by :meth:`fit`.
    """

    def __init__(self, max_iter=200):
        self.max_iter = max_iter

    def fit(self, logits, y_true):
        """Fit the temperature on validation logits of shape (n_samples, n_classes) and return self."""
        self.temperature_ = fit_temperature(logits, y_true, max_iter=self.max_iter)
        return self

    def transform(self, logits):
        """Return calibrated probabilities of shape (n_samples, n_classes)."""
        if not hasattr(self, "temperature_"):
            raise NotFittedError("TemperatureScaling is not fitted. Call fit(logits, y_true) first.")
        return softmax(logits, self.temperature_)


# ---------------------------------------------------------------------------
# Calibration metrics
# ---------------------------------------------------------------------------


def _check_n_bins(n_bins):
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ParamsError(f"n_bins must be a positive int, got {n_bins!r}.")
    return int(n_bins)


def _confidence_bins(confidence, n_bins):
    """Return the bin index of each confidence. Bin b covers (b / n_bins, (b + 1) / n_bins], and bin 0 also 0."""
    inner_edges = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    return np.searchsorted(inner_edges, confidence, side="left")


def reliability_curve(y_true, y_prob, n_bins=15):
    """Compute the top-label reliability diagram in equal-width confidence bins.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities. The confidence of a sample is its maximum probability
        and its prediction is the argmax.
    n_bins : int, default=15
        Number of bins of equal width on [0, 1]. Bin b covers
        ``(b / n_bins, (b + 1) / n_bins]``.

    Returns
    -------
    pandas.DataFrame
        One row per bin with ``bin_lower``, ``bin_upper``, ``count``,
        ``mean_confidence`` and ``accuracy``. The last two are nan for empty bins.
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    n_bins = _check_n_bins(n_bins)

    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    bins = _confidence_bins(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_confidence = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        accuracy = np.bincount(bins, weights=correct, minlength=n_bins) / count

    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame(
        {
            "bin_lower": edges[:-1],
            "bin_upper": edges[1:],
            "count": count,
            "mean_confidence": np.where(count > 0, mean_confidence, np.nan),
            "accuracy": np.where(count > 0, accuracy, np.nan),
        }
    )


def expected_calibration_error(y_true, y_prob, n_bins=15):
    """Compute the top-label expected calibration error (ECE).

    ``ECE = sum_b (n_b / n) * |accuracy_b - mean_confidence_b|`` over the
    equal-width bins of :func:`reliability_curve` (Naeini et al. 2015; Guo et al.
    2017, eq. 3).

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities.
    n_bins : int, default=15
        Number of equal-width confidence bins.

    Returns
    -------
    float
        ECE in [0, 1].
    """
    curve = reliability_curve(y_true, y_prob, n_bins=n_bins)
    filled = curve[curve["count"] > 0]
    gaps = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((filled["count"] * gaps).sum() / filled["count"].sum())


def _renormalize_rows(y_prob):
    # float32 softmax rows miss 1 by about 1e-7, and scikit-learn's brier_score_loss and
    # log_loss warn about rows that miss it by more than about 1.5e-8 (float64).
    return y_prob / y_prob.sum(axis=1, keepdims=True)


def multiclass_brier_score(y_true, y_prob):
    """Compute the multiclass Brier score.

    The mean over samples of ``sum_k (y_prob[i, k] - onehot(y_true)[i, k]) ** 2``,
    in [0, 2], from ``sklearn.metrics.brier_score_loss`` with ``scale_by_half=False``
    (scikit-learn >= 1.7). Rows are first divided by their sum, as in
    :func:`negative_log_likelihood`.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities; column k is class k.

    Returns
    -------
    float
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    y_prob = _renormalize_rows(y_prob)
    labels = np.arange(y_prob.shape[1])
    return float(brier_score_loss(y_true, y_prob, labels=labels, scale_by_half=False))


def negative_log_likelihood(y_true, y_prob):
    """Compute the mean negative log-likelihood (cross-entropy) in nats.

    Uses ``sklearn.metrics.log_loss`` with ``labels=range(n_classes)``. Rows are
    first divided by their sum, because float32 softmax outputs miss 1 by about 1e-7
    and log_loss warns about rows that miss it by more than about 1.5e-8.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities. log_loss clips them to [eps, 1 - eps] with the float64
        machine epsilon, so a zero probability for the true class costs about 36 nats.

    Returns
    -------
    float
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    y_prob = _renormalize_rows(y_prob)
    return float(log_loss(y_true, y_prob, labels=np.arange(y_prob.shape[1])))


def calibration_summary(y_true, y_prob, n_bins=15):
    """Compute the calibration metrics of a set of predictions.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities.
    n_bins : int, default=15
        Number of equal-width bins for the ECE.

    Returns
    -------
    dict of str to float
        ``ece``, ``brier`` (multiclass, in [0, 2]), ``nll`` (nats), ``accuracy`` and
        ``mean_confidence`` (mean of the maximum probability).
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    return {
        "ece": expected_calibration_error(y_true, y_prob, n_bins=n_bins),
        "brier": multiclass_brier_score(y_true, y_prob),
        "nll": negative_log_likelihood(y_true, y_prob),
        "accuracy": float(np.mean(y_prob.argmax(axis=1) == y_true)),
        "mean_confidence": float(np.mean(y_prob.max(axis=1))),
    }


# ---------------------------------------------------------------------------
# Bootstrap intervals
# ---------------------------------------------------------------------------


def _per_sample_terms(y_true, y_prob, n_bins):
    """Per-sample quantities whose weighted sums give every calibration metric."""
    n_samples, n_classes = y_prob.shape
    confidence = y_prob.max(axis=1)
    correct = (y_prob.argmax(axis=1) == y_true).astype(np.float64)
    onehot = np.eye(n_classes)[y_true]

    normalized = _renormalize_rows(y_prob)
    eps = np.finfo(np.float64).eps
    true_class_prob = np.clip(normalized[np.arange(n_samples), y_true], eps, 1 - eps)

    bin_indicator = np.zeros((n_samples, n_bins))
    bin_indicator[np.arange(n_samples), _confidence_bins(confidence, n_bins)] = 1.0
    return {
        "confidence": confidence,
        "correct": correct,
        "brier": np.sum((normalized - onehot) ** 2, axis=1),
        "nll": -np.log(true_class_prob),
        "bin_confidence": bin_indicator * confidence[:, None],
        "bin_correct": bin_indicator * correct[:, None],
    }


def _score_calibration_resamples(terms, weights):
    total = weights.sum(axis=1)
    calibration_gap = np.abs(weights @ terms["bin_correct"] - weights @ terms["bin_confidence"]).sum(axis=1)
    return {
        "ece": calibration_gap / total,
        "brier": weights @ terms["brier"] / total,
        "nll": weights @ terms["nll"] / total,
        "accuracy": weights @ terms["correct"] / total,
        "mean_confidence": weights @ terms["confidence"] / total,
    }


def evaluate_calibration(y_true, y_prob, groups=None, n_bins=15, n_bootstrap=1000, confidence=0.95, seed=0):
    """Compute the metrics of :func:`calibration_summary` with percentile bootstrap intervals.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Integer class indices.
    y_prob : array-like of shape (n_samples, n_classes)
        Class probabilities.
    groups : array-like of shape (n_samples,), optional
        Cluster ids such as ``lesion_id``; resamples then draw whole groups.
    n_bins : int, default=15
        Number of equal-width bins for the ECE.
    n_bootstrap, confidence, seed
        As in :func:`dermaudit.metrics.evaluate_predictions`.

    Returns
    -------
    dict
        ``{metric: {"value", "ci_low", "ci_high", "n_resamples"}}`` for ``ece``,
        ``brier``, ``nll``, ``accuracy`` and ``mean_confidence``. The ECE of a resample
        is biased upward like the ECE itself, so its interval describes sampling
        variation, not the bias.
    """
    y_true, y_prob = check_predictions(y_true, y_prob)
    n_bins = _check_n_bins(n_bins)
    _check_bootstrap_params(n_bootstrap, confidence)
    group_codes = _check_groups(groups, y_true.size)

    values = calibration_summary(y_true, y_prob, n_bins=n_bins)
    terms = _per_sample_terms(y_true, y_prob, n_bins)
    rng = np.random.default_rng(seed)
    parts = [
        _score_calibration_resamples(terms, _resample_counts(y_true.size, rows.stop - rows.start, group_codes, rng))
        for rows in _chunks(n_bootstrap, y_true.size)
    ]

    summary = {}
    for name in CALIBRATION_METRICS:
        replicates = np.concatenate([part[name] for part in parts]) if parts else np.empty(0)
        summary[name] = percentile_interval(replicates, values[name], confidence, name)
    return summary
