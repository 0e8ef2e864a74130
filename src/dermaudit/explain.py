"""Failure-case selection, Grad-CAM maps and the written diagnosis of each case.

CAM methods come from pytorch-grad-cam (Selvaraju et al. 2017, "Grad-CAM: Visual Explanations
from Deep Networks via Gradient-based Localization", and the variants registered below).

Limits: the diagnosis text is a rule-based reading of measured facts (confidence, rank of the
true class, where the CAM mass lies, MC-Dropout disagreement). It states what the numbers show;
it is no dermatologist's judgement.
"""

import logging

import numpy as np
import pandas as pd
import pytorch_grad_cam
import torch
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from dermaudit.classes import CLASSES, CLASS_DESCRIPTIONS
from dermaudit.models import normalization
from dermaudit.registry import Registry
from dermaudit.transforms import normalize_batch, to_chw_tensor

logger = logging.getLogger(__name__)

CAM_METHODS = Registry("CAM method")
CAM_METHODS.register("gradcam")(pytorch_grad_cam.GradCAM)
CAM_METHODS.register("gradcam++")(pytorch_grad_cam.GradCAMPlusPlus)
CAM_METHODS.register("hirescam")(pytorch_grad_cam.HiResCAM)
CAM_METHODS.register("layercam")(pytorch_grad_cam.LayerCAM)
CAM_METHODS.register("eigencam")(pytorch_grad_cam.EigenCAM)

CAM_NAMES = {"gradcam": "Grad-CAM", "gradcam++": "Grad-CAM++", "hirescam": "HiResCAM", "layercam": "LayerCAM",
             "eigencam": "EigenCAM"}
MELANOMA = CLASSES.index("mel")


def select_failure_cases(y_true, y_prob, n_cases=4):
    """Choose failure cases: the most confident errors, plus the most confidently missed melanoma.

    Parameters
    ----------
    y_true : numpy.ndarray of shape (n_samples,)
    y_prob : numpy.ndarray of shape (n_samples, n_classes)
    n_cases : int
        Total number of cases; at least 2 when that many errors exist.

    Returns
    -------
    pandas.DataFrame
        One row per case with the row position ``index``, ``reason``, ``true``, ``predicted``
        and ``confidence``, ordered by selection. Empty when the model makes no error.
    """
    y_pred = y_prob.argmax(axis=1)
    confidence = y_prob.max(axis=1)
    errors = np.flatnonzero(y_pred != y_true)
    chosen = []

    missed_mel = errors[y_true[errors] == MELANOMA]
    if len(missed_mel):
        worst = missed_mel[np.argmin(y_prob[missed_mel, MELANOMA])]
        chosen.append((worst, "missed melanoma with the lowest melanoma probability"))

    for index in errors[np.argsort(-confidence[errors], kind="stable")]:
        if len(chosen) >= n_cases:
            break
        if index not in {c[0] for c in chosen}:
            chosen.append((index, "error with the highest confidence"))

    return pd.DataFrame({
        "index": [int(i) for i, _ in chosen],
        "reason": [r for _, r in chosen],
        "true": [CLASSES[y_true[i]] for i, _ in chosen],
        "predicted": [CLASSES[y_pred[i]] for i, _ in chosen],
        "confidence": [float(confidence[i]) for i, _ in chosen],
    })


MIN_CAM_GRID = 4


def default_target_layers(model, image_size):
    """Return the CAM target layer: the deepest timm feature stage whose map is at least 4x4 cells.

    The last stage of a CNN is 1/32 of the input, so at 64 px it is a 2x2 grid, on which a
    CAM can only light up whole quarters of the image. An earlier stage keeps some spatial
    detail at small image sizes.

    Returns
    -------
    layers : list of torch.nn.Module
        One module, as pytorch-grad-cam expects.
    grid : int
        Side of the chosen stage's feature map, in cells.
    """
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"{type(model).__name__} has no timm feature_info; pass target_layers explicitly.")
    stages = list(info)
    fine_enough = [stage for stage in stages if image_size // stage["reduction"] >= MIN_CAM_GRID]
    stage = fine_enough[-1] if fine_enough else stages[0]
    return [model.get_submodule(stage["module"])], image_size // stage["reduction"]


def compute_cams(model, images, target_classes, method="gradcam", target_layers=None, device="cpu"):
    """Return class activation maps for uint8 images.

    Parameters
    ----------
    images : numpy.ndarray
        uint8 (n_images, H, W, 3).
    target_classes : sequence of int
        The class whose evidence each map shows (usually the predicted class).

    Returns
    -------
    numpy.ndarray
        float32 (n_images, H, W) with values in [0, 1].
    """
    cam_class = CAM_METHODS.get(method)
    model.eval()
    layers = target_layers or default_target_layers(model, images.shape[1])[0]
    x = normalize_batch(to_chw_tensor(images).to(device), *normalization(model)).requires_grad_(True)
    targets = [ClassifierOutputTarget(int(c)) for c in target_classes]
    with cam_class(model=model, target_layers=layers) as cam:
        maps = cam(input_tensor=x, targets=targets)
    return np.asarray(maps, dtype=np.float32)


def cam_center_fraction(cam, center_fraction=0.5):
    """Return the share of CAM mass inside the central square covering `center_fraction` of each side.

    Lesions are centred in dermoscopy images, so a low share means the evidence lies in the
    border: skin, hair, rulers or vignetting.
    """
    h, w = cam.shape
    top, left = int(h * (1 - center_fraction) / 2), int(w * (1 - center_fraction) / 2)
    total = float(cam.sum())
    if total <= 0:
        return float("nan")
    return float(cam[top:h - top, left:w - left].sum()) / total


def diagnose_case(true, predicted, y_prob_row, center_share, mc_disagreement=None, cam_name="Grad-CAM"):
    """Return (diagnosis, mitigation) sentences for one failure case from its measured facts.

    Parameters
    ----------
    true, predicted : str
        Class codes.
    y_prob_row : numpy.ndarray of shape (n_classes,)
    center_share : float
        :func:`cam_center_fraction` of the case's CAM. A map spread evenly puts 25% of its
        mass in the central quarter, so only a share above that points at the lesion.
    mc_disagreement : float, optional
        Share of MC-Dropout passes whose prediction differs from the mean prediction.
    cam_name : str
        Name of the CAM method, as the text should call it.
    """
    order = np.argsort(-y_prob_row)
    true_rank = int(np.flatnonzero(order == CLASSES.index(true))[0]) + 1
    p_pred, p_true = float(y_prob_row.max()), float(y_prob_row[CLASSES.index(true)])

    parts = [f"True class: {CLASS_DESCRIPTIONS[true]} ({true}). The model predicts {CLASS_DESCRIPTIONS[predicted]} "
             f"({predicted}) with probability {p_pred:.2f}; the true class gets {p_true:.2f} "
             f"(rank {true_rank} of {len(CLASSES)})."]
    has_share = center_share == center_share  # not NaN
    if has_share:
        parts.append(f"{center_share:.0%} of the {cam_name} mass lies in the central quarter of the image "
                     f"(25% for an even spread), so the evidence is {_where(center_share)}.")
    if mc_disagreement is not None:
        parts.append(f"{mc_disagreement:.0%} of MC-Dropout passes disagree with the mean prediction.")

    mitigation = []
    if true == "mel":
        mitigation.append("Melanoma is the costly miss: flag cases whose melanoma probability exceeds a threshold "
                          "set for high sensitivity on validation data, rather than using the arg-max.")
    if p_pred >= 0.8:
        mitigation.append("The error is confident, so uncertainty-based referral would not catch it; "
                          "more training examples of this confusion and calibrated probabilities are needed.")
    else:
        mitigation.append(f"The top-class probability is only {p_pred:.2f}; refer images with low top-class "
                          "probability or high MC-Dropout disagreement to a dermatologist.")
    if has_share and center_share <= CENTER_SHARE_EVEN:
        mitigation.append("Attention off the lesion suggests shortcut learning: crop or mask the surroundings, "
                          "remove hair and ruler artefacts, or augment them away.")
    return " ".join(parts), " ".join(mitigation)


CENTER_SHARE_EVEN = 0.25  # share of the central quarter under a uniform map


def _where(center_share):
    if center_share >= 0.5:
        return "concentrated on the lesion centre"
    if center_share > CENTER_SHARE_EVEN:
        return "spread over the lesion and its surroundings"
    return "no more on the lesion centre than an even spread, so largely on skin, hair or artefacts"
