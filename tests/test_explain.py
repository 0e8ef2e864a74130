import numpy as np
import pytest

from dermaudit.classes import CLASSES
from dermaudit.exceptions import RegistryError
from dermaudit.explain import (CAM_METHODS, cam_center_fraction, compute_cams, default_target_layers, diagnose_case,
                               select_failure_cases)
from dermaudit.models import create_model

MEL, NV, BKL = CLASSES.index("mel"), CLASSES.index("nv"), CLASSES.index("bkl")


def probs(rows):
    y_prob = np.full((len(rows), len(CLASSES)), 0.0)
    for i, (k, p) in enumerate(rows):
        y_prob[i] = (1 - p) / (len(CLASSES) - 1)
        y_prob[i, k] = p
    return y_prob


def test_cases_are_missed_melanoma_then_most_confident_errors():
    y_true = np.array([MEL, MEL, NV, NV, BKL, NV])
    y_prob = probs([(NV, 0.6), (MEL, 0.9), (BKL, 0.95), (NV, 0.99), (NV, 0.7), (MEL, 0.5)])
    cases = select_failure_cases(y_true, y_prob, n_cases=3)
    assert cases["index"].tolist() == [0, 2, 4]
    assert cases["reason"].iloc[0].startswith("missed melanoma")
    assert cases["predicted"].tolist() == ["nv", "bkl", "nv"]


def test_no_errors_gives_no_cases():
    y_true = np.array([NV, MEL])
    assert select_failure_cases(y_true, probs([(NV, 0.9), (MEL, 0.8)])).empty


def test_center_fraction_by_hand():
    cam = np.zeros((8, 8))
    cam[2:6, 2:6] = 1.0
    cam[0, 0] = 4.0
    assert cam_center_fraction(cam) == pytest.approx(16 / 20)


@pytest.mark.parametrize("method", CAM_METHODS.names())
def test_cams_have_image_shape_and_unit_range(method):
    model = create_model("resnet18").eval()
    images = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    cams = compute_cams(model, images, [0, 3], method=method)
    assert cams.shape == (2, 64, 64)
    assert cams.min() >= 0
    assert cams.max() <= 1 + 1e-6


def test_unknown_cam_method_lists_names():
    with pytest.raises(RegistryError, match="valid names: .*gradcam"):
        compute_cams(create_model("resnet18"), np.zeros((1, 32, 32, 3), np.uint8), [0], method="cam9000")


def test_diagnosis_mentions_classes_and_melanoma_mitigation():
    y_prob = probs([(NV, 0.9)])[0]
    diagnosis, mitigation = diagnose_case("mel", "nv", y_prob, center_share=0.3, mc_disagreement=0.1)
    _, off_lesion_mitigation = diagnose_case("mel", "nv", y_prob, center_share=0.2)
    assert "True class: melanoma (mel)" in diagnosis
    assert "melanocytic nevus (nv) with probability 0.90" in diagnosis
    assert "30% of the Grad-CAM mass" in diagnosis
    assert "spread over the lesion and its surroundings" in diagnosis
    assert "sensitivity" in mitigation
    assert "shortcut" not in mitigation
    assert "shortcut" in off_lesion_mitigation


@pytest.mark.parametrize("image_size, grid, layer", [(32, 4, "layer2"), (64, 4, "layer3"), (224, 7, "layer4")])
def test_cam_layer_keeps_at_least_four_cells(image_size, grid, layer):
    model = create_model("resnet18")
    layers, found_grid = default_target_layers(model, image_size)
    assert found_grid == grid
    assert layers[0] is model.get_submodule(layer)
