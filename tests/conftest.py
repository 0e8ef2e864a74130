"""Shared fixtures: the real HAM10000 samples beside the project, copies of them, and synthetic data.

The real data sets are expected at ``../shared/data`` relative to the repository root, or in
the folder named by the environment variable DERMAUDIT_TEST_DATA. Tests that need them are
skipped when that folder is missing.
"""

import os
import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("DERMAUDIT_TEST_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
METADATA_FILENAME = "HAM10000_metadata.csv"


def _shared_data_set(name):
    root = SHARED_DATA / name
    if not (root / METADATA_FILENAME).is_file():
        pytest.skip(f"real data set {root} not found; place the shared folder beside the repository "
                    "or set DERMAUDIT_TEST_DATA to the folder that contains it")
    return root


@pytest.fixture(scope="session")
def sample_data_root():
    """Folder of the 610-image HAM10000 sample (600x450 JPEGs, 7-column CSV), read only."""
    return _shared_data_set("ham10000-sample")


@pytest.fixture(scope="session")
def small_data_root():
    """Folder of the 9,765-image HAM10000 set (200x150 JPEGs, 8-column CSV), read only."""
    return _shared_data_set("ham10000-small")


@pytest.fixture
def make_sample_copy(sample_data_root, tmp_path):
    """Return a function that copies the first `n_rows` rows of the sample and their images to a temp folder.

    The copy keeps the CSV lines byte for byte and the part_1/part_2 layout, so a test
    can edit or delete files freely.
    """

    def make(n_rows, name="ham"):
        root = tmp_path / name
        lines = (sample_data_root / METADATA_FILENAME).read_text(encoding="utf-8").splitlines(keepends=True)
        selected = lines[: n_rows + 1]
        for part in ("HAM10000_images_part_1", "HAM10000_images_part_2"):
            (root / part).mkdir(parents=True)
        (root / METADATA_FILENAME).write_text("".join(selected), encoding="utf-8")
        for line in selected[1:]:
            image_id = line.split(",")[1]
            source = next(sample_data_root.glob(f"HAM10000_images_part_*/{image_id}.jpg"))
            shutil.copy2(source, root / source.parent.name / source.name)
        return root

    return make


@pytest.fixture(scope="session")
def synthetic_data_root(tmp_path_factory):
    """Folder of a small synthetic data set (80 images, seed 0), generated once per session."""
    from dermaudit.data.synthetic import generate_synthetic_dataset

    return generate_synthetic_dataset(tmp_path_factory.mktemp("synthetic") / "data", n_images=80, seed=0)
