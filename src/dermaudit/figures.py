"""Figures of the report. Each function draws already-computed numbers and returns a Figure.

No function here computes a metric: they take the tables and dicts that the metrics,
calibration and evaluation modules return.
"""

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from pytorch_grad_cam.utils.image import show_cam_on_image

from dermaudit.classes import CLASSES
from dermaudit.io import atomic_path

logger = logging.getLogger(__name__)

sns.set_theme(style="whitegrid", context="notebook")


def save_figure(fig, path, dpi=150):
    """Save `fig` to `path` atomically, in the format of the suffix.

    Returns nothing, so that a notebook cell ending in this call shows only the figure.
    """
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")


def example_grid(images, labels, per_class=4, seed=0):
    """Draw `per_class` random example images of each class, one row per class."""
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(CLASSES), per_class, figsize=(1.6 * per_class, 1.6 * len(CLASSES)))
    for row, name in enumerate(CLASSES):
        indices = np.flatnonzero(labels == row)
        picks = rng.choice(indices, size=min(per_class, len(indices)), replace=False) if len(indices) else []
        for col in range(per_class):
            ax = axes[row, col]
            ax.axis("off")
            if col < len(picks):
                ax.imshow(images[picks[col]])
        axes[row, 0].set_title(name, loc="left", fontsize=9)
    fig.tight_layout()
    return fig


def class_distribution(df, split):
    """Draw the number of images of each class in each split."""
    splits = [name for name in ("train", "val", "test") if name in set(split)]
    counts = pd.crosstab(df["dx"], split).reindex(index=list(CLASSES), columns=splits, fill_value=0)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    counts.plot.bar(ax=ax, rot=0)
    ax.set_xlabel("diagnosis (dx)")
    ax.set_ylabel("images")
    ax.set_yscale("log")
    ax.legend(title="split")
    fig.tight_layout()
    return fig


def training_curves(history):
    """Draw training and validation loss, and validation balanced accuracy and macro-F1, per epoch."""
    table = pd.DataFrame(history)
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax_loss.plot(table["epoch"], table["train_loss"], marker="o", label="train")
    ax_loss.plot(table["epoch"], table["val_loss"], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
    ax_loss.legend()
    ax_score.plot(table["epoch"], table["val_balanced_accuracy"], marker="o", label="balanced accuracy")
    ax_score.plot(table["epoch"], table["val_macro_f1"], marker="o", label="macro-F1")
    best = table.loc[table["val_balanced_accuracy"].idxmax()]
    ax_score.axvline(best["epoch"], color="grey", linestyle="--", label=f"best epoch ({int(best['epoch'])})")
    ax_score.set(xlabel="epoch", ylabel="score", title="Validation", ylim=(0, 1))
    ax_score.legend()
    fig.tight_layout()
    return fig


def confusion_matrix_figure(matrix, normalize=True):
    """Draw a 7x7 confusion matrix (rows true, columns predicted); row-normalized when `normalize`."""
    counts = np.asarray(matrix, dtype=float)
    values = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1) if normalize else counts
    fig, ax = plt.subplots(figsize=(6, 5))
    sns.heatmap(values, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", vmin=0,
                xticklabels=CLASSES, yticklabels=CLASSES, ax=ax, cbar=False)
    ax.set(xlabel="predicted", ylabel="true")
    fig.tight_layout()
    return fig


METRIC_LABELS = {"auroc": "AUROC", "auprc": "AUPRC", "sens_at_95spec": "sensitivity at 95% specificity"}


def per_class_metrics_figure(per_class, metrics=("auroc", "auprc", "sens_at_95spec")):
    """Draw per-class metrics with their confidence intervals as error bars.

    `per_class` is the ``per_class`` dict of an evaluation report: class -> metric ->
    {"value", "ci_low", "ci_high"}.
    """
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.5), sharey=True)
    for ax, metric in zip(np.atleast_1d(axes), metrics):
        values = [per_class[c][metric] for c in CLASSES]
        point = np.array([v["value"] if v["value"] is not None else np.nan for v in values], dtype=float)
        low = np.array([v["ci_low"] if v["ci_low"] is not None else np.nan for v in values], dtype=float)
        high = np.array([v["ci_high"] if v["ci_high"] is not None else np.nan for v in values], dtype=float)
        ax.bar(CLASSES, point, color=sns.color_palette()[0])
        ax.errorbar(CLASSES, point, yerr=[point - low, high - point], fmt="none", ecolor="black", capsize=3)
        ax.set(title=METRIC_LABELS.get(metric, metric), ylim=(0, 1.05))
        ax.tick_params(axis="x", rotation=45)
    fig.tight_layout()
    return fig


def shift_curves(sweep, metric="balanced_accuracy", clean_value=None):
    """Draw `metric` against severity for each corruption and domain shift, with CI bands.

    `sweep` is the long table of the robustness sweep (columns corruption, kind, severity,
    metric, value, ci_low, ci_high).
    """
    table = sweep[sweep["metric"] == metric]
    kinds = list(dict.fromkeys(table["kind"]))
    fig, axes = plt.subplots(1, len(kinds), figsize=(5.5 * len(kinds), 3.8), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        for name, rows in table[table["kind"] == kind].groupby("corruption", sort=False):
            ax.plot(rows["severity"], rows["value"], marker="o", label=name)
            ax.fill_between(rows["severity"], rows["ci_low"], rows["ci_high"], alpha=0.15)
        if clean_value is not None:
            ax.axhline(clean_value, color="black", linestyle="--", label="clean")
        ax.set(xlabel="severity", ylabel=metric.replace("_", " "), title=kind.replace("_", " "),
               xticks=sorted(table["severity"].unique()))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def corruption_examples(images_by_condition, titles):
    """Draw one image under several corruptions side by side."""
    fig, axes = plt.subplots(1, len(images_by_condition), figsize=(1.7 * len(images_by_condition), 2.0))
    for ax, image, title in zip(np.atleast_1d(axes), images_by_condition, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    return fig


def slice_figure(slice_table, metric="balanced_accuracy"):
    """Draw `metric` per group for every slice as horizontal bars with confidence intervals and group sizes."""
    slices = list(dict.fromkeys(slice_table["slice"]))
    n_cols = min(2, len(slices))
    n_rows = int(np.ceil(len(slices) / n_cols))
    max_groups = slice_table.groupby("slice").size().max()
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(6.5 * n_cols, (0.22 * max_groups + 0.8) * n_rows),
                             squeeze=False)
    for ax, name in zip(axes.flat, slices):
        rows = slice_table[slice_table["slice"] == name]
        labels = [f"{group} (n={n})" for group, n in zip(rows["group"], rows["n"])]
        ax.barh(labels, rows[metric], color=sns.color_palette()[1])
        if f"{metric}_ci_low" in rows:
            ax.errorbar(rows[metric], labels,
                        xerr=[rows[metric] - rows[f"{metric}_ci_low"], rows[f"{metric}_ci_high"] - rows[metric]],
                        fmt="none", ecolor="black", capsize=2)
        for position, value in enumerate(rows[metric]):
            if pd.isna(value):
                ax.text(0.01, position, "undefined", va="center", fontsize=7, color="grey")
        ax.set(title=name.replace("_", " "), xlim=(0, 1.05), xlabel=metric.replace("_", " "))
        ax.invert_yaxis()
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(slices):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def reliability_diagram(curve, title, ece=None):
    """Draw a reliability diagram from a :func:`dermaudit.calibration.reliability_curve` table."""
    fig, (ax, ax_count) = plt.subplots(2, 1, figsize=(4.5, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _draw_reliability(ax, ax_count, curve, title, ece)
    fig.tight_layout()
    return fig


def reliability_grid(curves, eces):
    """Draw several reliability diagrams side by side; `curves` and `eces` map a method name to its table and ECE."""
    fig, axes = plt.subplots(2, len(curves), figsize=(3.6 * len(curves), 4.8), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]})
    for col, (name, curve) in enumerate(curves.items()):
        _draw_reliability(axes[0, col], axes[1, col], curve, name, eces.get(name))
    fig.tight_layout()
    return fig


def _draw_reliability(ax, ax_count, curve, title, ece):
    width = curve["bin_upper"] - curve["bin_lower"]
    ax.bar(curve["bin_lower"], curve["accuracy"].fillna(0), width=width, align="edge", edgecolor="black",
           label="accuracy")
    ax.bar(curve["bin_lower"], (curve["mean_confidence"] - curve["accuracy"]).fillna(0),
           bottom=curve["accuracy"].fillna(0), width=width, align="edge", color="red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=title if ece is None else f"{title} (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    ax_count.bar(curve["bin_lower"], curve["count"], width=width, align="edge", color="grey")
    ax_count.set(xlabel="confidence", ylabel="images")


def uncertainty_figure(uncertainty, correct, label):
    """Draw the distribution of an uncertainty score for correct and wrong predictions."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    frame = pd.DataFrame({label: uncertainty, "prediction": np.where(correct, "correct", "wrong")})
    sns.histplot(frame, x=label, hue="prediction", stat="density", common_norm=False, bins=25, ax=ax,
                 element="step")
    fig.tight_layout()
    return fig


def case_figure(image, cam, y_prob_row, title, cam_name="Grad-CAM"):
    """Draw one case: the image, its class activation map overlay and the class probabilities."""
    rgb = np.asarray(image, dtype=np.float32) / 255.0
    overlay = show_cam_on_image(rgb, cam, use_rgb=True)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 1, 1.3]})
    axes[0].imshow(image)
    axes[0].set_title("image")
    axes[1].imshow(overlay)
    axes[1].set_title(f"{cam_name} (predicted class)")
    for ax in axes[:2]:
        ax.axis("off")
    axes[2].barh(CLASSES, y_prob_row, color=sns.color_palette()[0])
    axes[2].invert_yaxis()
    axes[2].set(xlim=(0, 1), xlabel="probability")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
