"""Training loop: class-balanced sampling, AdamW, cross-entropy, best checkpoint by validation balanced accuracy."""

import dataclasses
import hashlib
import json
import logging
import random
import time

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score, f1_score
from torch import nn
from tqdm import tqdm  # plain text bars on stderr, also inside a notebook kernel

from dermaudit.classes import CLASSES
from dermaudit.models import normalization, save_checkpoint
from dermaudit.prediction import predict_logits
from dermaudit.transforms import CachedImageDataset, normalize_batch, training_augmentation

logger = logging.getLogger(__name__)

# Params that change the trained weights. A checkpoint is reused only when all of them match.
TRAINING_KEYS = (
    "model_name", "pretrained", "weights_file", "image_size", "drop_rate", "epochs", "batch_size",
    "lr", "weight_decay", "balanced_sampling", "seed", "split_fractions", "synthetic_n_images",
)


@dataclasses.dataclass
class EpochRecord:
    """Scores of one epoch, as stored in history.json."""

    epoch: int
    train_loss: float
    val_loss: float
    val_balanced_accuracy: float
    val_macro_f1: float
    seconds: float


def seed_everything(seed):
    """Seed Python, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def training_fingerprint(params, data_fingerprint):
    """Return a hash of the training params and the data, to decide whether a checkpoint can be reused."""
    values = {key: getattr(params, key) for key in TRAINING_KEYS}
    values["data"] = data_fingerprint
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_train_loader(images, labels, params, generator):
    """Return a DataLoader over the training images, class-balanced when ``params.balanced_sampling``."""
    dataset = CachedImageDataset(images, labels, transform=training_augmentation(params.image_size))
    if params.balanced_sampling:
        counts = np.bincount(labels, minlength=len(CLASSES)).astype(float)
        weights = 1.0 / counts[labels]
        sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=len(labels), replacement=True,
                                                         generator=generator)
        return torch.utils.data.DataLoader(dataset, batch_size=params.batch_size, sampler=sampler)
    return torch.utils.data.DataLoader(dataset, batch_size=params.batch_size, shuffle=True, generator=generator)


def train_one_epoch(model, loader, optimizer, criterion, device, norm, channels_last, progress, epoch):
    """Run one epoch of training and return the mean training loss."""
    model.train()
    total_loss, total_n = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=not progress)
    for batch, targets in bar:
        x = normalize_batch(batch.to(device), *norm, channels_last=channels_last)
        targets = targets.to(device)

        optimizer.zero_grad(set_to_none=True)
        loss = criterion(model(x), targets)
        loss.backward()
        optimizer.step()

        total_loss += loss.item() * len(targets)
        total_n += len(targets)
        bar.set_postfix(loss=f"{total_loss / total_n:.3f}")
    return total_loss / max(total_n, 1)


def evaluate(model, images, labels, device, batch_size, channels_last):
    """Return validation loss, balanced accuracy and macro-F1 of `model` on `images`, in eval mode."""
    model.eval()
    logits = predict_logits(model, images, device=device, batch_size=batch_size,
                            channels_last=channels_last, progress=False)
    loss = nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(labels)).item()  # labels may be read-only
    y_pred = logits.argmax(axis=1)
    return {
        "val_loss": loss,
        "val_balanced_accuracy": balanced_accuracy_score(labels, y_pred),
        "val_macro_f1": f1_score(labels, y_pred, average="macro", labels=range(len(CLASSES)), zero_division=0),
    }


def fit(model, train_images, train_labels, val_images, val_labels, params, device, checkpoint_path, checkpoint_meta):
    """Train `model`, then load and save the weights of the epoch with the best validation balanced accuracy.

    Returns
    -------
    history : list of dict
        One :class:`EpochRecord` per epoch, as dicts.
    best : dict
        The best epoch's record.
    """
    seed_everything(params.seed)
    generator = torch.Generator().manual_seed(params.seed)
    train_labels = np.asarray(train_labels, dtype=np.int64)
    val_labels = np.asarray(val_labels, dtype=np.int64)

    model.to(device)
    if params.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = make_train_loader(train_images, train_labels, params, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    criterion = nn.CrossEntropyLoss()
    norm = normalization(model)

    history, best = [], None
    for epoch in tqdm(range(1, params.epochs + 1), desc="training", disable=not params.progress):
        start = time.perf_counter()
        train_loss = train_one_epoch(model, loader, optimizer, criterion, device, norm,
                                     params.channels_last, params.progress, epoch)
        scores = evaluate(model, val_images, val_labels, device, params.batch_size * 2, params.channels_last)
        record = EpochRecord(epoch=epoch, train_loss=train_loss, seconds=time.perf_counter() - start, **scores)
        history.append(dataclasses.asdict(record))
        logger.info("epoch %d: train loss %.3f, val loss %.3f, val balanced accuracy %.3f",
                    epoch, train_loss, record.val_loss, record.val_balanced_accuracy)

        if best is None or record.val_balanced_accuracy > best["val_balanced_accuracy"]:
            best = dataclasses.asdict(record)
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.load_state_dict(best_state)
    model.eval()
    save_checkpoint(checkpoint_path, model, dict(checkpoint_meta, best_epoch=best["epoch"], best=best, history=history))
    return history, best
