from pathlib import Path

import pytest

from dermaudit.exceptions import ParamsError
from dermaudit.params import PARAM_NAMES, Params, load_params, resolve_params

PROJECT_DIR = Path(__file__).resolve().parents[1]


def test_unknown_key_lists_valid_keys(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ParamsError, match="unknown parameter\\(s\\) 'learning_rate'") as info:
        load_params(path)
    for name in ("lr", "epochs", "image_size"):
        assert name in str(info.value)


def test_defaults_match_dataclass():
    params = load_params(None)
    assert params == Params()


def test_yaml_exponent_without_dot_is_a_float(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("lr: 1e-4\n")  # YAML 1.1 reads this as a string.
    assert load_params(path).lr == pytest.approx(1e-4)


def test_overrides_take_precedence(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("data_root: /a\n")
    assert load_params(path, data_root="/b").data_root == "/b"
    assert load_params(path, data_root=None).data_root == "/a"


@pytest.mark.parametrize("text, message", [
    ("epochs: two\n", "'epochs' must be an integer"),
    ("pretrained: 1\n", "'pretrained' must be true or false"),
    ("retrain: sometimes\n", "'retrain' must be one of auto, always, never"),
    ("severities: [0, 3]\n", "'severities' must be a non-empty list of integers 1 to 5"),
    ("drop_rate: 1.0\n", "'drop_rate' must be in \\[0, 1\\)"),
    ("image_size: 0\n", "'image_size' must be at least 1"),
    ("n_cases: 9\n", "'n_cases' must be between 2 and 6"),
    ("weights_file: w.pth\n", "'weights_file' is set but 'pretrained' is false"),
    ("- a\n- b\n", "expected a mapping"),
    ("epochs: [\n", 'invalid YAML'),
    ("epochs: [\n", 'p.yaml", line 2'),
    ("severities: 3\n", "'severities' must be a list"),
    ("split_fractions: [0.5, 0.5]\n", "'split_fractions' must be three positive numbers"),
    ("split_fractions: [0.7, 0.2, 0.2]\n", "sum to 1"),
    ("n_bootstrap: -5\n", "'n_bootstrap' must be 0"),
    ("lr: -0.1\n", "'lr' must be positive"),
    ("model_name: resnet19\n", "unknown timm model 'resnet19'; closest names: resnet18"),
    ("model_name: densnet121\n", "closest names: densenet121"),
    ("corruptions: [gausian_noise]\n", "unknown corruption name.*'gausian_noise'.*gaussian_noise"),
    ("slices: [colour]\n", "unknown slice name.*valid names: .*brightness_quartile"),
    ("cam_method: gradcam9\n", "unknown 'cam_method' 'gradcam9'"),
])
def test_invalid_values_raise(tmp_path, text, message):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(ParamsError, match=message):
        load_params(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["default.yaml", "cpu-real.yaml", "full.yaml", "tiny.yaml"])
def test_shipped_params_files_are_valid(name):
    params = load_params(PROJECT_DIR / "params" / name)
    assert params.model_name


def test_chapters_declare_only_schema_keys():
    from dermaudit.runner import CHAPTERS, declared_parameters

    for stem in CHAPTERS.values():
        declared = declared_parameters(PROJECT_DIR / "chapters" / f"{stem}.ipynb")
        assert set(declared) <= set(PARAM_NAMES)
        assert "output_dir" in declared


def test_chapter_defaults_equal_schema_defaults():
    import papermill

    from dermaudit.runner import CHAPTERS

    defaults = Params()
    for stem in CHAPTERS.values():
        for name, info in papermill.inspect_notebook(str(PROJECT_DIR / "chapters" / f"{stem}.ipynb")).items():
            assert eval(info["default"]) == getattr(defaults, name), f"{stem}: {name}"


def test_resolve_params_rejects_unknown_override():
    with pytest.raises(ParamsError, match="unknown parameter"):
        resolve_params({}, colour="red")
