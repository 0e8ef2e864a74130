import warnings

import pandas as pd
import pytest

from dermaudit.classes import CLASSES
from dermaudit.data.metadata import load_metadata
from dermaudit.data.split import split_by_lesion, write_split
from dermaudit.exceptions import DataValidationError, ParamsError


@pytest.fixture(scope="module")
def sample_df(sample_data_root):
    return load_metadata(sample_data_root)


def lesion_frame(images_per_lesion, dx="nv"):
    """Return metadata with one lesion per entry of `images_per_lesion`."""
    rows = []
    for lesion, n_images in enumerate(images_per_lesion):
        for image in range(n_images):
            rows.append({"image_id": f"ISIC_{lesion}_{image}", "lesion_id": f"HAM_{dx}_{lesion}", "dx": dx})
    return pd.DataFrame(rows)


def assert_no_lesion_crosses(df, split):
    splits_per_lesion = split.groupby(df["lesion_id"]).nunique()
    assert splits_per_lesion.max() == 1


def test_no_lesion_crosses_sample(sample_df):
    assert_no_lesion_crosses(sample_df, split_by_lesion(sample_df))


def test_no_lesion_crosses_small(small_data_root):
    df = load_metadata(small_data_root)
    assert_no_lesion_crosses(df, split_by_lesion(df, seed=3))


def test_split_series_shape(sample_df):
    split = split_by_lesion(sample_df)

    assert split.name == "split"
    assert split.index.equals(sample_df.index)
    assert set(split) == {"train", "val", "test"}


def test_same_seed_same_split(sample_df):
    assert split_by_lesion(sample_df, seed=7).equals(split_by_lesion(sample_df, seed=7))


def test_different_seeds_differ(sample_df):
    changed = (split_by_lesion(sample_df, seed=0) != split_by_lesion(sample_df, seed=1)).mean()

    # Two independent 70/15/15 draws disagree on about 1 - (0.7^2 + 2 * 0.15^2) = 0.46 of the images.
    assert changed > 0.25


def test_class_proportions_sample(sample_df):
    split = split_by_lesion(sample_df)
    shares = pd.crosstab(sample_df["dx"], split, normalize="index")

    for dx in CLASSES:
        assert shares.loc[dx, "train"] == pytest.approx(0.70, abs=0.05), dx
        assert shares.loc[dx, "val"] == pytest.approx(0.15, abs=0.05), dx
        assert shares.loc[dx, "test"] == pytest.approx(0.15, abs=0.05), dx


def test_every_class_in_every_split(sample_df):
    counts = pd.crosstab(sample_df["dx"], split_by_lesion(sample_df))

    assert (counts.loc[list(CLASSES), ["train", "val", "test"]] > 0).all().all()


def test_single_image_lesions_exact():
    # 20 single-image lesions at 70/15/15 give exactly 14/3/3 images.
    df = lesion_frame([1] * 20)
    counts = split_by_lesion(df).value_counts()

    assert counts.to_dict() == {"train": 14, "val": 3, "test": 3}


def test_large_lesions_balance_images():
    # 10 images in 4 lesions: val and test get one 1-image lesion each, train the 4+4.
    df = lesion_frame([4, 1, 4, 1])
    counts = split_by_lesion(df).value_counts()

    assert counts.to_dict() == {"train": 8, "val": 1, "test": 1}


def test_three_lesions_fill_each_split():
    df = lesion_frame([2, 1, 3])
    split = split_by_lesion(df)

    assert set(split) == {"train", "val", "test"}
    assert split[df["lesion_id"] == "HAM_nv_2"].eq("train").all()


def test_rare_class_warns_and_trains():
    df = pd.concat([lesion_frame([1] * 10), lesion_frame([2, 1], dx="df")], ignore_index=True)

    with pytest.warns(UserWarning, match=r"class 'df' has 2 lesions, fewer than 3, so all of them go to train"):
        split = split_by_lesion(df)

    assert split[df["dx"] == "df"].eq("train").all()


def test_common_class_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split_by_lesion(lesion_frame([1] * 10))


@pytest.mark.parametrize(
    "fractions, message",
    [
        ((0.5, 0.5), r"must be 3 numbers"),
        (0.7, r"must be 3 numbers"),
        ((0.7, 0.2, 0.2), r"must sum to 1, got \(0\.7, 0\.2, 0\.2\) \(sum 1\.1\)"),
        ((1.0, 0.0, 0.0), r"must be positive numbers"),
        ((0.8, 0.3, -0.1), r"must be positive numbers"),
        (("0.7", "0.15", "0.15"), r"must be positive numbers"),
        ((float("nan"), 0.5, 0.5), r"must be positive numbers"),
    ],
)
def test_invalid_fractions_raise(fractions, message):
    with pytest.raises(ParamsError, match=message):
        split_by_lesion(lesion_frame([1] * 10), fractions=fractions)


def test_lesion_with_two_dx_raises():
    df = lesion_frame([2, 1])
    df.loc[1, "dx"] = "mel"

    with pytest.raises(DataValidationError, match=r"lesions \['HAM_nv_0'\] have more than one dx value"):
        split_by_lesion(df)


def test_missing_column_raises():
    with pytest.raises(DataValidationError, match=r"df has no column \['lesion_id'\]"):
        split_by_lesion(pd.DataFrame({"dx": ["nv"]}))


def test_write_split_csv(sample_df, tmp_path):
    split = split_by_lesion(sample_df)
    path = tmp_path / "out" / "split.csv"

    write_split(sample_df, split, path)
    written = pd.read_csv(path)

    assert list(written.columns) == ["image_id", "lesion_id", "dx", "split"]
    assert written["image_id"].tolist() == sample_df["image_id"].tolist()
    assert written["split"].tolist() == split.tolist()
    assert [p.name for p in path.parent.iterdir()] == ["split.csv"]


def test_write_split_index_mismatch(sample_df, tmp_path):
    split = split_by_lesion(sample_df).iloc[1:]

    with pytest.raises(DataValidationError, match=r"split and df have different indexes"):
        write_split(sample_df, split, tmp_path / "split.csv")


def test_write_split_invalid_value(sample_df, tmp_path):
    split = split_by_lesion(sample_df)
    split.iloc[0] = "holdout"

    with pytest.raises(DataValidationError, match=r"invalid values \['holdout'\]"):
        write_split(sample_df, split, tmp_path / "split.csv")
    assert not (tmp_path / "split.csv").exists()
