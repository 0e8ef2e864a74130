import numpy as np
import pytest

from dermaudit.corruptions import CORRUPTIONS, SEVERITIES, apply_corruption, check_severity
from dermaudit.exceptions import DataValidationError, ParamsError, RegistryError

EXPECTED_KINDS = {
    "gaussian_noise": "corruption",
    "gaussian_blur": "corruption",
    "jpeg_compression": "corruption",
    "brightness_contrast": "corruption",
    "color_cast": "domain_shift",
    "downsample_upsample": "domain_shift",
}


def make_images(n=2, height=128, width=160, seed=0):
    """Textured RGB images with mid-range values, so every corruption has an effect."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    base = np.stack(
        [128 + 60 * np.sin(columns / 5.0), 110 + 50 * np.cos(rows / 4.0), 90 + 40 * np.sin((rows + columns) / 7.0)],
        axis=-1,
    )
    images = [np.clip(base + rng.normal(0, 12, base.shape), 0, 255) for _ in range(n)]
    return np.stack(images).astype(np.uint8)


def mean_absolute_difference(first, second):
    return np.mean(np.abs(first.astype(np.float64) - second.astype(np.float64)))


@pytest.fixture
def read_only_images():
    images = make_images()
    images.setflags(write=False)
    return images


def test_registry_contains_expected_entries():
    assert sorted(CORRUPTIONS.names()) == sorted(EXPECTED_KINDS)


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_kind(name):
    assert CORRUPTIONS.get(name).kind == EXPECTED_KINDS[name]


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_has_five_parameters(name):
    assert len(CORRUPTIONS.get(name).severity_params) == 5


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_preserves_shape_and_dtype(name, severity, read_only_images):
    corrupted = apply_corruption(name, read_only_images, severity)
    assert corrupted.shape == read_only_images.shape
    assert corrupted.dtype == np.uint8


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_leaves_input_unchanged(name, severity):
    images = make_images()
    original = images.copy()
    apply_corruption(name, images, severity)
    np.testing.assert_array_equal(images, original)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_is_deterministic(name, severity, read_only_images):
    first = apply_corruption(name, read_only_images, severity, seed=3)
    second = apply_corruption(name, read_only_images, severity, seed=3)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_changes_image(name, severity, read_only_images):
    corrupted = apply_corruption(name, read_only_images, severity)
    assert mean_absolute_difference(corrupted, read_only_images) > 0.5


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_severity_five_stronger_than_one(name, read_only_images):
    mild = mean_absolute_difference(apply_corruption(name, read_only_images, 1), read_only_images)
    severe = mean_absolute_difference(apply_corruption(name, read_only_images, 5), read_only_images)
    assert severe > mild


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_ignores_global_rng(name):
    np.random.seed(0)
    state_before = np.random.get_state()[1].copy()
    apply_corruption(name, make_images(), 3)
    np.testing.assert_array_equal(np.random.get_state()[1], state_before)


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_corruption_reads_memmap(name, tmp_path):
    images = make_images()
    path = tmp_path / "images.npy"
    np.save(path, images)
    memmap = np.load(path, mmap_mode="r")

    corrupted = apply_corruption(name, memmap, 2)

    assert type(corrupted) is np.ndarray
    np.testing.assert_array_equal(corrupted, apply_corruption(name, images, 2))


def test_noise_seed_changes_output(read_only_images):
    first = apply_corruption("gaussian_noise", read_only_images, 3, seed=0)
    second = apply_corruption("gaussian_noise", read_only_images, 3, seed=1)
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("severity", [0, 6, -1, True, False, 3.0, "3", None])
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_invalid_severity_raises(name, severity, read_only_images):
    with pytest.raises(ParamsError, match="severity must be an int from 1 to 5"):
        apply_corruption(name, read_only_images, severity)


@pytest.mark.parametrize("severity", [0, 6, True, 2.0])
@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_function_rejects_invalid_severity(name, severity, read_only_images):
    with pytest.raises(ParamsError, match="severity must be an int from 1 to 5"):
        CORRUPTIONS.get(name)(read_only_images[0], severity, np.random.default_rng(0))


def test_check_severity_accepts_numpy_int():
    assert check_severity(np.int64(4)) == 4


@pytest.mark.parametrize("name", CORRUPTIONS.names())
def test_function_rejects_legacy_seed(name, read_only_images):
    with pytest.raises(ParamsError, match="numpy.random.Generator"):
        CORRUPTIONS.get(name)(read_only_images[0], 1, 0)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((2, 8, 8, 3), dtype=np.float32),
        np.zeros((8, 8, 3), dtype=np.uint8),
        np.zeros((2, 8, 8, 4), dtype=np.uint8),
    ],
)
def test_invalid_batch_raises(images):
    with pytest.raises(DataValidationError, match=r"uint8 array of shape \(N, H, W, 3\)"):
        apply_corruption("gaussian_noise", images, 1)


def test_unknown_corruption_lists_valid_names(read_only_images):
    with pytest.raises(RegistryError, match="valid names: brightness_contrast, color_cast"):
        apply_corruption("fog", read_only_images, 1)
