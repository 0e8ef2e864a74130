"""Load and validate a HAM10000-style data folder.

A data folder contains ``HAM10000_metadata.csv`` and the images it lists. The CSV comes
in the 7-column form of the original release (lesion_id, image_id, dx, dx_type, age,
sex, localization) or the 8-column Harvard Dataverse form, which adds ``dataset``.
Images are looked up in ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/``,
or else in one flat folder: ``HAM10000_images/``, ``images/`` or the data folder itself.

Limits: CSV line numbers in error messages assume one line per row, so a quoted field
that contains a line break shifts the numbers of the rows after it. ``dx_type``, ``sex``,
``localization`` and extra columns are not validated and are kept as read.
"""

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from dermaudit.classes import CLASSES
from dermaudit.exceptions import DataValidationError

logger = logging.getLogger(__name__)

METADATA_FILENAME = "HAM10000_metadata.csv"
SYNTHETIC_MARKER_FILENAME = "SYNTHETIC.json"
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
PART_FOLDERS = ("HAM10000_images_part_1", "HAM10000_images_part_2")
FLAT_FOLDERS = ("HAM10000_images", "images")

# Error messages list this many offending rows, then the count of the others.
MAX_LISTED_ROWS = 5

_CLASS_INDEX = {name: index for index, name in enumerate(CLASSES)}
_DATA_ROOT_HINT = (
    "Set DATA_ROOT to a HAM10000 folder that contains HAM10000_metadata.csv and the "
    "HAM10000_images_part_1/ and HAM10000_images_part_2/ folders, or leave DATA_ROOT unset "
    "to use the built-in synthetic data set."
)


def load_metadata(data_root):
    """Read, validate and index the metadata and images of a HAM10000 folder.

    Parameters
    ----------
    data_root : str or os.PathLike
        Folder that contains ``HAM10000_metadata.csv`` and the images.

    Returns
    -------
    df : pandas.DataFrame of shape (n_images, n_csv_columns + 3)
        One row per CSV row, in CSV order, with a RangeIndex. It has the CSV columns
        (``age`` as float, NaN where the cell is empty, the others as strings) plus
        ``path`` (absolute image path), ``file_size`` (int, bytes) and ``label``
        (int index into :data:`dermaudit.classes.CLASSES`).

    Raises
    ------
    DataValidationError
        If the folder or CSV is missing, a required column is missing, or a row is
        invalid. The message names the file, CSV lines, column and values.
    """
    root = Path(data_root).expanduser().resolve()
    csv_path = _locate_csv(root)
    df = _read_csv(csv_path)

    _check_columns(df, csv_path)
    _check_rows(df, csv_path)
    df["age"] = _parse_age(df, csv_path)

    images = find_images(root)
    df = _attach_images(df, images, root, csv_path)
    df["label"] = df["dx"].map(_CLASS_INDEX).astype(np.int64)
    logger.info("loaded %d images of %d lesions from %s", len(df), df["lesion_id"].nunique(), root)
    return df


def is_synthetic(data_root):
    """Return True when `data_root` contains the marker file of the synthetic data generator."""
    return (Path(data_root) / SYNTHETIC_MARKER_FILENAME).is_file()


def find_images(data_root):
    """Map each image_id to its image file under `data_root`.

    Parameters
    ----------
    data_root : str or os.PathLike
        HAM10000 folder. See the module docstring for the folders searched.

    Returns
    -------
    images : dict of str to pathlib.Path
        File stem (the image_id) to path, for files ending in .jpg, .jpeg or .png in
        any letter case. Hidden files (names starting with ".") are skipped.

    Raises
    ------
    DataValidationError
        If two files have the same image_id, for example ``a.jpg`` and ``a.png``.
    """
    images = {}
    for folder in _image_folders(Path(data_root)):
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTENSIONS or not path.is_file():
                continue
            if path.stem in images:
                raise DataValidationError(
                    f"image_id {path.stem!r} matches two files: {images[path.stem]} and {path}. "
                    "Delete or rename one of them."
                )
            images[path.stem] = path
    return images


def _image_folders(root):
    parts = [root / name for name in PART_FOLDERS if (root / name).is_dir()]
    if parts:
        return parts
    for name in FLAT_FOLDERS:
        if (root / name).is_dir():
            return [root / name]
    return [root]


def _locate_csv(root):
    if not root.is_dir():
        raise DataValidationError(f"data folder {root} not found. {_DATA_ROOT_HINT}")
    csv_path = root / METADATA_FILENAME
    if not csv_path.is_file():
        raise DataValidationError(f"metadata file {csv_path} not found. {_DATA_ROOT_HINT}")
    return csv_path


def _read_csv(csv_path):
    # All cells are read as strings, so that an empty cell stays "" and each check
    # below can report the value exactly as it appears in the file.
    try:
        df = pd.read_csv(csv_path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataValidationError(
            f"{csv_path} is not a readable CSV file ({err}). Fix the file or point DATA_ROOT elsewhere."
        ) from err
    if df.empty:
        raise DataValidationError(f"{csv_path} has a header but no rows. Add the rows of the data set.")
    # Rows with fewer fields than the header get NaN in the missing cells.
    return df.fillna("")


def _check_columns(df, csv_path):
    missing = [name for name in REQUIRED_COLUMNS if name not in df.columns]
    if missing:
        raise DataValidationError(
            f"{csv_path}: required columns {missing} are missing. Found columns: {list(df.columns)}. "
            f"Required: {list(REQUIRED_COLUMNS)}. Use the HAM10000 metadata file with its header line."
        )


def _check_rows(df, csv_path):
    for column in ("lesion_id", "image_id"):
        empty = df.index[df[column].str.strip() == ""]
        _raise_for_rows(csv_path, column, df, empty, f"empty {column}", "Fill in the value or remove these rows.")

    invalid_dx = df.index[~df["dx"].isin(CLASSES)]
    expected = ", ".join(CLASSES)
    _raise_for_rows(csv_path, "dx", df, invalid_dx, "invalid dx", f"Expected one of {expected}.")

    duplicated = df.index[df["image_id"].duplicated(keep="first")]
    first_index = _first_index_by(df, "image_id")
    notes = {index: f"first on line {_line(first_index[df.at[index, 'image_id']])}" for index in duplicated}
    _raise_for_rows(
        csv_path, "image_id", df, duplicated, "duplicate image_id", "Keep one row per image.", notes
    )
    _check_lesion_dx(df, csv_path)


def _check_lesion_dx(df, csv_path):
    first_dx = df.groupby("lesion_id", sort=False)["dx"].transform("first")
    conflicting = df.index[df["dx"] != first_dx]
    first_index = _first_index_by(df, "lesion_id")
    notes = {}
    for index in conflicting:
        lesion_id = df.at[index, "lesion_id"]
        other = first_index[lesion_id]
        notes[index] = f"lesion {lesion_id!r} has dx {df.at[other, 'dx']!r} on line {_line(other)}"
    _raise_for_rows(
        csv_path, "dx", df, conflicting, "lesion with two different dx values",
        "All images of a lesion must have the same diagnosis. Correct the dx or the lesion_id.", notes,
    )


def _first_index_by(df, column):
    """Map each value of `column` to the index of the first row that has it."""
    firsts = df.drop_duplicates(column)
    return pd.Series(firsts.index, index=firsts[column])


def _parse_age(df, csv_path):
    text = df["age"].str.strip()
    age = pd.to_numeric(text, errors="coerce").astype(float)
    invalid = df.index[(text != "") & (age.isna() | ~np.isfinite(age) | (age < 0))]
    _raise_for_rows(
        csv_path, "age", df, invalid, "invalid age",
        "Expected a number of years of at least 0, or an empty cell for a missing age.",
    )
    return age


def _attach_images(df, images, root, csv_path):
    missing = df.index[~df["image_id"].isin(list(images))]
    folders = ", ".join(str(folder) for folder in _image_folders(root))
    _raise_for_rows(
        csv_path, "image_id", df, missing, "image file not found",
        f"Searched {folders} for IMAGE_ID.jpg, .jpeg or .png. Add the images or remove these rows.",
    )

    orphans = len(images) - len(df)
    if orphans > 0:
        logger.warning("%d image files under %s have no row in %s and are ignored", orphans, root, csv_path.name)

    paths = [images[image_id] for image_id in df["image_id"]]
    df["path"] = [str(path) for path in paths]
    df["file_size"] = np.array([os.stat(path).st_size for path in paths], dtype=np.int64)
    return df


def _raise_for_rows(csv_path, column, df, rows, problem, fix, notes=None):
    """Raise one DataValidationError that lists the first offending `rows` and their count."""
    if len(rows) == 0:
        return
    listed = []
    for index in rows[:MAX_LISTED_ROWS]:
        entry = f"line {_line(index)}: {df.at[index, column]!r}"
        if notes and index in notes:
            entry += f" ({notes[index]})"
        listed.append(entry)
    more = f", and {len(rows) - MAX_LISTED_ROWS} more rows" if len(rows) > MAX_LISTED_ROWS else ""
    raise DataValidationError(
        f"{csv_path}: {problem} on {len(rows)} row(s) (column {column!r}): {'; '.join(listed)}{more}. {fix}"
    )


def _line(index):
    # Line 1 of the CSV is the header, so data row 0 is on line 2.
    return int(index) + 2
