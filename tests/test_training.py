import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from dermaudit.classes import CLASSES
from dermaudit.models import create_model, load_checkpoint
from dermaudit.params import resolve_params
from dermaudit.prediction import predict_logits
from dermaudit.training import fit, training_fingerprint


def colour_images(n_per_class, size, seed):
    """Images whose mean colour depends on the class, with noise, so that a CNN can learn them quickly."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    palette = rng.integers(30, 226, size=(len(CLASSES), 3))
    noise = rng.normal(0, 25, size=(len(labels), size, size, 3))
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    params = resolve_params(dict(image_size=24, epochs=3, batch_size=32, lr=3e-3, progress=False, seed=3))
    train_images, train_labels = colour_images(12, 24, seed=0)
    val_images, val_labels = colour_images(5, 24, seed=1)
    model = create_model("resnet18", drop_rate=0.3)
    path = out / "best.pt"
    history, best = fit(model, train_images, train_labels, val_images, val_labels, params, "cpu", path,
                        dict(model_name="resnet18", image_size=24, drop_rate=0.3, classes=list(CLASSES)))
    return history, best, path, val_images, val_labels


def test_history_has_one_record_per_epoch(trained):
    history, *_ = trained
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for key in ("train_loss", "val_loss", "val_balanced_accuracy", "val_macro_f1"):
        assert all(np.isfinite(r[key]) for r in history)


def test_best_epoch_has_highest_val_balanced_accuracy(trained):
    history, best, *_ = trained
    assert best["val_balanced_accuracy"] == max(r["val_balanced_accuracy"] for r in history)


def test_checkpoint_reproduces_best_val_score(trained):
    _, best, path, val_images, val_labels = trained
    model, meta = load_checkpoint(path)
    y_pred = predict_logits(model, val_images).argmax(axis=1)
    assert balanced_accuracy_score(val_labels, y_pred) == pytest.approx(best["val_balanced_accuracy"])
    assert meta["best_epoch"] == best["epoch"]
    assert len(meta["history"]) == 3


def test_fingerprint_changes_with_training_params():
    base = resolve_params({})
    assert training_fingerprint(base, "d") == training_fingerprint(resolve_params({"n_bootstrap": 5}), "d")
    assert training_fingerprint(base, "d") != training_fingerprint(resolve_params({"epochs": 2}), "d")
    assert training_fingerprint(base, "d") != training_fingerprint(base, "other data")


def test_training_is_reproducible_for_a_seed(tmp_path):
    import pandas as pd

    from dermaudit.workflow import RunData, train_or_load

    images, labels = colour_images(8, 24, seed=4)
    df = pd.DataFrame({"image_id": [f"img{i}" for i in range(len(labels))], "dx": np.asarray(CLASSES)[labels],
                       "file_size": 1, "label": labels, "lesion_id": [f"l{i}" for i in range(len(labels))]})
    split = pd.Series(np.where(np.arange(len(labels)) % 4 == 0, "val", "train"), name="split")
    run_data = RunData(tmp_path, True, df, split, images, test_label="internal test split")
    params = resolve_params(dict(image_size=24, epochs=2, batch_size=16, lr=3e-3, progress=False, seed=7,
                                 retrain="always", output_dir=str(tmp_path)))

    _, first, _ = train_or_load(params, run_data)
    _, second, _ = train_or_load(params, run_data)

    assert [r["train_loss"] for r in first["history"]] == [r["train_loss"] for r in second["history"]]
    assert [r["val_loss"] for r in first["history"]] == [r["val_loss"] for r in second["history"]]
