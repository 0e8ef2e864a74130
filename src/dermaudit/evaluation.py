"""Evaluation runs that combine prediction with the metrics: clean test set, corruption sweep, uncertainty.

Each function returns tables or JSON-ready dicts; chapters write them to ``output/eval/`` and
draw them with :mod:`dermaudit.figures`.
"""

import logging

import numpy as np
import pandas as pd
from tqdm import tqdm  # plain text bars on stderr, also inside a notebook kernel

from dermaudit.calibration import softmax
from dermaudit.classes import CLASSES
from dermaudit.corruptions import CORRUPTIONS, apply_corruption
from dermaudit.metrics import evaluate_predictions, paired_metric_deltas
from dermaudit.prediction import predict_logits

logger = logging.getLogger(__name__)

SWEEP_METRICS = ("balanced_accuracy", "macro_f1", "macro_auroc", "macro_auprc", "macro_sens_at_95spec", "accuracy")


def predictions_table(df, y_prob):
    """Return one row per image: image_id, lesion_id, true and predicted class, confidence and class probabilities."""
    table = pd.DataFrame({
        "image_id": df["image_id"].to_numpy(),
        "lesion_id": df["lesion_id"].to_numpy(),
        "true": df["dx"].to_numpy(),
        "predicted": np.asarray(CLASSES)[y_prob.argmax(axis=1)],
        "confidence": y_prob.max(axis=1),
    })
    for k, name in enumerate(CLASSES):
        table[f"p_{name}"] = y_prob[:, k]
    return table


def overall_table(report, metrics=SWEEP_METRICS):
    """Return the overall metrics of an evaluation report as a table with CI columns."""
    rows = [{"metric": m, **report["overall"][m]} for m in metrics if m in report["overall"]]
    return pd.DataFrame(rows).set_index("metric")


def per_class_table(report):
    """Return the per-class metrics of an evaluation report, formatted "value [low, high]"."""
    rows = {}
    for name in CLASSES:
        entry = report["per_class"][name]
        rows[name] = {"n positive": entry["n_positive"], "AUROC": format_cell(entry["auroc"]),
                      "AUPRC": format_cell(entry["auprc"]),
                      "sensitivity at 95% specificity": format_cell(entry["sens_at_95spec"])}
    return pd.DataFrame.from_dict(rows, orient="index")


def corruption_sweep(model, subset, clean_y_prob, names=None, severities=(1, 2, 3, 4, 5), n_bootstrap=200,
                     seed=0, progress=True, **predict_kwargs):
    """Evaluate `model` on every corruption and domain shift at every severity.

    Parameters
    ----------
    clean_y_prob : numpy.ndarray of shape (n_samples, n_classes)
        Probabilities on the clean images, for the change from clean. Its interval comes
        from a paired bootstrap that scores the clean and shifted predictions on the same
        resampled lesions.

    Returns
    -------
    pandas.DataFrame
        Long table with columns corruption, kind, severity, metric, value, ci_low, ci_high,
        and delta, delta_ci_low, delta_ci_high (shifted minus clean).
    """
    names = list(names) if names else CORRUPTIONS.names()
    conditions = [(name, severity) for name in names for severity in severities]
    rows = []
    for name, severity in tqdm(conditions, desc="corruptions", disable=not progress):
        kind = CORRUPTIONS.get(name).kind
        shifted = apply_corruption(name, subset.images, severity, seed=seed)
        y_prob = softmax(predict_logits(model, shifted, **predict_kwargs))
        report = evaluate_predictions(subset.y_true, y_prob, groups=subset.groups, n_bootstrap=n_bootstrap, seed=seed)
        deltas = paired_metric_deltas(subset.y_true, clean_y_prob, y_prob, groups=subset.groups,
                                      n_bootstrap=n_bootstrap, seed=seed)
        for metric in SWEEP_METRICS:
            cell, delta = report["overall"][metric], deltas[metric]
            rows.append(dict(corruption=name, kind=kind, severity=severity, metric=metric, value=cell["value"],
                             ci_low=cell["ci_low"], ci_high=cell["ci_high"], delta=delta["value"],
                             delta_ci_low=delta["ci_low"], delta_ci_high=delta["ci_high"]))
    return pd.DataFrame(rows)


def sweep_summary(sweep, metric="balanced_accuracy", digits=3):
    """Return a corruption x severity table of the change of `metric` from clean, as "delta [low, high]"."""
    table = sweep[sweep["metric"] == metric].copy()
    table["cell"] = [format_interval(row.delta, row.delta_ci_low, row.delta_ci_high, digits, signed=True)
                     for row in table.itertuples()]
    # Spaces, not underscores, so that narrow PDF table columns can wrap the names.
    for column in ("kind", "corruption"):
        table[column] = table[column].str.replace("_", " ")
    return table.pivot(index=["kind", "corruption"], columns="severity", values="cell").reindex(
        pd.MultiIndex.from_frame(table[["kind", "corruption"]].drop_duplicates()))


def format_interval(value, low, high, digits=3, signed=False):
    """Format a value and its interval as "0.812 [0.780, 0.840]".

    Returns "undefined" when the value is missing and the value alone when the interval is.
    Missing means NaN (in memory) or None (after a JSON round trip). `signed` prefixes
    every number with its sign, for changes.
    """
    if is_missing(value):
        return "undefined"
    number = f"{{:{'+' if signed else ''}.{digits}f}}"
    if is_missing(low):
        return number.format(value)
    return f"{number.format(value)} [{number.format(low)}, {number.format(high)}]"


def format_cell(cell, digits=3):
    """Format an evaluation cell {"value", "ci_low", "ci_high"} with :func:`format_interval`."""
    if cell is None:
        return "undefined"
    return format_interval(cell.get("value"), cell.get("ci_low"), cell.get("ci_high"), digits)


def is_missing(value):
    """Return True for None (a JSON null) and NaN, the two forms of an undefined metric."""
    return value is None or pd.isna(value)
