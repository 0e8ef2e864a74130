"""End-to-end runs of the four real chapter notebooks through papermill, then the real renderer.

Each run uses params/tiny.yaml (32 px, one epoch), once on the synthetic default and once on
the real HAM10000 sample. The checks recompute reported numbers with scikit-learn.
"""

import hashlib
import json
import re
from pathlib import Path

import nbformat
import pypdf
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from dermaudit.classes import CLASSES
from dermaudit.cli import main

PROJECT_DIR = Path(__file__).resolve().parents[1]
TINY = PROJECT_DIR / "params" / "tiny.yaml"

pytestmark = pytest.mark.slow


def run_cli(monkeypatch, *argv):
    monkeypatch.chdir(PROJECT_DIR)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return main([str(a) for a in argv])


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic") / "output"
    with pytest.MonkeyPatch.context() as mp:
        status = run_cli(mp, "report", "--params", TINY, "--output-dir", out)
    assert status == 0
    return out


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, sample_data_root):
    out = tmp_path_factory.mktemp("sample") / "output"
    with pytest.MonkeyPatch.context() as mp:
        status = run_cli(mp, "report", "--params", TINY, "--output-dir", out, "--data-root", sample_data_root)
    assert status == 0
    return out


RUNS = ["synthetic_run", "sample_run"]


@pytest.mark.parametrize("run", RUNS)
def test_run_writes_every_output(run, request):
    out = request.getfixturevalue(run)
    expected = [
        "split.csv", "history.json", "model/best.pt", "COMMANDS.txt", "params.yaml", "run.json",
        "eval/clean_metrics.json", "eval/corruptions.json", "eval/slices.json", "eval/calibration_stats.json",
        "case_studies/cases.json", "case_studies/case-1.jpg", "case_studies/case-2.jpg",
        "report/report.html", "report/report.pdf",
        *[f"eval/calib_reldiag_{m}.png" for m in ("baseline", "temp_scaling", "mc_dropout", "tta")],
        *[f"notebooks/{stem}.ipynb" for stem in ("01-training", "02-robustness", "03-calibration", "04-cases")],
    ]
    missing = [name for name in expected if not (out / name).is_file()]
    assert missing == []


@pytest.mark.parametrize("run", RUNS)
def test_no_lesion_crosses_splits(run, request):
    split = pd.read_csv(request.getfixturevalue(run) / "split.csv")
    assert split.groupby("lesion_id")["split"].nunique().max() == 1
    assert set(split["split"]) == {"train", "val", "test"}


@pytest.mark.parametrize("run", RUNS)
def test_clean_metrics_match_sklearn(run, request):
    out = request.getfixturevalue(run)
    report = json.loads((out / "eval/clean_metrics.json").read_text())
    predictions = pd.read_csv(out / "eval/predictions_test.csv")
    y_true = predictions["true"].map(CLASSES.index).to_numpy()
    y_prob = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()

    assert report["n"] == len(predictions)
    assert report["overall"]["balanced_accuracy"]["value"] == pytest.approx(
        balanced_accuracy_score(y_true, y_prob.argmax(axis=1)), abs=1e-9)
    mel = CLASSES.index("mel")
    assert report["per_class"]["mel"]["auroc"]["value"] == pytest.approx(
        roc_auc_score(y_true == mel, y_prob[:, mel]), abs=1e-6)
    fpr, tpr, _ = roc_curve(y_true == mel, y_prob[:, mel])
    assert report["per_class"]["mel"]["sens_at_95spec"]["value"] == pytest.approx(tpr[fpr <= 0.05].max(), abs=1e-6)
    cell = report["overall"]["balanced_accuracy"]
    assert cell["ci_low"] <= cell["value"] <= cell["ci_high"]


@pytest.mark.parametrize("run", RUNS)
def test_corruption_deltas_have_intervals(run, request):
    results = json.loads((request.getfixturevalue(run) / "eval/corruptions.json").read_text())
    for row in results["results"]:
        clean = results["clean"][row["metric"]]["value"]
        if row["value"] is None or clean is None:
            continue
        assert row["delta"] == pytest.approx(row["value"] - clean, abs=1e-9)
        # A percentile interval from 20 resamples need not contain the point value, so only its order is checked.
        assert row["delta_ci_low"] <= row["delta_ci_high"]


@pytest.mark.parametrize("run", RUNS)
def test_temperature_lowers_validation_nll(run, request):
    stats = json.loads((request.getfixturevalue(run) / "eval/calibration_stats.json").read_text())
    assert stats["temperature"] > 0
    assert stats["val_nll_after"] <= stats["val_nll_before"] + 1e-9
    assert stats["mc_dropout_max_pass_difference"] > 0


@pytest.mark.parametrize("run", RUNS)
def test_cases_name_real_test_images(run, request):
    out = request.getfixturevalue(run)
    cases = json.loads((out / "case_studies/cases.json").read_text())["cases"]
    test_ids = set(pd.read_csv(out / "split.csv").query("split == 'test'")["image_id"])
    assert len(cases) >= 2
    for case in cases:
        assert case["image_id"] in test_ids
        assert case["true"] != case["predicted"]
        assert sum(case["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert case["diagnosis"] and case["mitigation"]


def figure_outputs(out):
    """Return the labels of figure cells that produced an image in the executed notebooks."""
    labels = []
    for stem in ("01-training", "02-robustness", "03-calibration", "04-cases"):
        for cell in nbformat.read(out / "notebooks" / f"{stem}.ipynb", as_version=4).cells:
            label = next((line.split(":", 1)[1].strip() for line in cell.source.splitlines()
                          if line.startswith("#| label: fig-")), None)
            if label and any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
                labels.append(label)
    return labels


@pytest.mark.parametrize("run", RUNS)
def test_report_html_has_chapters_and_figures(run, request):
    out = request.getfixturevalue(run)
    html = (out / "report/report.html").read_text()
    for number, title in enumerate(("Training", "Robustness", "Calibration and uncertainty", "Case studies"), 1):
        assert re.search(rf'<h1[^>]*><span class="header-section-number">{number}</span> {title}</h1>', html)
    labels = figure_outputs(out)
    assert len(labels) >= 12
    for label in labels:
        assert f'id="{label}"' in html
    assert html.count("data:image/png;base64") >= len(labels)
    assert not re.search(r'(src|href)="https?://', html)


@pytest.mark.parametrize("run", RUNS)
def test_report_pdf_has_pages_and_figures(run, request):
    out = request.getfixturevalue(run)
    reader = pypdf.PdfReader(out / "report/report.pdf")
    images = sum(len(page.images) for page in reader.pages)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert len(reader.pages) >= 8
    assert images >= len(figure_outputs(out))
    for title in ("Training", "Robustness", "Calibration and uncertainty", "Case studies"):
        assert title in text


def test_synthetic_report_has_banner(synthetic_run):
    html = (synthetic_run / "report/report.html").read_text().lower()
    first_page = pypdf.PdfReader(synthetic_run / "report/report.pdf").pages[0].extract_text().lower()
    assert "synthetic demo data" in html
    assert "synthetic demo data" in first_page


def test_real_report_has_no_synthetic_banner(sample_run):
    html = (sample_run / "report/report.html").read_text().lower()
    assert "synthetic demo data" not in html


def test_rerunning_one_chapter_keeps_checkpoint(synthetic_run, tmp_path, monkeypatch):
    checkpoint = synthetic_run / "model/best.pt"
    before = (sha256(checkpoint), checkpoint.stat().st_mtime_ns)
    params = tmp_path / "eval.yaml"
    params.write_text("n_bootstrap: 30\nseverities: [2]\n")  # the rest comes from the last run

    assert run_cli(monkeypatch, "chapter", "robustness", "--params", params, "--output-dir", synthetic_run) == 0

    assert (sha256(checkpoint), checkpoint.stat().st_mtime_ns) == before
    clean = json.loads((synthetic_run / "eval/clean_metrics.json").read_text())
    assert clean["n_bootstrap"] == 30
    sweep = json.loads((synthetic_run / "eval/corruptions.json").read_text())["results"]
    assert {row["severity"] for row in sweep} == {2}
    assert (synthetic_run / "report/report.html").stat().st_mtime_ns > checkpoint.stat().st_mtime_ns
    run = json.loads((synthetic_run / "run.json").read_text())
    assert run["chapters"]["robustness"]["params_file"] == str(params)
    assert run["chapters"]["training"]["params_file"] == str(TINY)
    assert run["params_file"].startswith("mixed: ")


def test_external_test_set_is_used_without_retraining(synthetic_run, sample_data_root, monkeypatch):
    checkpoint = synthetic_run / "model/best.pt"
    before = sha256(checkpoint)

    status = run_cli(monkeypatch, "chapter", "robustness", "--output-dir", synthetic_run,
                     "--eval-root", sample_data_root)

    assert status == 0
    assert sha256(checkpoint) == before
    clean = json.loads((synthetic_run / "eval/clean_metrics.json").read_text())
    assert clean["n"] == 610
    assert "external" in clean["test_set"]
    run = json.loads((synthetic_run / "run.json").read_text())
    assert run["chapters"]["robustness"]["test_set"].startswith("external: ")
    assert run["test_set"].startswith("mixed: ")


def test_chapter_rejects_changed_training_params(synthetic_run, tmp_path, monkeypatch, caplog):
    params = tmp_path / "changed.yaml"
    params.write_text("synthetic_n_images: 500\n")
    before = (synthetic_run / "params.yaml").read_text()

    status = run_cli(monkeypatch, "chapter", "cases", "--params", params, "--output-dir", synthetic_run)

    assert status == 1
    assert "synthetic_n_images: 420 -> 500" in caplog.text
    assert (synthetic_run / "params.yaml").read_text() == before
    assert (synthetic_run / "notebooks" / "04-cases.ipynb").is_file()


def test_evaluation_chapter_without_model_fails_early(tmp_path, monkeypatch, caplog):
    out = tmp_path / "output"

    status = run_cli(monkeypatch, "chapter", "cases", "--params", TINY, "--output-dir", out, "--no-render")

    assert status == 1
    assert "Run `make report` first" in caplog.text
    assert not (out / "notebooks").exists()


def test_failing_chapter_names_cell_and_keeps_notebook(make_sample_copy, tmp_path, monkeypatch, caplog):
    data_root = make_sample_copy(12)
    broken = next(data_root.glob("HAM10000_images_part_*/*.jpg"))
    broken.write_bytes(broken.read_bytes()[:2000])
    out = tmp_path / "output"
    earlier = out / "notebooks" / "01-training.ipynb"
    earlier.parent.mkdir(parents=True)
    earlier.write_text("{}")

    status = run_cli(monkeypatch, "chapter", "training", "--params", TINY, "--output-dir", out,
                     "--data-root", data_root, "--no-render")

    assert status == 1
    failed = out / "notebooks" / "01-training.failed.ipynb"
    assert failed.is_file()
    assert earlier.read_text() == "{}"  # the last successful notebook stays
    assert not (out / "params.yaml").exists()  # records describe only chapters that finished
    message = caplog.text
    assert "chapter 'training'" in message
    assert "failed in cell" in message
    assert str(failed) in message
    assert broken.name in message
    nb = nbformat.read(failed, as_version=4)
    assert any(o.get("output_type") == "error" for c in nb.cells for o in c.get("outputs", []))
    assert not (out / "model" / "best.pt").exists()
