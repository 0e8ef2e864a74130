"""End-to-end tests of the report renderer: papermill-executed fixture chapters, pandoc and Typst for real."""

import base64
import json
import logging
import os
import re
import shutil
import time
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import papermill
import pytest
from pypdf import PdfReader

from dermaudit.exceptions import RenderError
from dermaudit.report import chapters, render
from dermaudit.report.render import render_report

PROJECT_DIR = Path(__file__).resolve().parents[2]

# One entry per chapter: (title, section, figure label, table label, narrative sentence).
FIXTURE_CHAPTERS = {
    "01-training": ("Training fixture", "Loss curves", "fig-fixture-loss", "tbl-fixture-split",
                    "Narrative of chapter one."),
    "02-robustness": ("Robustness fixture", "Shifts", "fig-fixture-shift", "tbl-fixture-clean",
                      "Narrative of chapter two."),
    "03-calibration": ("Calibration fixture", "Reliability", "fig-fixture-reliability", "tbl-fixture-ece",
                       "Narrative of chapter three."),
    "04-cases": ("Cases fixture", "Failures", "fig-fixture-case", "tbl-fixture-cases",
                 "Narrative of chapter four."),
}
CODE_MARKER = "CODEMARKER"
STDERR_MARKER = "STDERRMARKER"
WARNING_MARKER = "WARNINGMARKER"
STDOUT_MARKER = "STDOUTMARKER"
PIVOT_LABEL = "tbl-fixture-pivot"
REAL_DATA_ROOT = "/data/HAM_10000 [v2]*"
SECTION_LABEL = "sec-fixture-reliability"


def fixture_notebook(stem):
    """Return a small chapter notebook that follows the chapter authors' conventions."""
    title, section, fig_label, tbl_label, narrative = FIXTURE_CHAPTERS[stem]
    parameters = nbformat.v4.new_code_cell(f"seed = 0  # {CODE_MARKER}\nn_rows = 2")
    parameters.metadata["tags"] = ["parameters"]
    section_label = " {#" + SECTION_LABEL + "}" if stem == "03-calibration" else ""
    cells = [
        nbformat.v4.new_markdown_cell(f"# {title}\n\nIntroduction, see @{fig_label} and @{tbl_label}.\n\n"
                                      f"## {section}{section_label}"),
        parameters,
        nbformat.v4.new_code_cell(
            "import sys, warnings\nfrom tqdm import tqdm\n"
            f"for _ in tqdm(range(3)):\n    pass\n"
            f"warnings.warn('{WARNING_MARKER}')\n"
            f"print('{STDERR_MARKER}', file=sys.stderr)\nprint('{STDOUT_MARKER}')"),
        nbformat.v4.new_code_cell(
            f"#| label: {fig_label}\n#| fig-cap: \"Caption of {fig_label}\"\n"
            "import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
            f"import matplotlib.pyplot as plt  # {CODE_MARKER}\n"
            "fig, ax = plt.subplots(figsize=(4, 3))\nax.plot([0, 1, 2], [seed, 1, 4])\nplt.show()"),
        nbformat.v4.new_code_cell(
            f"#| label: {tbl_label}\n#| tbl-cap: \"Caption of {tbl_label}\"\n"
            "import pandas as pd\n"
            f"pd.DataFrame({{'metric': ['accuracy', 'balanced_accuracy'], 'value': [0.875, 0.5 + n_rows / 10]}})"
            ".set_index('metric')"),
        nbformat.v4.new_code_cell(f"from IPython.display import Markdown\nMarkdown('{narrative} **Bold** result.')"),
    ]
    if stem == "04-cases":
        cells.append(nbformat.v4.new_markdown_cell(f"As @{SECTION_LABEL} shows; ask @maintainer."))
    if stem == "02-robustness":
        cells.append(nbformat.v4.new_code_cell(
            f"#| label: {PIVOT_LABEL}\n#| tbl-cap: \"Caption of {PIVOT_LABEL}\"\n"
            "pd.DataFrame([[0.9, 0.8], [0.7, 0.6]], index=pd.Index(['blur', 'noise'], name='corruption'),\n"
            "             columns=pd.Index([1, 2], name='severity'))"))
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return notebook


def execute_fixture_chapters(source_dir, notebook_dir):
    """Write the fixture chapters to `source_dir` and execute them with papermill into `notebook_dir`."""
    source_dir.mkdir(parents=True, exist_ok=True)
    notebook_dir.mkdir(parents=True, exist_ok=True)
    for stem in FIXTURE_CHAPTERS:
        source = source_dir / f"{stem}.ipynb"
        nbformat.write(fixture_notebook(stem), source)
        papermill.execute_notebook(str(source), str(notebook_dir / f"{stem}.ipynb"), parameters={"seed": 1},
                                   kernel_name="python3", progress_bar=False, cwd=str(source_dir))


def write_run_json(output_dir, data_source):
    run = {
        "data_source": data_source,
        "data_root": "built-in synthetic demo data" if data_source == "synthetic" else REAL_DATA_ROOT,
        "test_set": "internal test split (by lesion, 15% of lesions)",
        "params_file": "params/tiny.yaml",
        "model": "resnet18",
        "image_size": 64,
        "created": "2026-01-02T03:04:05+00:00",
    }
    (output_dir / "run.json").write_text(json.dumps(run), encoding="utf-8")


class ReportParser(HTMLParser):
    """Collect headings, figures, tables, resource URLs and visible text of a rendered report."""

    VOID_TAGS = {"img", "meta", "link", "br", "hr", "input", "col"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack = []
        self.headings = {"h1": [], "h2": []}
        self.figures = []
        self.tables = {}
        self.urls = []
        self.ids = []
        self.text = []
        self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag not in self.VOID_TAGS:
            self.stack.append((tag, attrs))
        if attrs.get("id"):
            self.ids.append(attrs["id"])
        for key in ("src", "href"):
            if attrs.get(key):
                self.urls.append(attrs[key])
        if tag in self.headings:
            self.headings[tag].append("")
        if tag == "figure":
            self.figures.append({"id": attrs.get("id"), "images": [], "caption": ""})
        if tag == "img" and self.figures and self._inside("figure"):
            self.figures[-1]["images"].append(attrs.get("src", ""))
        if tag == "table":
            self._table = {"caption": "", "cells": [], "header_rows": 0}
            self.tables[attrs.get("id") or f"table-{len(self.tables)}"] = self._table
        if tag in ("td", "th") and self._table is not None:
            self._table["cells"].append("")
        if tag == "tr" and self._inside("thead") and self._table is not None:
            self._table["header_rows"] += 1

    def handle_endtag(self, tag):
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break
        if tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._inside("style") or self._inside("script") or self._inside("title"):
            return
        self.text.append(data)
        for tag in self.headings:
            if self._inside(tag):
                self.headings[tag][-1] += data
        if self._inside("figcaption") and self.figures:
            self.figures[-1]["caption"] += data
        if self._table is not None and self._inside("caption"):
            self._table["caption"] += data
        elif self._table is not None and (self._inside("td") or self._inside("th")):
            self._table["cells"][-1] += data

    def _inside(self, tag):
        return any(open_tag == tag for open_tag, _ in self.stack)


def parse_html(path):
    parser = ReportParser()
    parser.feed(Path(path).read_text(encoding="utf-8"))
    return parser


def normalize_space(text):
    return re.sub(r"\s+", " ", text).strip()


def pdf_pages_text(path):
    # NFKC turns the ligatures of the PDF font (fi, fl) back into plain letters.
    return [unicodedata.normalize("NFKC", page.extract_text() or "") for page in PdfReader(path).pages]


class InfoRecords(logging.Handler):
    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def render_fixture(executed_dir, output_dir, data_source, project_dir=PROJECT_DIR):
    """Copy the executed fixture chapters into `output_dir`, write run.json and render with pandoc."""
    shutil.copytree(executed_dir, output_dir / "notebooks")
    write_run_json(output_dir, data_source)
    handler = InfoRecords()
    logger = logging.getLogger("dermaudit.report")
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        start = time.perf_counter()
        paths = render_report(project_dir, output_dir, renderer="pandoc")
        seconds = time.perf_counter() - start
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    return {"paths": paths, "records": handler.records, "seconds": seconds}


@pytest.fixture(scope="module")
def executed_dir(tmp_path_factory):
    """The four fixture chapters, executed once with papermill."""
    root = tmp_path_factory.mktemp("chapters")
    execute_fixture_chapters(root / "source", root / "executed")
    return root / "executed"


@pytest.fixture(scope="module")
def synthetic_report(executed_dir, tmp_path_factory):
    """Report from synthetic data, with the output folder inside a copy of the project (Quarto layout)."""
    project = tmp_path_factory.mktemp("project")
    for name in ("report.qmd", "_quarto.yml"):
        shutil.copy(PROJECT_DIR / name, project / name)
    (project / "output").mkdir()
    return render_fixture(executed_dir, project / "output", "synthetic", project_dir=project)


@pytest.fixture(scope="module")
def real_report(executed_dir, tmp_path_factory):
    """Report from real data, with the output folder outside the project."""
    return render_fixture(executed_dir, tmp_path_factory.mktemp("real-output"), "real")


@pytest.fixture(scope="module")
def synthetic_html(synthetic_report):
    return parse_html(synthetic_report["paths"]["html"])


@pytest.fixture(scope="module")
def real_html(real_report):
    return parse_html(real_report["paths"]["html"])


def test_render_writes_html_and_pdf(synthetic_report):
    paths = synthetic_report["paths"]
    report_dir = paths["html"].parent
    assert set(paths) == {"html", "pdf"}
    assert paths["html"].name == "report.html"
    assert paths["pdf"].name == "report.pdf"
    assert sorted(p.name for p in report_dir.iterdir()) == ["report.html", "report.pdf"]


def test_render_logs_one_info_line(synthetic_report):
    info = [r for r in synthetic_report["records"] if r.levelno == logging.INFO]
    assert len(info) == 1
    message = info[0].getMessage()
    assert "'pandoc'" in message
    assert "pandoc 3." in message
    assert "typst" in message


def test_render_finishes_quickly(synthetic_report):
    # Four small chapters: pandoc and Typst take about a second on a 2-core machine.
    assert synthetic_report["seconds"] < 30


def test_html_chapter_headings(synthetic_html):
    h1 = [normalize_space(text) for text in synthetic_html.headings["h1"]]
    h2 = [normalize_space(text) for text in synthetic_html.headings["h2"]]
    for number, (title, section, *_) in enumerate(FIXTURE_CHAPTERS.values(), start=1):
        assert f"{number} {title}" in h1
        assert f"{number}.1 {section}" in h2
    assert "About this report" in h1


def test_html_toc_lists_numbered_chapters(synthetic_html):
    toc_links = [url for url in synthetic_html.urls if url.startswith("#")]
    for stem in FIXTURE_CHAPTERS:
        assert any(url.startswith(f"#{stem}-") for url in toc_links), stem
    assert "TOC" in synthetic_html.ids


def test_html_figures_embedded_with_captions(synthetic_html):
    figures = {figure["id"]: figure for figure in synthetic_html.figures}
    labels = [fig_label for _, _, fig_label, _, _ in FIXTURE_CHAPTERS.values()]
    assert list(figures) == labels
    for number, label in enumerate(labels, start=1):
        figure = figures[label]
        assert len(figure["images"]) == 1
        src = figure["images"][0]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert normalize_space(figure["caption"]) == f"Figure {number}: Caption of {label}"


def test_html_tables_have_captions_and_cells(synthetic_html):
    labels = [tbl_label for _, _, _, tbl_label, _ in FIXTURE_CHAPTERS.values()]
    for label in labels:
        table = synthetic_html.tables[label]
        assert normalize_space(table["caption"]).endswith(f"Caption of {label}")
        assert [normalize_space(cell) for cell in table["cells"]] == [
            "metric", "value", "accuracy", "0.875", "balanced_accuracy", "0.700"]
        assert table["header_rows"] == 1


def test_html_tables_numbered_in_order(synthetic_html):
    captions = [normalize_space(table["caption"]) for table in synthetic_html.tables.values()]
    assert captions == [
        "Table 1: Caption of tbl-fixture-split",
        "Table 2: Caption of tbl-fixture-clean",
        f"Table 3: Caption of {PIVOT_LABEL}",
        "Table 4: Caption of tbl-fixture-ece",
        "Table 5: Caption of tbl-fixture-cases",
    ]


def test_html_pivot_table_one_header_row(synthetic_html):
    table = synthetic_html.tables[PIVOT_LABEL]
    assert table["header_rows"] == 1
    assert [normalize_space(cell) for cell in table["cells"]] == [
        "corruption / severity", "1", "2", "blur", "0.9", "0.8", "noise", "0.7", "0.6"]


def test_html_cross_references_resolved(synthetic_html):
    text = normalize_space("".join(synthetic_html.text))
    assert "Introduction, see Figure 1 and Table 1." in text
    assert "Introduction, see Figure 2 and Table 2." in text
    assert "#fig-fixture-loss" in synthetic_html.urls
    assert "#tbl-fixture-cases" in synthetic_html.urls
    assert "As Section 3.1 shows; ask @maintainer." in text
    assert f"#{SECTION_LABEL}" in synthetic_html.urls
    assert SECTION_LABEL in synthetic_html.ids


def test_html_markdown_output_rendered(synthetic_html):
    text = normalize_space(" ".join(synthetic_html.text))
    for *_, narrative in FIXTURE_CHAPTERS.values():
        assert f"{narrative} Bold result." in text
    assert "**" not in text


def test_html_hides_code_and_streams(synthetic_report):
    html = synthetic_report["paths"]["html"].read_text(encoding="utf-8")
    for marker in (CODE_MARKER, STDERR_MARKER, WARNING_MARKER, STDOUT_MARKER, "seed = ", "# Parameters",
                   "it/s", "<Figure size", "IPython.core.display"):
        assert marker not in html, marker


def test_html_is_self_contained(synthetic_report):
    html = synthetic_report["paths"]["html"].read_text(encoding="utf-8")
    parser = parse_html(synthetic_report["paths"]["html"])
    external = [url for url in parser.urls if re.match(r"(https?:)?//", url)]
    assert external == []
    assert re.search(r"url\(\s*['\"]?(https?:)?//", html) is None
    assert re.search(r"<script[^>]+src=", html) is None
    assert re.search(r"<link[^>]+stylesheet", html) is None
    assert re.search(r"@import", html) is None


def test_html_synthetic_banner_first(synthetic_report, synthetic_html):
    html = synthetic_report["paths"]["html"].read_text(encoding="utf-8")
    assert "synthetic-data-banner" in synthetic_html.ids
    banner = html.index('id="synthetic-data-banner"')
    assert banner < html.index('id="TOC"')
    assert banner < html.index('id="about-this-report"')
    text = normalize_space(" ".join(synthetic_html.text))
    assert "This report was made from synthetic demo data" in text
    assert "Its numbers say nothing about real dermoscopy" in text


def test_html_real_data_has_no_banner(real_html):
    text = normalize_space(" ".join(real_html.text))
    assert "synthetic-data-banner" not in real_html.ids
    assert "synthetic demo data" not in text.lower()


def test_html_shows_run_facts(synthetic_html, real_html):
    for parser in (synthetic_html, real_html):
        text = normalize_space(" ".join(parser.text))
        assert "Test set: internal test split (by lesion, 15% of lesions)" in text
        assert "Model: resnet18, images resized to 64 × 64 pixels" in text
        assert "Parameters file: params/tiny.yaml" in text
    real_text = normalize_space(" ".join(real_html.text))
    assert f"Data: real images from {REAL_DATA_ROOT}" in real_text


def test_pdf_pages_images_and_text(synthetic_report):
    path = synthetic_report["paths"]["pdf"]
    reader = PdfReader(path)
    pages = pdf_pages_text(path)
    text = normalize_space(" ".join(pages))
    assert len(reader.pages) > 1
    assert sum(len(page.images) for page in reader.pages) >= len(FIXTURE_CHAPTERS)
    for title, *_ in FIXTURE_CHAPTERS.values():
        assert title in text
    for number in range(1, len(FIXTURE_CHAPTERS) + 1):
        assert f"Figure {number}: Caption of" in text
    assert "Table 3: Caption of tbl-fixture-pivot" in text
    assert "As Section 3.1 shows; ask @maintainer." in text
    assert "balanced_accuracy" in text


def test_pdf_first_page_banner_and_facts(synthetic_report):
    first_page = normalize_space(pdf_pages_text(synthetic_report["paths"]["pdf"])[0])
    assert "Synthetic demo data" in first_page
    assert "This report was made from synthetic demo data" in first_page
    assert "internal test split (by lesion, 15% of lesions)" in first_page
    assert "Contents" in first_page


def test_pdf_real_data_has_no_banner(real_report):
    text = normalize_space(" ".join(pdf_pages_text(real_report["paths"]["pdf"])))
    assert "synthetic demo data" not in text.lower()
    assert REAL_DATA_ROOT in text


def test_pdf_hides_code_and_streams(synthetic_report):
    text = " ".join(pdf_pages_text(synthetic_report["paths"]["pdf"]))
    for marker in (CODE_MARKER, STDERR_MARKER, WARNING_MARKER, STDOUT_MARKER, "it/s"):
        assert marker not in text, marker


def test_missing_chapter_raises(executed_dir, tmp_path):
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    write_run_json(tmp_path, "synthetic")
    (tmp_path / "notebooks" / "03-calibration.ipynb").unlink()
    with pytest.raises(RenderError, match=r"03-calibration\.ipynb not found.*make report.*CHAPTER=calibration"):
        render_report(PROJECT_DIR, tmp_path, renderer="pandoc")


def test_missing_chapter_names_failed_copy(executed_dir, tmp_path):
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    write_run_json(tmp_path, "synthetic")
    notebooks = tmp_path / "notebooks"
    (notebooks / "04-cases.ipynb").rename(notebooks / "04-cases.failed.ipynb")
    with pytest.raises(RenderError, match=r"04-cases\.failed\.ipynb"):
        render_report(PROJECT_DIR, tmp_path, renderer="pandoc")


def test_failed_notebook_raises(executed_dir, tmp_path):
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    write_run_json(tmp_path, "synthetic")
    failing = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Failing chapter"),
        nbformat.v4.new_code_cell("raise ValueError('boom')"),
        nbformat.v4.new_code_cell("1 + 1"),
    ])
    failing.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "failing.ipynb"
    nbformat.write(failing, source)
    target = tmp_path / "notebooks" / "02-robustness.ipynb"
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(str(source), str(target), kernel_name="python3", progress_bar=False)
    with pytest.raises(RenderError, match=r"02-robustness\.ipynb is marked as failed.*CHAPTER=robustness"):
        render_report(PROJECT_DIR, tmp_path, renderer="pandoc")


def test_run_json_missing_raises(executed_dir, tmp_path):
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    with pytest.raises(RenderError, match=r"run\.json not found"):
        render_report(PROJECT_DIR, tmp_path, renderer="pandoc")


def test_run_json_invalid_data_source_raises(executed_dir, tmp_path):
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    (tmp_path / "run.json").write_text(json.dumps({"data_source": "demo", "test_set": "x"}), encoding="utf-8")
    with pytest.raises(RenderError, match=r"data_source must be one of synthetic, real, got 'demo'"):
        render_report(PROJECT_DIR, tmp_path, renderer="pandoc")


def test_quarto_renderer_without_quarto_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.raises(RenderError, match=r"`quarto` is not on PATH.*install Quarto.*renderer 'pandoc'"):
        render_report(PROJECT_DIR, tmp_path, renderer="quarto")


def test_quarto_renderer_needs_project_output_dir(executed_dir, tmp_path, monkeypatch):
    # report.qmd names output/_report_src/, so Quarto cannot read chapters written elsewhere.
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    write_run_json(tmp_path, "synthetic")
    monkeypatch.setattr(render.shutil, "which", lambda name: "/nonexistent/quarto")
    with pytest.raises(RenderError, match=r"includes output/_report_src/00-run-info\.md.*--output-dir output"):
        render_report(PROJECT_DIR, tmp_path, renderer="quarto")


FAKE_QUARTO = """#!/bin/sh
# Stand-in for the quarto CLI: prints a version, or writes placeholder outputs into --output-dir.
if [ "$1" = "--version" ]; then echo 1.9.0; exit 0; fi
echo "$@" > "$PWD/quarto-args.txt"
mkdir -p "$4"
echo "<html>fake</html>" > "$4/report.html"
echo "%PDF-fake" > "$4/report.pdf"
"""


def test_quarto_renderer_moves_outputs(executed_dir, tmp_path, monkeypatch):
    # Checks the orchestration around Quarto (sources, staging folder, final names), not Quarto.
    for name in ("report.qmd", "_quarto.yml"):
        shutil.copy(PROJECT_DIR / name, tmp_path / name)
    output_dir = tmp_path / "output"
    shutil.copytree(executed_dir, output_dir / "notebooks")
    write_run_json(output_dir, "synthetic")
    fake = tmp_path / "bin" / "quarto"
    fake.parent.mkdir()
    fake.write_text(FAKE_QUARTO, encoding="utf-8")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")

    paths = render_report(tmp_path, output_dir, renderer="auto")

    assert paths["html"].read_text(encoding="utf-8") == "<html>fake</html>\n"
    assert paths["pdf"].read_text(encoding="utf-8") == "%PDF-fake\n"
    assert not (output_dir / ".quarto-render").exists()
    args = (tmp_path / "quarto-args.txt").read_text(encoding="utf-8").split()
    assert args == ["render", "report.qmd", "--output-dir", str(output_dir / ".quarto-render")]
    assert (output_dir / "_report_src" / "04-cases.md").is_file()


@pytest.mark.parametrize(("quarto_path", "expected"), [(None, "pandoc"), ("/usr/bin/quarto", "quarto")])
def test_auto_renderer_choice(monkeypatch, quarto_path, expected):
    monkeypatch.setattr(render.shutil, "which", lambda name: quarto_path)
    assert render.choose_renderer("auto") == expected


def test_unknown_renderer_raises():
    with pytest.raises(RenderError, match=r"unknown renderer 'latex'; valid renderers: auto, quarto, pandoc"):
        render.choose_renderer("latex")


def test_cli_renders_and_reports_errors(executed_dir, tmp_path):
    assert render.main(["--output-dir", str(tmp_path), "--renderer", "pandoc",
                        "--project-dir", str(PROJECT_DIR)]) == 1
    shutil.copytree(executed_dir, tmp_path / "notebooks")
    write_run_json(tmp_path, "real")
    assert render.main(["--output-dir", str(tmp_path), "--renderer", "pandoc",
                        "--project-dir", str(PROJECT_DIR)]) == 0
    assert (tmp_path / "report" / "report.html").is_file()
    assert (tmp_path / "report" / "report.pdf").is_file()


def test_run_info_escapes_markdown():
    run = {"data_source": "real", "data_root": "/data/HAM_10000 [v2]*", "test_set": "external: /x/*y*"}
    markdown = chapters.run_info_markdown(run)
    assert "real images from \\/data\\/HAM\\_10000 \\[v2\\]\\*" in markdown
    assert "callout" not in markdown
