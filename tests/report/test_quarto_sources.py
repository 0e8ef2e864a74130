"""Static checks of the Quarto sources (_quarto.yml, report.qmd) and of the chapter notebooks' labels.

Quarto is not installed where these tests run, so they check what Quarto would read
rather than running it.
"""

import re
from collections import Counter
from pathlib import Path

import nbformat
import pytest
import yaml

from dermaudit.report import chapters, render

PROJECT_DIR = Path(__file__).resolve().parents[2]
PACKAGE_REPORT_DIR = PROJECT_DIR / "src" / "dermaudit" / "report"
# Keys whose values in _quarto.yml or the front matter name files Quarto reads.
FILE_KEYS = {"css", "template", "include-in-header", "include-before-body", "include-after-body",
             "bibliography", "csl", "output-file"}
LABEL_LINE = re.compile(r"^#\|\s*label:\s*(\S+)\s*$")
OPTION_LINE = re.compile(r"^#\|\s*([\w-]+)\s*:")


def quarto_config():
    return yaml.safe_load((PROJECT_DIR / "_quarto.yml").read_text(encoding="utf-8"))


def report_text():
    return (PROJECT_DIR / "report.qmd").read_text(encoding="utf-8")


def named_files(node, key=None):
    """Yield every string value under a key of FILE_KEYS, at any depth."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from named_files(value, child_key)
    elif isinstance(node, list):
        for value in node:
            yield from named_files(value, key)
    elif isinstance(node, str) and key in FILE_KEYS:
        yield node


def chapter_cells():
    """Yield (notebook name, code cell source) for every code cell of chapters/*.ipynb."""
    for path in sorted((PROJECT_DIR / "chapters").glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                yield path.name, cell.source


def cell_options(source):
    options = {}
    for line in source.splitlines():
        if not line.startswith("#|"):
            break
        label = LABEL_LINE.match(line)
        if label:
            options["label"] = label.group(1).strip("\"'")
        option = OPTION_LINE.match(line)
        if option:
            options.setdefault(option.group(1), True)
    return options


def test_quarto_config_is_valid_yaml():
    config = quarto_config()
    assert isinstance(config, dict)
    assert config["project"]["type"] == "default"
    assert config["project"]["render"] == [render.REPORT_SOURCE]


def test_quarto_config_executes_nothing():
    execute = quarto_config()["execute"]
    assert execute["enabled"] is False
    assert execute["echo"] is False


def test_quarto_config_formats():
    formats = quarto_config()["format"]
    assert set(formats) == {"html", "typst"}
    assert formats["html"]["embed-resources"] is True
    assert formats["html"]["html-math-method"] == "mathml"
    assert formats["html"]["number-sections"] is True
    assert formats["typst"]["number-sections"] is True


def test_quarto_output_dir_outside_generated_sources():
    # Quarto deletes output-dir before rendering, so the generated chapters must lie elsewhere.
    output_dir = Path(quarto_config()["project"]["output-dir"])
    assert output_dir == Path("output") / "report"
    for include in render.include_paths(report_text()):
        assert output_dir not in Path(include).parents


def test_report_front_matter_is_valid_yaml():
    front_matter = render.read_front_matter(report_text())
    for key in ("title", "subtitle", "author", "date"):
        assert front_matter.get(key), key


def test_named_files_exist():
    sources = [quarto_config(), render.read_front_matter(report_text())]
    for source in sources:
        for name in named_files(source):
            assert (PROJECT_DIR / name).is_file(), name


def test_includes_name_generated_sources_in_chapter_order():
    # The renderer generates every included file: output/_report_src/00-run-info.md and one
    # NN-name.md per chapter (dermaudit.report.chapters.write_sources).
    includes = [Path(path) for path in render.include_paths(report_text())]
    expected = [chapters.RUN_INFO_FILE] + [f"{stem}.md" for stem in chapters.CHAPTERS]
    assert [path.name for path in includes] == expected
    for path in includes:
        assert path.parent == Path("output") / chapters.SOURCE_DIRNAME


def test_include_lines_stand_alone():
    # Quarto expands an include shortcode only on a line of its own between blank lines.
    lines = report_text().splitlines()
    for index, line in enumerate(lines):
        if "{{< include" in line:
            assert render.INCLUDE_PATTERN.match(line), line
            assert lines[index - 1].strip() == "", line
            assert index + 1 == len(lines) or lines[index + 1].strip() == "", line


def test_report_places_typst_outline():
    # The Typst table of contents, and the HTML one of the pandoc renderer, go here.
    assert re.search(r"```\{=typst\}\n#outline\(", report_text())


def test_package_data_present():
    for name in ("chapter.lua", "report.lua", "template.typ", "report.css"):
        assert (PACKAGE_REPORT_DIR / name).is_file(), name


def test_chapter_labels_unique():
    labels = [(name, cell_options(source).get("label")) for name, source in chapter_cells()]
    counts = Counter(label for _, label in labels if label)
    duplicates = {label: [name for name, other in labels if other == label]
                  for label, count in counts.items() if count > 1}
    assert duplicates == {}


@pytest.mark.parametrize(("caption", "prefix"), [("fig-cap", "fig-"), ("tbl-cap", "tbl-")])
def test_chapter_captions_have_matching_labels(caption, prefix):
    for name, source in chapter_cells():
        options = cell_options(source)
        if caption in options:
            assert options.get("label", "").startswith(prefix), f"{name}: {source.splitlines()[0]}"
