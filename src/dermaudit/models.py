"""Classifier construction, pretrained weights and checkpoints.

Every model is a timm model whose classifier head is preceded by an ``nn.Dropout``
(timm's ``drop_rate``), so that MC-Dropout can sample it at test time.

Limits: pretrained weights come from the timm/Hugging Face hub or a local file. Without a
network, hub downloads fail; set ``HF_HUB_OFFLINE=1`` to fail at once instead of after the
hub client's retries.
"""

import logging
from pathlib import Path

import timm
import torch
from torch import nn

from dermaudit.classes import CLASSES
from dermaudit.exceptions import ParamsError, WeightsError
from dermaudit.io import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


def create_model(model_name, n_classes=len(CLASSES), drop_rate=0.3, pretrained=False, weights_file=None):
    """Create a timm classifier with dropout before its head.

    Parameters
    ----------
    model_name : str
        Any name from ``timm.list_models()``, e.g. ``"resnet18"`` or ``"densenet121"``.
    n_classes : int
        Number of output logits.
    drop_rate : float
        Dropout probability before the classifier; must be > 0 for MC-Dropout.
    pretrained : bool
        Load ImageNet weights: from `weights_file` when given, else from the timm hub.
    weights_file : str or Path, optional
        Local weights file (.pth, .bin or .safetensors) for this architecture.

    Raises
    ------
    ParamsError
        Unknown model name or missing weights file.
    WeightsError
        Hub weights could not be downloaded.
    """
    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0][:6]}*")[:10]
        raise ParamsError(f"unknown timm model {model_name!r}; similar names: {', '.join(close) or 'none'}. "
                          "See timm.list_models() for all names.")
    # timm's own drop_rate is often functional (F.dropout), invisible to MC-Dropout, so it is
    # turned off here and an nn.Dropout module is placed in front of the classifier instead.
    kwargs = dict(num_classes=n_classes, drop_rate=0.0)
    if pretrained and weights_file:
        path = Path(weights_file)
        if not path.is_file():
            raise ParamsError(f"weights_file {str(path)!r} not found; give the path of a {model_name} weights file "
                              "or set pretrained: false.")
        kwargs["pretrained_cfg_overlay"] = dict(file=str(path.resolve()))

    try:
        model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained:
            raise
        raise WeightsError(
            f"could not load pretrained weights for {model_name!r} ({type(err).__name__}: {err}). "
            "Without network access, set pretrained: false, or download the weights elsewhere and set "
            "weights_file: /path/to/weights. Set HF_HUB_OFFLINE=1 to fail at once instead of retrying."
        ) from err

    _add_head_dropout(model, drop_rate)
    return model


def _add_head_dropout(model, drop_rate):
    """Replace the classifier of a timm model with ``nn.Sequential(nn.Dropout, classifier)``."""
    path = model.pretrained_cfg.get("classifier") if getattr(model, "pretrained_cfg", None) else None
    if not path:
        raise ParamsError(f"model {type(model).__name__} names no classifier in its timm config; "
                          "choose a timm classification model.")
    *parents, leaf = path.split(".")
    owner = model
    for name in parents:
        owner = getattr(owner, name)
    classifier = getattr(owner, leaf)
    setattr(owner, leaf, nn.Sequential(nn.Dropout(p=drop_rate), classifier))


def normalization(model):
    """Return the (mean, std) RGB normalization of a timm model's pretrained config."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))
    return mean, std


def resolve_device(device="auto"):
    """Return a torch.device for "auto", "cpu", "cuda" or "mps"."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParamsError("device 'cuda' requested but torch sees no CUDA GPU; set device: auto or cpu.")
    return torch.device(device)


def save_checkpoint(path, model, meta):
    """Write the model weights and `meta` (model_name, image_size, classes, ...) atomically."""
    payload = dict(meta, format=CHECKPOINT_FORMAT, state_dict=model.state_dict())
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path, device="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns
    -------
    model : torch.nn.Module
        The model in eval mode on `device`.
    meta : dict
        Everything stored beside the weights (model_name, image_size, drop_rate, classes,
        training fingerprint, best epoch and its validation scores).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {str(path)!r} not found; run `make report` (or the training chapter) first, "
                           "or set checkpoint: to an existing dermaudit checkpoint.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as err:
        raise WeightsError(f"checkpoint {str(path)!r} could not be read ({err}); delete it and retrain.") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{str(path)!r} is not a dermaudit checkpoint (format {CHECKPOINT_FORMAT}); "
                           "delete it and retrain.")
    if tuple(payload["classes"]) != CLASSES:
        raise WeightsError(f"{str(path)!r} was trained on classes {payload['classes']}, expected {CLASSES}.")

    state_dict = payload.pop("state_dict")
    model = create_model(payload["model_name"], drop_rate=payload["drop_rate"], pretrained=False)
    model.load_state_dict(state_dict)
    model.to(device).eval()
    return model, payload

