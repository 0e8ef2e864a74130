import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dermaudit.classes import CLASSES
from dermaudit.data.metadata import is_synthetic, load_metadata
from dermaudit.exceptions import DataValidationError

CSV_COLUMNS = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization"]


def edit_csv(root, edit):
    """Apply `edit` to the list of CSV lines (without line ends) and write the file back."""
    path = root / "HAM10000_metadata.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    edit(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def set_cell(lines, line_number, column, value):
    header = lines[0].split(",")
    cells = lines[line_number - 1].split(",")
    cells[header.index(column)] = value
    lines[line_number - 1] = ",".join(cells)


def test_sample_rows_and_columns(sample_data_root):
    df = load_metadata(sample_data_root)

    assert len(df) == 610
    assert list(df.columns) == CSV_COLUMNS + ["path", "file_size", "label"]
    assert isinstance(df.index, pd.RangeIndex)


def test_sample_keeps_csv_order(sample_data_root):
    df = load_metadata(sample_data_root)
    csv = pd.read_csv(sample_data_root / "HAM10000_metadata.csv")

    assert df["image_id"].tolist() == csv["image_id"].tolist()
    assert df.loc[0, "image_id"] == "ISIC_0025033"


def test_small_has_dataset_column(small_data_root):
    df = load_metadata(small_data_root)

    assert len(df) == 9765
    assert list(df.columns) == CSV_COLUMNS + ["dataset", "path", "file_size", "label"]
    assert set(df["dataset"]) == {"vidir_molemax", "vidir_modern", "rosendahl", "vienna_dias"}


def test_empty_age_is_nan(sample_data_root):
    df = load_metadata(sample_data_root)

    assert df["age"].dtype == np.float64
    assert df["age"].isna().sum() == 2
    assert df.loc[0, "age"] == 60.0


def test_unknown_values_are_kept(sample_data_root):
    df = load_metadata(sample_data_root)

    assert (df["sex"] == "unknown").sum() == 2
    assert (df["localization"] == "unknown").sum() == 17


def test_label_indexes_classes(sample_data_root):
    df = load_metadata(sample_data_root)

    assert df["label"].dtype == np.int64
    assert df.loc[0, "label"] == CLASSES.index("bkl") == 2
    assert (df["dx"] == [CLASSES[label] for label in df["label"]]).all()


def test_path_and_file_size(sample_data_root):
    df = load_metadata(sample_data_root)
    expected = sample_data_root.resolve() / "HAM10000_images_part_1" / "ISIC_0025033.jpg"

    assert df.loc[0, "path"] == str(expected)
    assert df.loc[0, "file_size"] == 25864
    assert all(Path(path).is_absolute() for path in df["path"])


def test_sample_is_not_synthetic(sample_data_root):
    assert not is_synthetic(sample_data_root)


def test_missing_folder_names_fix(tmp_path):
    with pytest.raises(DataValidationError, match=r"data folder .*absent not found\. Set DATA_ROOT .*leave DATA_ROOT unset"):
        load_metadata(tmp_path / "absent")


def test_missing_csv_names_file(tmp_path):
    with pytest.raises(DataValidationError, match=r"HAM10000_metadata\.csv not found\. Set DATA_ROOT"):
        load_metadata(tmp_path)


def test_missing_column_lists_found(make_sample_copy):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: lines.__setitem__(slice(None), [line.rsplit(",", 1)[0] for line in lines]))

    with pytest.raises(DataValidationError, match=r"required columns \['localization'\] are missing\. Found columns: \["):
        load_metadata(root)


def test_invalid_dx_names_line_and_value(make_sample_copy):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: set_cell(lines, 3, "dx", "melanoma"))

    with pytest.raises(DataValidationError, match=r"invalid dx on 1 row\(s\) \(column 'dx'\): line 3: 'melanoma'\. Expected one of akiec"):
        load_metadata(root)


def test_many_invalid_rows_counted(make_sample_copy):
    root = make_sample_copy(8)

    def edit(lines):
        for line_number in range(2, 10):
            set_cell(lines, line_number, "dx", "x")

    edit_csv(root, edit)

    with pytest.raises(DataValidationError, match=r"on 8 row\(s\) \(column 'dx'\): line 2: 'x'; .*; line 6: 'x', and 3 more rows\."):
        load_metadata(root)


def test_empty_lesion_id_rejected(make_sample_copy):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: set_cell(lines, 4, "lesion_id", ""))

    with pytest.raises(DataValidationError, match=r"empty lesion_id on 1 row\(s\) \(column 'lesion_id'\): line 4: ''"):
        load_metadata(root)


def test_duplicate_image_id_names_lines(make_sample_copy):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: set_cell(lines, 4, "image_id", "ISIC_0025033"))

    with pytest.raises(DataValidationError, match=r"duplicate image_id .*line 4: 'ISIC_0025033' \(first on line 2\)"):
        load_metadata(root)


def test_lesion_with_two_dx_rejected(make_sample_copy):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: set_cell(lines, 3, "dx", "mel"))

    with pytest.raises(DataValidationError, match=r"line 3: 'mel' \(lesion 'HAM_0003301' has dx 'bkl' on line 2\)"):
        load_metadata(root)


@pytest.mark.parametrize("age", ["-5", "sixty", "inf"])
def test_invalid_age_rejected(make_sample_copy, age):
    root = make_sample_copy(3)
    edit_csv(root, lambda lines: set_cell(lines, 2, "age", age))

    with pytest.raises(DataValidationError, match=rf"invalid age on 1 row\(s\) \(column 'age'\): line 2: '{age}'"):
        load_metadata(root)


def test_missing_image_names_row(make_sample_copy):
    root = make_sample_copy(3)
    (root / "HAM10000_images_part_1" / "ISIC_0027310.jpg").unlink()

    with pytest.raises(DataValidationError, match=r"image file not found on 1 row\(s\) \(column 'image_id'\): line 3: 'ISIC_0027310'"):
        load_metadata(root)


def test_duplicate_image_file_names_both(make_sample_copy):
    root = make_sample_copy(3)
    source = root / "HAM10000_images_part_1" / "ISIC_0025033.jpg"
    shutil.copy(source, root / "HAM10000_images_part_2" / "ISIC_0025033.PNG")

    with pytest.raises(DataValidationError, match=r"'ISIC_0025033' matches two files: .*part_1/ISIC_0025033\.jpg and .*part_2/ISIC_0025033\.PNG"):
        load_metadata(root)


@pytest.mark.parametrize("folder", ["HAM10000_images", "images", "."])
def test_flat_layouts_found(make_sample_copy, folder):
    root = make_sample_copy(3)
    (root / folder).mkdir(exist_ok=True)
    for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
        for path in (root / part).iterdir():
            path.rename(root / folder / path.name.replace(".jpg", ".JPEG"))
        (root / part).rmdir()

    df = load_metadata(root)

    assert len(df) == 3
    assert df.loc[0, "path"] == str((root / folder / "ISIC_0025033.JPEG").resolve())


def test_orphan_images_logged(make_sample_copy, caplog):
    root = make_sample_copy(3)
    shutil.copy(root / "HAM10000_images_part_1" / "ISIC_0025033.jpg", root / "HAM10000_images_part_1" / "ISIC_9999999.jpg")

    with caplog.at_level(logging.WARNING, logger="dermaudit.data.metadata"):
        df = load_metadata(root)

    assert len(df) == 3
    assert "1 image files under" in caplog.text


def test_extra_column_kept(make_sample_copy):
    root = make_sample_copy(2)

    def edit(lines):
        lines[:] = [line + ("," + ("site" if i == 0 else "x")) for i, line in enumerate(lines)]

    edit_csv(root, edit)
    df = load_metadata(root)

    assert list(df.columns[:8]) == CSV_COLUMNS + ["site"]
    assert df["site"].tolist() == ["x", "x"]


def test_file_size_matches_stat(make_sample_copy):
    root = make_sample_copy(4)
    df = load_metadata(root)

    assert df["file_size"].tolist() == [os.path.getsize(path) for path in df["path"]]
