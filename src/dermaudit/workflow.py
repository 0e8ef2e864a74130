"""The steps the chapter notebooks call: locate and load the data, train or reuse the model.

Chapter 1 splits the data and trains. Chapters 2 to 4 read the split and the checkpoint that
chapter 1 wrote, so any of them can be re-run with new evaluation params without retraining.
"""

import dataclasses
import hashlib
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from dermaudit.classes import CLASSES
from dermaudit.data import ensure_synthetic_dataset, is_synthetic, load_image_cache, load_metadata
from dermaudit.data import split_by_lesion, write_split
from dermaudit.exceptions import DataValidationError, WeightsError
from dermaudit.io import atomic_path, read_json, write_json
from dermaudit.models import create_model, load_checkpoint, resolve_device
from dermaudit.training import fit, seed_everything, training_fingerprint

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Subset:
    """Metadata rows and their cached images, aligned row by row."""

    df: pd.DataFrame
    images: np.ndarray

    @property
    def y_true(self):
        return self.df["label"].to_numpy()

    @property
    def groups(self):
        return self.df["lesion_id"].to_numpy()


@dataclasses.dataclass
class RunData:
    """Everything a chapter needs to know about the data of a run."""

    data_root: Path
    synthetic: bool
    df: pd.DataFrame
    split: pd.Series
    images: np.ndarray
    test_label: str
    notes: list = dataclasses.field(default_factory=list)  # caveats the chapters print, such as id overlap

    def subset(self, name):
        """Return the rows of split `name` ("train", "val" or "test") with their images."""
        mask = (self.split == name).to_numpy()
        return Subset(self.df[mask].reset_index(drop=True), self.images[mask])


def output_paths(output_dir):
    """Return the standard output locations of a run as a dict of Paths."""
    root = Path(output_dir)
    return {
        "root": root,
        "split": root / "split.csv",
        "history": root / "history.json",
        "checkpoint": root / "model" / "best.pt",
        "cache": root / "cache",
        "eval": root / "eval",
        "cases": root / "case_studies",
        "figures": root / "figures",
    }


def resolve_data_root(params):
    """Return the data folder: ``params.data_root``, or the synthetic demo set (generated on first use)."""
    if params.data_root:
        return Path(params.data_root).expanduser().resolve()
    cache = output_paths(params.output_dir)["cache"]
    logger.info("data_root is not set: using the built-in synthetic demo data set")
    return ensure_synthetic_dataset(cache, seed=params.seed, n_images=params.synthetic_n_images)


def data_fingerprint(df):
    """Return a short hash of the image ids, labels and file sizes of a data set."""
    text = "\n".join(df["image_id"] + "," + df["dx"] + "," + df["file_size"].astype(str))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_training_data(params):
    """Load and validate the data, split it by lesion, write split.csv and build the image cache."""
    paths = output_paths(params.output_dir)
    root = resolve_data_root(params)
    df = load_metadata(root)
    split = split_by_lesion(df, fractions=tuple(params.split_fractions), seed=params.seed)
    write_split(df, split, paths["split"])
    images = load_image_cache(df, params.image_size, paths["cache"], progress=params.progress)
    return RunData(root, is_synthetic(root), df, split, images, test_label="internal test split")


def _read_split(df, path):
    """Read split.csv and align it with `df`, raising when it was made for other data."""
    if not path.is_file():
        raise DataValidationError(f"{path} not found; run the training chapter first (make report).")
    saved = pd.read_csv(path, dtype=str)
    if len(saved) != len(df) or set(saved["image_id"]) != set(df["image_id"]):
        raise DataValidationError(f"{path} lists other images than the data set in use; the data changed since "
                                  "training. Rerun the training chapter (make report) to split and train again.")
    return df["image_id"].map(dict(zip(saved["image_id"], saved["split"]))).rename("split")


def prepare_evaluation_data(params, image_size):
    """Load the internal data with its saved split and, when ``params.eval_root`` is set, the external test set.

    Returns
    -------
    run_data : RunData
        Internal data; its "test" subset is replaced by the external set when one is given.
    """
    paths = output_paths(params.output_dir)
    root = resolve_data_root(params)
    df = load_metadata(root)
    split = _read_split(df, paths["split"])
    images = load_image_cache(df, image_size, paths["cache"], progress=params.progress)
    run_data = RunData(root, is_synthetic(root), df, split, images, test_label="internal test split")
    if not params.eval_root:
        return run_data

    eval_root = Path(params.eval_root).expanduser().resolve()
    external = load_metadata(eval_root)
    external_images = load_image_cache(external, image_size, paths["cache"], progress=params.progress)
    overlap = set(external["image_id"]) & set(df.loc[(split != "test").to_numpy(), "image_id"])
    notes = []
    if overlap:
        notes.append(f"{len(overlap)} external test images share an image_id with the training or validation "
                     f"split (for example {sorted(overlap)[0]}), so their scores are optimistic.")
        logger.warning("%s", notes[-1])
    internal = (split != "test").to_numpy()
    return dataclasses.replace(
        run_data,
        df=pd.concat([df[internal], external], ignore_index=True),
        split=pd.Series(split[internal].tolist() + ["test"] * len(external), name="split"),
        images=np.concatenate([images[internal], external_images]),
        test_label=f"external test set {eval_root}",
        notes=notes,
    )


def train_or_load(params, run_data):
    """Train a model, or reuse the saved checkpoint when it was trained with the same params and data.

    Returns
    -------
    model : torch.nn.Module
    meta : dict
        Checkpoint metadata, including ``history`` and ``best``.
    reused : bool
    """
    paths = output_paths(params.output_dir)
    device = resolve_device(params.device)
    if params.checkpoint:
        model, meta = load_checkpoint(params.checkpoint, device=device)
        logger.info("loaded checkpoint %s (%s at %d px); no training", params.checkpoint, meta["model_name"],
                    meta["image_size"])
        write_json(paths["history"], meta.get("history", []))
        return model, meta, True

    fingerprint = training_fingerprint(params, data_fingerprint(run_data.df))
    if params.retrain != "always" and paths["checkpoint"].is_file():
        model, meta = load_checkpoint(paths["checkpoint"], device=device)
        if meta.get("fingerprint") == fingerprint:
            logger.info("reusing %s: trained with the same params and data", paths["checkpoint"])
            write_json(paths["history"], meta["history"])
            return model, meta, True
        logger.info("%s was trained with other params or data; training again", paths["checkpoint"])
    if params.retrain == "never":
        raise WeightsError(f"retrain: never, but no checkpoint trained with these params exists at "
                           f"{paths['checkpoint']}; set retrain: auto to train one.")

    seed_everything(params.seed)  # before create_model, so the initial weights are seeded too
    model = create_model(params.model_name, drop_rate=params.drop_rate, pretrained=params.pretrained,
                         weights_file=params.weights_file)
    train, val = run_data.subset("train"), run_data.subset("val")
    meta = dict(model_name=params.model_name, image_size=params.image_size, drop_rate=params.drop_rate,
                classes=list(CLASSES), fingerprint=fingerprint,
                data_root=str(run_data.data_root), pretrained=params.pretrained)
    history, best = fit(model, train.images, train.y_true, val.images, val.y_true, params, device,
                        paths["checkpoint"], meta)
    write_json(paths["history"], history)
    model.eval()
    return model, dict(meta, history=history, best=best, best_epoch=best["epoch"]), False


def load_trained_model(params):
    """Load the checkpoint that chapter 1 wrote (or ``params.checkpoint``) for an evaluation chapter."""
    path = params.checkpoint or output_paths(params.output_dir)["checkpoint"]
    model, meta = load_checkpoint(path, device=resolve_device(params.device))
    if meta["image_size"] != params.image_size:
        logger.info("evaluating at the checkpoint's image size %d px (params say %d px)",
                    meta["image_size"], params.image_size)
    return model, meta


def read_history(params, meta):
    """Return the training history: history.json when present, else the one stored in the checkpoint."""
    path = output_paths(params.output_dir)["history"]
    return read_json(path) if path.is_file() else meta.get("history", [])


def save_original_image(source, path):
    """Save the full-resolution original image `source` as JPEG at `path` (copied byte for byte when it is a JPEG)."""
    source, path = Path(source), Path(path)
    with atomic_path(path) as tmp:
        if source.suffix.lower() in (".jpg", ".jpeg"):
            shutil.copyfile(source, tmp)
        else:
            with Image.open(source) as image:
                image.convert("RGB").save(tmp, format="JPEG", quality=95)
    return path
