import hashlib
import json

import pandas as pd
import pytest
from PIL import Image

from dermaudit.classes import CLASSES
from dermaudit.data import synthetic
from dermaudit.data.metadata import is_synthetic, load_metadata
from dermaudit.data.synthetic import ensure_synthetic_dataset, generate_synthetic_dataset
from dermaudit.exceptions import ParamsError


def file_hashes(root):
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def synthetic_df(synthetic_data_root):
    return load_metadata(synthetic_data_root)


def test_same_seed_same_bytes(tmp_path):
    first = generate_synthetic_dataset(tmp_path / "a", n_images=40, seed=5)
    second = generate_synthetic_dataset(tmp_path / "b", n_images=40, seed=5)

    assert len(file_hashes(first)) == 42
    assert file_hashes(first) == file_hashes(second)


def test_different_seed_differs(tmp_path, synthetic_data_root):
    other = generate_synthetic_dataset(tmp_path / "other", n_images=80, seed=1)

    first_csv = (synthetic_data_root / "HAM10000_metadata.csv").read_text()
    assert (other / "HAM10000_metadata.csv").read_text() != first_csv


def test_load_metadata_accepts(synthetic_df):
    assert len(synthetic_df) == 80
    assert list(synthetic_df.columns[:8]) == [
        "lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset",
    ]


def test_is_synthetic_true(synthetic_data_root):
    assert is_synthetic(synthetic_data_root)


def test_every_class_present_imbalanced(synthetic_df):
    counts = synthetic_df["dx"].value_counts()

    assert set(counts.index) == set(CLASSES)
    assert counts.idxmax() == "nv"
    assert counts["nv"] > 0.5 * len(synthetic_df)


def test_class_counts_default_size():
    # HAM10000 shares of 1,600 (akiec 1600 * 327 / 10015 = 52.2, ...), with df and vasc
    # raised to the floor of 2.5% = 40 images, and nv taking the remainder.
    counts = synthetic._class_image_counts(1600)

    assert counts == {"akiec": 52, "bcc": 82, "bkl": 176, "df": 40, "mel": 178, "nv": 1032, "vasc": 40}


def test_layout_and_ids(synthetic_df):
    parts = synthetic_df["path"].str.extract(r"(HAM10000_images_part_\d)/")[0]

    assert set(parts) == {"HAM10000_images_part_1", "HAM10000_images_part_2"}
    assert synthetic_df["image_id"].str.fullmatch(r"SYNISIC_00\d{5}").all()
    assert synthetic_df["lesion_id"].str.fullmatch(r"SYNHAM_\d{7}").all()


def test_images_per_lesion(synthetic_df):
    sizes = synthetic_df.groupby("lesion_id").size()

    assert sizes.min() >= 1
    assert sizes.max() <= 4
    assert synthetic_df.groupby("lesion_id")["dx"].nunique().max() == 1


def test_image_size_and_mode(synthetic_df):
    with Image.open(synthetic_df.loc[0, "path"]) as image:
        assert image.size == (200, 150)
        assert image.mode == "RGB"
        assert image.format == "JPEG"


def test_metadata_values(synthetic_df):
    assert set(synthetic_df["dataset"]) == {"synthetic_site_a", "synthetic_site_b"}
    assert set(synthetic_df["sex"]) <= {"male", "female", "unknown"}
    assert set(synthetic_df["dx_type"]) <= {"histo", "follow_up", "consensus", "confocal"}
    assert set(synthetic_df["localization"]) <= set(synthetic.LOCALIZATIONS)
    assert synthetic_df["age"].dropna().between(0, 85).all()


def test_marker_matches_csv(synthetic_data_root, synthetic_df):
    marker = json.loads((synthetic_data_root / "SYNTHETIC.json").read_text())

    assert marker["seed"] == 0
    assert marker["version"] == synthetic.SYNTHETIC_VERSION
    assert marker["n_images"] == 80
    assert marker["class_counts"] == synthetic_df["dx"].value_counts().reindex(CLASSES).to_dict()
    assert set(marker["label_noise_image_ids"]) <= set(synthetic_df["image_id"])


def test_existing_folder_raises(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("keep")

    with pytest.raises(ParamsError, match=r"already exists and is not empty"):
        generate_synthetic_dataset(tmp_path / "data", n_images=40)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_images": 10}, r"n_images must be an int of at least 35, got 10"),
        ({"seed": -1}, r"seed must be a non-negative int"),
        ({"image_size": (16, 16)}, r"image_size must be at least \(32, 32\)"),
        ({"image_size": "big"}, r"image_size must be \(width, height\)"),
    ],
)
def test_invalid_params_raise(tmp_path, kwargs, message):
    with pytest.raises(ParamsError, match=message):
        generate_synthetic_dataset(tmp_path / "data", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_generator(monkeypatch):
    """Make ensure_synthetic_dataset generate 40 images and record the requested n_images."""
    calls = []
    original = synthetic.generate_synthetic_dataset

    def generate(root, n_images, seed):
        calls.append(n_images)
        return original(root, n_images=40, seed=seed)

    monkeypatch.setattr(synthetic, "generate_synthetic_dataset", generate)
    return calls


def test_ensure_generates_once(tmp_path, small_generator):
    first = ensure_synthetic_dataset(tmp_path, seed=2)
    second = ensure_synthetic_dataset(tmp_path, seed=2)

    assert first == second == tmp_path / f"synthetic-v{synthetic.SYNTHETIC_VERSION}-seed2"
    assert len(small_generator) == 1
    assert is_synthetic(first)


def test_ensure_replaces_partial_folder(tmp_path, small_generator):
    partial = tmp_path / f"synthetic-v{synthetic.SYNTHETIC_VERSION}-seed0"
    (partial / "HAM10000_images_part_1").mkdir(parents=True)
    (partial / "HAM10000_metadata.csv").write_text("lesion_id,image_id\n")

    root = ensure_synthetic_dataset(tmp_path)

    assert len(small_generator) == 1
    assert is_synthetic(root)
    assert len(pd.read_csv(root / "HAM10000_metadata.csv")) == 40


def test_ensure_names_custom_size(tmp_path, small_generator):
    root = ensure_synthetic_dataset(tmp_path, seed=1, n_images=400)

    assert root == tmp_path / f"synthetic-v{synthetic.SYNTHETIC_VERSION}-seed1-n400"
    assert small_generator == [400]


def test_no_temp_folder_left(tmp_path):
    generate_synthetic_dataset(tmp_path / "data", n_images=40)

    assert [path.name for path in tmp_path.iterdir()] == ["data"]
