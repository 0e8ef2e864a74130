import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from dermaudit.classes import CLASSES
from dermaudit.exceptions import DataValidationError, ParamsError, RegistryError, SliceUnavailableError
from dermaudit.slices import SLICES, evaluate_slices, mean_luminance

INDEX = pd.Index([101, 102, 103, 104, 105, 106, 107, 108], name="row")


def make_metadata():
    """Eight HAM10000-like rows with a non-default index."""
    return pd.DataFrame(
        {
            "lesion_id": ["L1", "L1", "L2", "L3", "L4", "L5", "L6", "L6"],
            "image_id": [f"ISIC_{i}" for i in range(8)],
            "dx": ["nv", "nv", "mel", "bkl", "nv", "bcc", "mel", "mel"],
            "dx_type": ["follow_up", "follow_up", "histo", "histo", "consensus", "histo", "histo", "histo"],
            "age": [10.0, 29.9, 30.0, 44.0, 45.0, 60.0, 75.0, np.nan],
            "sex": ["male", "male", "female", None, "female", "male", "unknown", "unknown"],
            "localization": ["back", "back", "face", "trunk", "back", "face", "scalp", "scalp"],
            "dataset": [
                "vidir_modern", "vidir_modern", "rosendahl", "rosendahl",
                "vienna_dias", "rosendahl", "vidir_molemax", "vidir_molemax",
            ],
            "path": [f"images/ISIC_{i}.jpg" for i in range(8)],
            "file_size": [1000, 8000, 2000, 7000, 3000, 6000, 4000, 5000],
            "label": [5, 5, 4, 2, 5, 1, 4, 4],
        },
        index=INDEX,
    )


def make_images(levels=(80, 10, 70, 20, 60, 30, 50, 40)):
    """One flat gray image per row, so the mean luminance equals its level."""
    return np.stack([np.full((4, 5, 3), level, dtype=np.uint8) for level in levels])


def make_predictions(y_true, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y_true), len(CLASSES)))
    logits[np.arange(len(y_true)), y_true] += 1.0
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# Slice definitions
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SLICES.names())
def test_slice_labels_align_with_df(name):
    df = make_metadata()
    labels = SLICES.get(name)(df, make_images())

    assert isinstance(labels, pd.Series)
    assert labels.index.equals(df.index)
    assert all(isinstance(label, str) for label in labels)


@pytest.mark.parametrize("name", SLICES.names())
def test_slice_without_source_is_unavailable(name):
    df = make_metadata().drop(columns=["dataset", "file_size", "sex", "age", "localization", "dx_type"])
    with pytest.raises(SliceUnavailableError):
        SLICES.get(name)(df, None)


def test_brightness_quartile_labels():
    labels = SLICES.get("brightness_quartile")(make_metadata(), make_images())
    # Levels 10 and 20 are the darkest two rows, 70 and 80 the brightest.
    expected = ["Q4 (brightest)", "Q1 (darkest)", "Q4 (brightest)", "Q1 (darkest)", "Q3", "Q2", "Q3", "Q2"]
    assert labels.tolist() == expected


def test_brightness_equal_images_unavailable():
    with pytest.raises(SliceUnavailableError, match="mean luminance cannot be formed: all values are 50"):
        SLICES.get("brightness_quartile")(make_metadata(), make_images(levels=[50] * 8))


def test_mean_luminance_uses_bt601_weights():
    image = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    image[..., 0] = 100  # pure red
    assert mean_luminance(image)[0] == pytest.approx(29.9)


def test_file_size_quartile_labels():
    labels = SLICES.get("file_size_quartile")(make_metadata(), None)
    expected = ["Q1 (smallest)", "Q4 (largest)", "Q1 (smallest)", "Q4 (largest)", "Q2", "Q3", "Q2", "Q3"]
    assert labels.tolist() == expected


def test_file_size_all_equal_unavailable():
    df = make_metadata().assign(file_size=5000)
    with pytest.raises(SliceUnavailableError, match="file size cannot be formed: all values are 5000"):
        SLICES.get("file_size_quartile")(df, None)


def test_file_size_missing_value_labeled():
    df = make_metadata()
    df.loc[101, "file_size"] = np.nan
    labels = SLICES.get("file_size_quartile")(df, None)
    assert labels[101] == "missing"


def test_age_band_edges():
    labels = SLICES.get("age_band")(make_metadata(), None)
    assert labels.tolist() == ["<30", "<30", "30-44", "30-44", "45-59", "60-74", "75+", "missing"]


def test_sex_missing_value_labeled():
    labels = SLICES.get("sex")(make_metadata(), None)
    assert labels.tolist() == ["male", "male", "female", "missing", "female", "male", "unknown", "unknown"]


def test_dataset_absent_column_unavailable():
    df = make_metadata().drop(columns="dataset")
    with pytest.raises(SliceUnavailableError, match="no 'dataset' column"):
        SLICES.get("dataset")(df, None)


def test_unknown_slice_lists_valid_names():
    with pytest.raises(RegistryError, match="valid names: age_band, brightness_quartile"):
        SLICES.get("skin_tone")


# ---------------------------------------------------------------------------
# evaluate_slices
# ---------------------------------------------------------------------------


@pytest.fixture
def evaluated():
    df = make_metadata()
    y_true = df["label"].to_numpy()
    y_prob = make_predictions(y_true)
    table, unavailable = evaluate_slices(df.drop(columns="dataset"), make_images(), y_true, y_prob, n_bootstrap=20)
    return df, y_true, y_prob, table, unavailable


def test_evaluate_slices_columns(evaluated):
    table = evaluated[3]
    metric_columns = [
        f"{metric}{suffix}"
        for metric in ("accuracy", "balanced_accuracy", "macro_auroc")
        for suffix in ("", "_ci_low", "_ci_high")
    ]
    assert list(table.columns) == ["slice", "group", "n", *CLASSES, *metric_columns, "n_auroc_classes"]


def test_evaluate_slices_reports_unavailable(evaluated):
    unavailable = evaluated[4]
    assert list(unavailable) == ["dataset"]
    assert "no 'dataset' column" in unavailable["dataset"]


def test_evaluate_slices_group_counts(evaluated):
    table = evaluated[3]
    for slice_name, rows in table.groupby("slice"):
        assert rows["n"].sum() == 8, slice_name
        assert (rows[list(CLASSES)].sum(axis=1) == rows["n"]).all(), slice_name


def test_evaluate_slices_class_mix(evaluated):
    table = evaluated[3]
    scalp = table[(table["slice"] == "localization") & (table["group"] == "scalp")].iloc[0]
    assert scalp["n"] == 2
    assert scalp["mel"] == 2
    assert scalp["nv"] == 0


def test_evaluate_slices_ordered_groups(evaluated):
    table = evaluated[3]
    age_groups = table.loc[table["slice"] == "age_band", "group"].tolist()
    assert age_groups == ["<30", "30-44", "45-59", "60-74", "75+", "missing"]


def test_evaluate_slices_metrics_match_sklearn(evaluated):
    df, y_true, y_prob, table, _ = evaluated
    labels = SLICES.get("dx_type")(df, None).to_numpy()
    for _, row in table[table["slice"] == "dx_type"].iterrows():
        members = labels == row["group"]
        y_pred = y_prob[members].argmax(axis=1)
        assert row["accuracy"] == pytest.approx(accuracy_score(y_true[members], y_pred)), row["group"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected_balanced = balanced_accuracy_score(y_true[members], y_pred)
        assert row["balanced_accuracy"] == pytest.approx(expected_balanced), row["group"]


def test_evaluate_slices_macro_auroc_matches_sklearn(evaluated):
    _, y_true, y_prob, table, _ = evaluated
    # The "histo" group of dx_type contains rows 103, 104, 106, 107, 108: bkl, bcc and mel.
    members = np.array([False, False, True, True, False, True, True, True])
    expected = np.mean([roc_auc_score(y_true[members] == k, y_prob[members, k]) for k in (1, 2, 4)])
    histo = table[(table["slice"] == "dx_type") & (table["group"] == "histo")].iloc[0]
    assert histo["macro_auroc"] == pytest.approx(expected)
    assert histo["n_auroc_classes"] == 3


def test_evaluate_slices_single_class_group_is_nan(evaluated):
    table = evaluated[3]
    follow_up = table[(table["slice"] == "dx_type") & (table["group"] == "follow_up")].iloc[0]
    assert np.isnan(follow_up["macro_auroc"])
    assert follow_up["n_auroc_classes"] == 0
    assert follow_up["accuracy_ci_low"] <= follow_up["accuracy"] <= follow_up["accuracy_ci_high"]


def test_evaluate_slices_no_warnings():
    df = make_metadata()
    y_true = df["label"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evaluate_slices(df, make_images(), y_true, make_predictions(y_true), n_bootstrap=10)


def test_evaluate_slices_min_group_size():
    df = make_metadata()
    y_true = df["label"].to_numpy()
    table, _ = evaluate_slices(df, None, y_true, make_predictions(y_true), names=["localization"], min_group_size=3)
    assert table["group"].tolist() == ["back"]


def test_evaluate_slices_without_images():
    df = make_metadata()
    y_true = df["label"].to_numpy()
    names = ["brightness_quartile", "sex"]
    table, unavailable = evaluate_slices(df, None, y_true, make_predictions(y_true), names=names)
    assert "no images" in unavailable["brightness_quartile"]
    assert set(table["slice"]) == {"sex"}


def test_evaluate_slices_unknown_name_raises():
    df = make_metadata()
    y_true = df["label"].to_numpy()
    with pytest.raises(RegistryError, match="unknown slice 'skin_tone'"):
        evaluate_slices(df, None, y_true, make_predictions(y_true), names=["skin_tone"])


def test_evaluate_slices_length_mismatch_raises():
    df = make_metadata()
    y_true = df["label"].to_numpy()[:7]
    with pytest.raises(DataValidationError, match="df has 8 rows but y_true has 7 samples"):
        evaluate_slices(df, None, y_true, make_predictions(y_true))


@pytest.mark.parametrize("min_group_size", [0, 1.5, True])
def test_evaluate_slices_invalid_min_group_size_raises(min_group_size):
    df = make_metadata()
    y_true = df["label"].to_numpy()
    with pytest.raises(ParamsError, match="min_group_size must be a positive int"):
        evaluate_slices(df, None, y_true, make_predictions(y_true), min_group_size=min_group_size)
