import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from dermaudit.classes import CLASSES
from dermaudit.exceptions import ParamsError, WeightsError
from dermaudit.models import create_model, load_checkpoint, save_checkpoint
from dermaudit.prediction import mc_dropout_mode, mc_dropout_probs, predict_logits


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "efficientnet_b0"])
def test_dropout_module_before_classifier(name):
    model = create_model(name, drop_rate=0.25)
    head = model.get_classifier()
    assert isinstance(head, nn.Sequential)
    assert isinstance(head[0], nn.Dropout)
    assert head[0].p == 0.25
    assert head[1].out_features == len(CLASSES)


def test_unknown_model_name_raises():
    with pytest.raises(ParamsError, match="unknown timm model 'resnet1800'"):
        create_model("resnet1800")


def test_missing_weights_file_raises(tmp_path):
    with pytest.raises(ParamsError, match="weights_file .* not found"):
        create_model("resnet18", pretrained=True, weights_file=tmp_path / "missing.pth")


def test_local_weights_file_loads(tmp_path):
    import timm

    source = timm.create_model("resnet18", pretrained=False, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = create_model("resnet18", pretrained=True, weights_file=path)
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_hub_weights_offline_raise_weights_error():
    # The hub client reads HF_HUB_OFFLINE at import time, so the check runs in a fresh process.
    code = "from dermaudit.models import create_model; create_model('resnet18', pretrained=True)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert result.returncode != 0
    assert "WeightsError" in result.stderr
    assert "set pretrained: false" in result.stderr


def test_mc_dropout_passes_differ_and_batchnorm_frozen():
    torch.manual_seed(0)
    model = create_model("resnet18", drop_rate=0.5).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
    running_mean = model.bn1.running_mean.clone()

    passes = mc_dropout_probs(model, images, n_samples=2, seed=0)

    assert not np.allclose(passes[0], passes[1])
    assert torch.equal(model.bn1.running_mean, running_mean)
    assert not model.training


def test_mc_dropout_mode_sets_only_dropout_to_train():
    model = create_model("resnet18", drop_rate=0.5)
    with mc_dropout_mode(model):
        modes = {type(m).__name__: m.training for m in model.modules() if isinstance(m, (nn.Dropout, nn.BatchNorm2d))}
    assert modes == {"Dropout": True, "BatchNorm2d": False}


def test_mc_dropout_without_dropout_raises():
    model = create_model("resnet18", drop_rate=0.0)
    with pytest.raises(ValueError, match="no active dropout layer"):
        mc_dropout_probs(model, np.zeros((1, 32, 32, 3), dtype=np.uint8), n_samples=2)


def test_eval_mode_prediction_is_deterministic():
    model = create_model("resnet18").eval()
    images = np.random.default_rng(1).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    assert np.array_equal(predict_logits(model, images), predict_logits(model, images))


def test_checkpoint_round_trip(tmp_path):
    model = create_model("resnet18", drop_rate=0.2).eval()
    path = tmp_path / "model" / "best.pt"
    save_checkpoint(path, model, dict(model_name="resnet18", image_size=32, drop_rate=0.2, classes=list(CLASSES)))
    loaded, meta = load_checkpoint(path)
    images = np.random.default_rng(2).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    assert meta["image_size"] == 32
    np.testing.assert_allclose(predict_logits(loaded, images), predict_logits(model, images), rtol=1e-5, atol=1e-5)
    assert list(path.parent.iterdir()) == [path]


def test_checkpoint_not_found_says_what_to_run(tmp_path):
    with pytest.raises(WeightsError, match="make report"):
        load_checkpoint(tmp_path / "best.pt")


def test_foreign_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="not a dermaudit checkpoint"):
        load_checkpoint(path)
