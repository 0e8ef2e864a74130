"""Render the dermaudit report to one self-contained HTML file and one PDF.

Both renderers start from the same sources: :mod:`dermaudit.report.chapters` converts the
executed notebooks to markdown in ``OUTPUT_DIR/_report_src/``, and ``report.qmd`` (front
matter, introduction, chapter order) includes them.

- ``"quarto"`` (chosen by ``"auto"`` when ``quarto`` is on PATH) runs
  ``quarto render report.qmd`` with the project settings in ``_quarto.yml``. Quarto reads
  the include paths as report.qmd writes them, so it renders only into ``output/`` of the
  project.
- ``"pandoc"`` assembles report.qmd and the chapters itself and runs pandoc (from
  pypandoc-binary) with ``report.lua``: HTML with embedded CSS, images and MathML, and
  Typst source with ``template.typ``, which the ``typst`` package compiles to PDF.

Both write ``OUTPUT_DIR/report/report.html`` and ``OUTPUT_DIR/report/report.pdf`` under
temporary names and rename them when complete.

Limits: the pandoc renderer understands only the ``include`` shortcode of report.qmd, and
it replaces Quarto's date keywords (today, now, last-modified) by the current date.
"""

import argparse
import datetime
import importlib.metadata
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pypandoc
import typst
import yaml

from dermaudit.exceptions import RenderError
from dermaudit.io import atomic_path, write_text
from dermaudit.report.chapters import FILTER_DIR, SOURCE_DIRNAME, run_pandoc, write_sources

logger = logging.getLogger(__name__)

RENDERERS = ("auto", "quarto", "pandoc")
REPORT_SOURCE = "report.qmd"
# NOTE: 3.2 is the assumed first release with every Lua module the filters use
# (pandoc.log, pandoc.structure, pandoc.json); only pandoc 3.9 has been tested.
MIN_PANDOC_VERSION = (3, 2)
QUARTO_TIMEOUT_S = 900
QUARTO_DATE_KEYWORDS = ("today", "now", "last-modified")
INCLUDE_PATTERN = re.compile(r"^\{\{<\s*include\s+(\S+)\s*>\}\}[ \t]*$", re.MULTILINE)
FIGURE_CAPTION_START = re.compile(r"caption: \[\s+")
FRONT_MATTER_PATTERN = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*\n", re.DOTALL)


def choose_renderer(renderer):
    """Return "quarto" or "pandoc" for the requested `renderer` ("auto", "quarto" or "pandoc")."""
    if renderer not in RENDERERS:
        raise RenderError(f"unknown renderer {renderer!r}; valid renderers: {', '.join(RENDERERS)}.")
    has_quarto = shutil.which("quarto") is not None
    if renderer == "auto":
        return "quarto" if has_quarto else "pandoc"
    if renderer == "quarto" and not has_quarto:
        raise RenderError("renderer 'quarto' requested but `quarto` is not on PATH; install Quarto 1.4 or newer "
                          "(https://quarto.org/docs/get-started/) or use renderer 'pandoc' (pandoc + Typst, "
                          "installed with dermaudit).")
    return renderer


def read_front_matter(text):
    """Return the YAML front matter at the top of a .qmd text as a dict ({} when there is none)."""
    match = FRONT_MATTER_PATTERN.match(text)
    if match is None:
        return {}
    try:
        front_matter = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        raise RenderError(f"the front matter of {REPORT_SOURCE} is not valid YAML: {err}") from err
    return front_matter or {}


def include_paths(text):
    """Return the paths named by the ``{{< include PATH >}}`` lines of a .qmd text, in order."""
    return INCLUDE_PATTERN.findall(text)


def resolve_include(include, project_dir, sources):
    """Return the file an include line names: generated sources map to `sources`, the rest to `project_dir`."""
    path = Path(include.strip("\"'"))
    if path.parent.name == SOURCE_DIRNAME:
        return Path(sources) / path.name
    return Path(project_dir) / str(path).lstrip("/")


def assemble_markdown(project_dir, sources):
    """Return report.qmd with each include line replaced by the content of the file it names."""
    report_source = Path(project_dir) / REPORT_SOURCE
    if not report_source.is_file():
        raise RenderError(f"{report_source} not found; run the renderer from the dermaudit project folder "
                          f"or pass its path as project_dir.")
    text = report_source.read_text(encoding="utf-8")

    def include(match):
        path = resolve_include(match.group(1), project_dir, sources)
        if not path.is_file():
            raise RenderError(f"{REPORT_SOURCE} includes {match.group(1)}, but {path} does not exist.")
        return "\n" + path.read_text(encoding="utf-8").strip() + "\n"

    return INCLUDE_PATTERN.sub(include, text)


def pandoc_path():
    """Return the path of a pandoc new enough for the report (pypandoc-binary ships one)."""
    try:
        path = pypandoc.get_pandoc_path()
        version = pypandoc.get_pandoc_version()
    except OSError as err:
        raise RenderError("pandoc not found; install it with `pip install pypandoc-binary`.") from err
    numbers = tuple(int(part) for part in re.findall(r"\d+", version)[:2])
    if numbers < MIN_PANDOC_VERSION:
        required = ".".join(map(str, MIN_PANDOC_VERSION))
        raise RenderError(f"pandoc {version} at {path} is too old: the report needs pandoc {required} or newer "
                          f"(Typst writer, figures, Lua modules); install `pypandoc-binary`.")
    return path


def pandoc_metadata(project_dir, prefix):
    """Return the --metadata arguments that the pandoc renderer adds to report.qmd's front matter."""
    report_source = Path(project_dir) / REPORT_SOURCE
    front_matter = read_front_matter(report_source.read_text(encoding="utf-8"))
    args = ["--metadata", f"dermaudit-media-prefix={prefix}"]
    if str(front_matter.get("date", "")).strip() in QUARTO_DATE_KEYWORDS:
        args += ["--metadata", f"date={datetime.date.today().isoformat()}"]
    return args


def write_html(pandoc, sources, metadata, path):
    """Write the self-contained HTML report from ``sources/report.md`` to `path`."""
    with atomic_path(path) as tmp:
        run_pandoc(pandoc, [
            "report.md", "--from", "markdown", "--to", "html5", "--standalone", "--embed-resources",
            "--mathml", "--number-sections", "--css", FILTER_DIR / "report.css",
            "--lua-filter", FILTER_DIR / "report.lua", *metadata, "--output", tmp,
        ], cwd=sources)


def write_pdf(pandoc, sources, metadata, path):
    """Write ``sources/report.typ`` from ``sources/report.md`` and compile it with Typst to `path`."""
    typst_source = run_pandoc(pandoc, [
        "report.md", "--from", "markdown", "--to", "typst", "--standalone", "--number-sections",
        "--template", FILTER_DIR / "template.typ", "--lua-filter", FILTER_DIR / "report.lua", *metadata,
    ], cwd=sources)
    # pandoc 3.9 writes a figure caption on its own line inside [...], and Typst keeps that
    # line break as a space after "Figure N:".
    write_text(sources / "report.typ", FIGURE_CAPTION_START.sub("caption: [", typst_source))

    with atomic_path(path) as tmp:
        try:
            _, warnings = typst.compile_with_warnings(str(sources / "report.typ"), output=str(tmp),
                                                      root=str(sources), ignore_system_fonts=True)
        except typst.TypstError as err:
            raise RenderError(f"Typst failed to compile {sources / 'report.typ'}: {err}") from err
    for warning in warnings:
        logger.warning("typst: %s", warning)


def render_with_pandoc(project_dir, output_dir, report_dir):
    """Render the report with pandoc and Typst; return the HTML and PDF paths."""
    start = time.perf_counter()
    pandoc = pandoc_path()
    sources, prefix = write_sources(project_dir, output_dir, pandoc)
    write_text(sources / "report.md", assemble_markdown(project_dir, sources))
    metadata = pandoc_metadata(project_dir, prefix)

    paths = {"html": report_dir / "report.html", "pdf": report_dir / "report.pdf"}
    write_html(pandoc, sources, metadata, paths["html"])
    write_pdf(pandoc, sources, metadata, paths["pdf"])

    logger.info("rendered the report with renderer 'pandoc' (pandoc %s, typst-py %s) in %.1f s into %s",
                pypandoc.get_pandoc_version(), importlib.metadata.version("typst"),
                time.perf_counter() - start, report_dir)
    return paths


def check_quarto_includes(project_dir, sources):
    """Raise :class:`RenderError` unless every include of report.qmd names a file Quarto can read."""
    text = (Path(project_dir) / REPORT_SOURCE).read_text(encoding="utf-8")
    for include in include_paths(text):
        path = (Path(project_dir) / include.strip("\"'").lstrip("/")).resolve()
        # A generated file from another output folder would be stale, so it counts as missing.
        if path.parent.name == SOURCE_DIRNAME and path.parent != Path(sources).resolve():
            raise RenderError(f"{REPORT_SOURCE} includes {include}, which this render did not write: it "
                              f"wrote the chapters to {sources}. Quarto reads the include paths as written, "
                              f"so render with --output-dir output, or use renderer 'pandoc'.")
        if not path.is_file():
            raise RenderError(f"{REPORT_SOURCE} includes {include}, but {path} does not exist.")


def run_quarto(project_dir, staging):
    """Run ``quarto render report.qmd`` into `staging` and return Quarto's version."""
    quarto = shutil.which("quarto")
    version = subprocess.run([quarto, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    command = [quarto, "render", REPORT_SOURCE, "--output-dir", str(staging)]
    try:
        result = subprocess.run(command, cwd=project_dir, capture_output=True, text=True,
                                timeout=QUARTO_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as err:
        raise RenderError(f"quarto timed out after {QUARTO_TIMEOUT_S} s: {' '.join(command)}") from err
    if result.returncode != 0:
        raise RenderError(f"quarto failed with exit status {result.returncode}: {' '.join(command)}\n"
                          f"{result.stderr.strip()}")
    return version


def render_with_quarto(project_dir, output_dir, report_dir):
    """Render the report with Quarto; return the HTML and PDF paths."""
    # NOTE: the tests drive this path with a stand-in for the quarto CLI. What real Quarto
    # makes of report.qmd and the chapters (includes, cross-references, Typst) is unchecked.
    start = time.perf_counter()
    sources, _ = write_sources(project_dir, output_dir, pandoc_path())
    check_quarto_includes(project_dir, sources)

    # Quarto deletes its output folder first, so it renders into a private one.
    staging = Path(output_dir) / ".quarto-render"
    shutil.rmtree(staging, ignore_errors=True)
    version = run_quarto(project_dir, staging)

    paths = {"html": report_dir / "report.html", "pdf": report_dir / "report.pdf"}
    report_dir.mkdir(parents=True, exist_ok=True)
    for path in paths.values():
        rendered = staging / path.name
        if not rendered.is_file():
            raise RenderError(f"quarto finished but did not write {rendered}; check the formats in _quarto.yml.")
        os.replace(rendered, path)
    shutil.rmtree(staging, ignore_errors=True)

    logger.info("rendered the report with renderer 'quarto' (Quarto %s) in %.1f s into %s",
                version, time.perf_counter() - start, report_dir)
    return paths


def render_report(project_dir, output_dir, renderer="auto"):
    """Render the executed chapter notebooks and report.qmd to one HTML file and one PDF.

    Parameters
    ----------
    project_dir : str or Path
        The dermaudit project folder, which contains ``report.qmd`` and ``_quarto.yml``.
    output_dir : str or Path
        The run's output folder, with ``run.json`` and the executed notebooks in
        ``notebooks/``. The report goes to ``output_dir/report/``.
    renderer : {"auto", "quarto", "pandoc"}
        "auto" uses Quarto when ``quarto`` is on PATH, else pandoc + Typst.

    Returns
    -------
    dict
        ``{"html": Path, "pdf": Path}``, the written report files.

    Raises
    ------
    RenderError
        When a chapter notebook is missing or failed, ``run.json`` is missing or invalid,
        Quarto was requested but is not installed, or a renderer fails.
    """
    project_dir = Path(project_dir).resolve()
    output_dir = Path(output_dir).resolve()
    report_dir = output_dir / "report"
    if choose_renderer(renderer) == "quarto":
        return render_with_quarto(project_dir, output_dir, report_dir)
    return render_with_pandoc(project_dir, output_dir, report_dir)


def build_parser():
    """Return the argument parser of ``python -m dermaudit.report.render``."""
    parser = argparse.ArgumentParser(prog="python -m dermaudit.report.render",
                                     description="Render the executed chapter notebooks to report.html and "
                                                 "report.pdf in OUTPUT_DIR/report/.")
    parser.add_argument("--output-dir", default="output",
                        help="run output folder with run.json and notebooks/ (default: output)")
    parser.add_argument("--project-dir", default=".",
                        help="project folder with report.qmd and _quarto.yml (default: current folder)")
    parser.add_argument("--renderer", choices=RENDERERS, default="auto",
                        help="quarto, pandoc (pandoc + Typst), or auto: quarto when on PATH (default: auto)")
    return parser


def main(argv=None):
    """Render the report from the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        paths = render_report(args.project_dir, args.output_dir, renderer=args.renderer)
    except RenderError as err:
        logger.error("%s", err)
        return 1
    for kind, path in paths.items():
        logger.info("%s report: %s", kind.upper(), path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
