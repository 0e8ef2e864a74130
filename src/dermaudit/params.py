"""Run parameters: the schema, defaults, and loading of ``params/*.yaml``.

One flat schema serves all four chapters. The runner validates a params file against it,
fills in defaults, writes the resolved values next to the outputs and injects into each
chapter only the keys that the chapter's ``parameters`` cell declares. papermill itself only
warns about unknown parameters, so the validation here is what rejects a typo.
"""

import dataclasses
import difflib
import logging
from pathlib import Path

import yaml

from dermaudit.exceptions import ParamsError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Params:
    """Every parameter a run accepts, with its default.

    Paths are strings; ``None`` means "not set". Units are in the field names where
    they matter (``image_size`` in pixels, ``lr`` per optimizer step).
    """

    # Data and outputs.
    data_root: str | None = None  # HAM10000 folder; None generates the synthetic demo set.
    eval_root: str | None = None  # External test set in the same layout; None uses the internal test split.
    output_dir: str = "output"
    synthetic_n_images: int = 1600
    split_fractions: list = dataclasses.field(default_factory=lambda: [0.70, 0.15, 0.15])
    seed: int = 0

    # Model and training.
    model_name: str = "resnet18"
    pretrained: bool = False
    weights_file: str | None = None  # Local timm weights file (.pth/.safetensors) used when pretrained.
    checkpoint: str | None = None  # A dermaudit checkpoint to load instead of training.
    retrain: str = "auto"  # auto: reuse output/model/best.pt when trained with the same settings.
    image_size: int = 64
    drop_rate: float = 0.3
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-4
    weight_decay: float = 1e-4
    balanced_sampling: bool = True
    device: str = "auto"
    channels_last: bool = True
    progress: bool = True

    # Evaluation.
    n_bootstrap: int = 1000
    n_bootstrap_shift: int = 200
    corruptions: list | None = None  # None runs every registered corruption and domain shift.
    severities: list = dataclasses.field(default_factory=lambda: [1, 2, 3, 4, 5])
    slices: list | None = None  # None runs every registered slice.
    n_bins: int = 15
    mc_samples: int = 20
    tta_transforms: int = 8
    n_cases: int = 4
    cam_method: str = "gradcam"


PARAM_NAMES = tuple(field.name for field in dataclasses.fields(Params))

# Checked types per key: YAML gives ints for "1" and floats for "1e-4" only with a dot,
# so numbers accept both int and float where a float is expected.
_FLOAT_KEYS = {"drop_rate", "lr", "weight_decay"}
_INT_KEYS = {
    "synthetic_n_images", "seed", "image_size", "epochs", "batch_size", "n_bootstrap",
    "n_bootstrap_shift", "n_bins", "mc_samples", "tta_transforms", "n_cases",
}
_BOOL_KEYS = {"pretrained", "balanced_sampling", "channels_last", "progress"}
_OPTIONAL_STR_KEYS = {"data_root", "eval_root", "weights_file", "checkpoint"}
_CHOICES = {"retrain": ("auto", "always", "never"), "device": ("auto", "cpu", "cuda", "mps")}


def _check_type(key, value, source):
    where = f"{source}: parameter {key!r}"
    if key in _BOOL_KEYS and not isinstance(value, bool):
        raise ParamsError(f"{where} must be true or false, got {value!r}.")
    if key in _INT_KEYS and (isinstance(value, bool) or not isinstance(value, int)):
        raise ParamsError(f"{where} must be an integer, got {value!r}.")
    if key in _FLOAT_KEYS:
        if isinstance(value, str):
            try:
                value = float(value)  # YAML reads 1e-4 (no dot) as a string.
            except ValueError:
                raise ParamsError(f"{where} must be a number, got {value!r}.") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where} must be a number, got {value!r}.")
        value = float(value)
    if key in _OPTIONAL_STR_KEYS and value is not None:
        value = str(value)
    if key in _CHOICES and value not in _CHOICES[key]:
        raise ParamsError(f"{where} must be one of {', '.join(_CHOICES[key])}, got {value!r}.")
    return value


def _check_ranges(params, source):
    _check_numbers(params, source)
    _check_lists(params, source)
    if params.pretrained is False and params.weights_file:
        raise ParamsError(f"{source}: 'weights_file' is set but 'pretrained' is false; set pretrained: true to load it.")


def _check_numbers(params, source):
    positive = ("image_size", "epochs", "batch_size", "n_bins", "mc_samples", "tta_transforms", "synthetic_n_images")
    for key in positive:
        if getattr(params, key) < 1:
            raise ParamsError(f"{source}: parameter {key!r} must be at least 1, got {getattr(params, key)!r}.")
    for key in ("n_bootstrap", "n_bootstrap_shift"):
        if getattr(params, key) < 0:
            raise ParamsError(f"{source}: parameter {key!r} must be 0 (no intervals) or more, got {getattr(params, key)!r}.")

    if not 0.0 <= params.drop_rate < 1.0:
        raise ParamsError(f"{source}: parameter 'drop_rate' must be in [0, 1), got {params.drop_rate!r}.")
    if params.lr <= 0 or params.weight_decay < 0:
        raise ParamsError(f"{source}: 'lr' must be positive and 'weight_decay' not negative, "
                          f"got lr={params.lr!r}, weight_decay={params.weight_decay!r}.")

    if not 2 <= params.n_cases <= 6:
        raise ParamsError(f"{source}: parameter 'n_cases' must be between 2 and 6 (the cases chapter has six figure "
                          f"slots), got {params.n_cases!r}.")
    if params.tta_transforms > 8:
        raise ParamsError(f"{source}: parameter 'tta_transforms' must be at most 8 (the flips and 90-degree rotations), "
                          f"got {params.tta_transforms!r}.")


def _check_lists(params, source):
    fractions = params.split_fractions
    if (not isinstance(fractions, list) or len(fractions) != 3
            or not all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in fractions)
            or abs(sum(fractions) - 1.0) > 1e-6):
        raise ParamsError(f"{source}: parameter 'split_fractions' must be three positive numbers (train, val, test) "
                          f"that sum to 1, such as [0.7, 0.15, 0.15]; got {fractions!r}.")

    if not isinstance(params.severities, list):
        raise ParamsError(f"{source}: parameter 'severities' must be a list such as [1, 2, 3, 4, 5], "
                          f"got {params.severities!r}.")
    bad = [s for s in params.severities if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5]
    if bad or not params.severities:
        raise ParamsError(f"{source}: parameter 'severities' must be a non-empty list of integers 1 to 5, "
                          f"got {params.severities!r}.")


def resolve_params(values=None, source="params", **overrides):
    """Return :class:`Params` from a mapping of values plus overrides, validated.

    Parameters
    ----------
    values : mapping or None
        Values read from a params file. Unknown keys raise :class:`ParamsError` listing
        the valid keys.
    source : str
        Where the values came from, used in error messages (a file path).
    **overrides
        Values that take precedence, such as ``data_root`` from the command line.
        ``None`` overrides are ignored.
    """
    merged = dict(values or {})
    merged.update({k: v for k, v in overrides.items() if v is not None})

    unknown = sorted(set(merged) - set(PARAM_NAMES))
    if unknown:
        raise ParamsError(
            f"{source}: unknown parameter(s) {', '.join(map(repr, unknown))}. "
            f"Valid keys: {', '.join(PARAM_NAMES)}."
        )

    checked = {key: _check_type(key, value, source) for key, value in merged.items()}
    params = Params(**checked)
    _check_ranges(params, source)
    _check_names(params, source)
    return params


def _check_names(params, source):
    """Check names against timm and the registries, so that a typo fails before any training."""
    import timm

    from dermaudit.corruptions import CORRUPTIONS
    from dermaudit.explain import CAM_METHODS
    from dermaudit.slices import SLICES

    if not timm.is_model(params.model_name):
        close = difflib.get_close_matches(params.model_name.lower(), timm.list_models(), n=5, cutoff=0.6)
        raise ParamsError(f"{source}: unknown timm model {params.model_name!r}; closest names: "
                          f"{', '.join(close) or 'none'}. timm.list_models() lists all of them.")
    for key, registry in (("corruptions", CORRUPTIONS), ("slices", SLICES)):
        names = getattr(params, key)
        if names is None:
            continue
        if not isinstance(names, list) or not names:
            raise ParamsError(f"{source}: parameter {key!r} must be a non-empty list of names or null (all); "
                              f"valid names: {', '.join(registry.names())}.")
        unknown = [name for name in names if name not in registry]
        if unknown:
            raise ParamsError(f"{source}: unknown {registry.family} name(s) in {key!r}: {', '.join(map(repr, unknown))}; "
                              f"valid names: {', '.join(registry.names())}.")
    if params.cam_method not in CAM_METHODS:
        raise ParamsError(f"{source}: unknown 'cam_method' {params.cam_method!r}; "
                          f"valid names: {', '.join(CAM_METHODS.names())}.")


def read_params_file(path):
    """Return the mapping in a params YAML file, unvalidated; an empty file gives {}."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"params file {str(path)!r} not found; pass an existing file such as params/default.yaml.")
    try:
        with path.open(encoding="utf-8") as stream:  # a stream, so that YAML errors name the file
            values = yaml.safe_load(stream)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: invalid YAML ({err}); fix the syntax at the line shown.") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ParamsError(f"{path}: expected a mapping of parameter names to values, got {type(values).__name__}.")
    return values


def load_params(path=None, base=None, **overrides):
    """Resolve params from `base` values, then a params YAML file, then `overrides`, each over the last.

    Parameters
    ----------
    path : str or Path, optional
        Params file; without one only `base`, defaults and overrides apply.
    base : mapping, optional
        Values to start from instead of the defaults, such as the resolved params of the
        last run when a single chapter is re-run.
    """
    values = dict(base or {})
    source = "defaults"
    if path is not None:
        values.update(read_params_file(path))
        source = str(path)
    return resolve_params(values, source=source, **overrides)
