"""Inference: logits, MC-Dropout and test-time augmentation.

MC-Dropout (Gal & Ghahramani 2016, "Dropout as a Bayesian Approximation") keeps the dropout
layers sampling at test time while BatchNorm stays in eval mode, so its running statistics are
used and never updated. Test-time augmentation averages over the eight flips and 90-degree
rotations of the square (the dihedral group D4), which leave a dermoscopy label unchanged.
"""

import contextlib
import logging

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # plain text bars on stderr, also inside a notebook kernel

from dermaudit.models import normalization
from dermaudit.transforms import normalize_batch, to_chw_tensor

logger = logging.getLogger(__name__)

_DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def _batches(n, batch_size):
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


@torch.no_grad()
def predict_logits(model, images, device="cpu", batch_size=128, channels_last=False, progress=False,
                   transform=None, desc="predict"):
    """Return the logits of `model` on uint8 images.

    Parameters
    ----------
    model : torch.nn.Module
        Used in whatever train/eval mode it is in; callers set the mode.
    images : numpy.ndarray
        uint8 array (n_samples, H, W, 3).
    transform : callable, optional
        Applied to each uint8 batch tensor (N, 3, H, W) before normalization.

    Returns
    -------
    numpy.ndarray
        float32 logits (n_samples, n_classes).
    """
    device = torch.device(device)
    norm = normalization(model)
    outputs = []
    for rows in tqdm(list(_batches(len(images), batch_size)), desc=desc, leave=False, disable=not progress):
        batch = to_chw_tensor(images[rows]).to(device)
        if transform is not None:
            batch = transform(batch)
        x = normalize_batch(batch, *norm, channels_last=channels_last)
        outputs.append(model(x).float().cpu())
    if not outputs:
        raise ValueError("predict_logits got no images; the evaluation split is empty.")
    return torch.cat(outputs).numpy()


@contextlib.contextmanager
def mc_dropout_mode(model):
    """Put `model` in eval mode with only its dropout layers sampling; restore the modes after.

    Raises
    ------
    ValueError
        If the model has no dropout layer, because MC-Dropout would then repeat one pass.
    """
    dropouts = [m for m in model.modules() if isinstance(m, _DROPOUT_TYPES) and m.p > 0]
    if not dropouts:
        raise ValueError("the model has no active dropout layer (drop_rate is 0?); "
                         "retrain with drop_rate > 0 to use MC-Dropout.")
    was_training = model.training
    model.eval()
    for module in dropouts:
        module.train()
    try:
        yield model
    finally:
        model.train(was_training)


def mc_dropout_probs(model, images, n_samples=20, seed=0, **predict_kwargs):
    """Return MC-Dropout class probabilities of shape (n_samples, n_images, n_classes)."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        with mc_dropout_mode(model):
            passes = [
                torch.softmax(torch.from_numpy(predict_logits(model, images, desc=f"MC-Dropout {i + 1}",
                                                              **predict_kwargs)), dim=1).numpy()
                for i in range(n_samples)
            ]
    finally:
        torch.set_rng_state(generator_state)
    return np.stack(passes)


def dihedral_transforms(n_transforms=8):
    """Return the first `n_transforms` of the 8 flips/rotations of a square image batch (N, 3, H, W)."""
    transforms = []
    for flip in (False, True):
        for k in range(4):
            def transform(batch, k=k, flip=flip):
                batch = torch.flip(batch, dims=[3]) if flip else batch
                return torch.rot90(batch, k=k, dims=[2, 3])
            transforms.append(transform)
    return transforms[:n_transforms]


def tta_probs(model, images, n_transforms=8, **predict_kwargs):
    """Return test-time augmentation probabilities of shape (n_transforms, n_images, n_classes)."""
    model.eval()
    passes = [
        torch.softmax(torch.from_numpy(predict_logits(model, images, transform=t, desc=f"TTA {i + 1}",
                                                      **predict_kwargs)), dim=1).numpy()
        for i, t in enumerate(dihedral_transforms(n_transforms))
    ]
    return np.stack(passes)


def predictive_entropy(y_prob):
    """Return the entropy (nats) of each row of `y_prob` (n_samples, n_classes)."""
    p = np.clip(y_prob, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def mutual_information(sampled_probs):
    """Return the BALD mutual information (nats) per image from probabilities (n_passes, n_images, n_classes).

    It is the entropy of the mean prediction minus the mean entropy of the passes
    (Houlsby et al. 2011), the part of the uncertainty that comes from the model weights.
    """
    mean_entropy = np.mean([predictive_entropy(p) for p in sampled_probs], axis=0)
    return predictive_entropy(sampled_probs.mean(axis=0)) - mean_entropy
