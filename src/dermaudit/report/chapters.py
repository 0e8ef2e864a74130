"""Convert the executed chapter notebooks and ``run.json`` into the markdown sources of the report.

Both renderers read the same sources: ``report.qmd`` includes the files written to
``OUTPUT_DIR/_report_src/``:

- ``00-run-info.md``: the key facts of the run from ``run.json`` and, for synthetic
  data, a warning callout that the numbers tell nothing about real dermoscopy;
- ``NN-name.md`` for each chapter: the notebook converted by pandoc with the Lua filter
  ``chapter.lua`` (code, parameters cells and log streams dropped, figures and pandas
  tables turned into captioned, labelled figures and tables);
- ``media/NN-name/``: the images of that chapter.

Image paths in the markdown start with the folder's path relative to the project (for
example ``/output/_report_src/media/...``), which is how Quarto resolves paths in
included files. When the output folder lies outside the project, they are absolute
file-system paths instead, and only the pandoc renderer can use them.

Limits: every stream output is dropped, stdout included, so a chapter must show its
narrative through ``IPython.display.Markdown`` and its results as outputs.
"""

import logging
import shutil
import subprocess
from pathlib import Path

from dermaudit.exceptions import RenderError
from dermaudit.io import read_json, write_text

logger = logging.getLogger(__name__)

CHAPTERS = ("01-training", "02-robustness", "03-calibration", "04-cases")
RUN_INFO_FILE = "00-run-info.md"
SOURCE_DIRNAME = "_report_src"
DATA_SOURCES = ("synthetic", "real")
PANDOC_TIMEOUT_S = 300

FILTER_DIR = Path(__file__).resolve().parent
SYNTHETIC_BANNER = (
    '::: {.callout-warning #synthetic-data-banner title="Synthetic demo data"}\n'
    "This report was made from synthetic demo data, not from dermoscopy images. "
    "Its numbers say nothing about real dermoscopy or about how any model performs on real lesions.\n"
    ":::\n"
)


def source_dir(output_dir):
    """Return the folder that receives the generated markdown sources of the report."""
    return Path(output_dir) / SOURCE_DIRNAME


def run_pandoc(pandoc_path, args, cwd):
    """Run pandoc with `args` in `cwd` and return its stdout.

    pandoc's warnings (stderr) are logged at WARNING level.

    Raises
    ------
    RenderError
        When pandoc exits with an error or runs longer than ``PANDOC_TIMEOUT_S`` seconds.
    """
    command = [str(pandoc_path), *map(str, args)]
    logger.debug("running %s in %s", " ".join(command), cwd)
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=PANDOC_TIMEOUT_S,
                                check=False)
    except subprocess.TimeoutExpired as err:
        raise RenderError(f"pandoc timed out after {PANDOC_TIMEOUT_S} s: {' '.join(command)}") from err

    for line in result.stderr.splitlines():
        if line.strip():
            logger.warning("pandoc: %s", line.strip())
    if result.returncode != 0:
        raise RenderError(f"pandoc failed with exit status {result.returncode}: {' '.join(command)}\n"
                          f"{result.stderr.strip()}")
    return result.stdout


def _chapter_command_hint(notebook_path):
    name = notebook_path.stem.split("-", 1)[1]
    output_dir = notebook_path.parent.parent
    option = "" if output_dir.resolve() == (Path.cwd() / "output").resolve() else f" OUTPUT_DIR={output_dir}"
    return (f"run `make report{option}` to execute all chapters, or `make chapter CHAPTER={name}{option}` "
            "to run this one")


def _unfinished_cell(notebook):
    # papermill records a status per cell: "failed" for the cell that raised, and
    # "pending" or "running" for cells that never completed.
    for index, cell in enumerate(notebook.get("cells", [])):
        record = cell.get("metadata", {}).get("papermill", {})
        if record.get("exception") or record.get("status") in ("failed", "pending", "running"):
            return index, record.get("status", "failed")
    return None


def check_notebook(path):
    """Raise :class:`RenderError` when the executed notebook at `path` is unreadable or failed.

    A notebook counts as failed when papermill set its ``exception`` flag, or when a cell
    is marked failed or never completed.
    """
    try:
        notebook = read_json(path)
    except (OSError, ValueError) as err:
        raise RenderError(f"executed notebook {path} could not be read as JSON ({err}); "
                          f"{_chapter_command_hint(path)}.") from err

    record = notebook.get("metadata", {}).get("papermill", {})
    unfinished = _unfinished_cell(notebook)
    if record.get("exception") or unfinished is not None:
        where = f" (cell {unfinished[0]} is {unfinished[1]})" if unfinished else ""
        raise RenderError(f"executed notebook {path} is marked as failed by papermill{where}; open it to see "
                          f"the error, fix the cause, then {_chapter_command_hint(path)}.")


def find_notebooks(output_dir):
    """Return the paths of the four executed chapter notebooks in ``output_dir/notebooks``.

    Raises
    ------
    RenderError
        When a notebook is missing (naming the kept ``.failed.ipynb`` when there is one)
        or papermill marked it as failed.
    """
    notebook_dir = Path(output_dir) / "notebooks"
    paths = [notebook_dir / f"{stem}.ipynb" for stem in CHAPTERS]
    for path in paths:
        if path.is_file():
            continue
        failed = path.with_suffix(".failed.ipynb")
        reason = f"it failed in the last run, see {failed}" if failed.is_file() else "it has not been run"
        raise RenderError(f"executed chapter notebook {path} not found ({reason}); "
                          f"{_chapter_command_hint(path)}.")

    for path in paths:
        check_notebook(path)
    return paths


def read_run_info(output_dir):
    """Read and check ``output_dir/run.json``, written by the runner before the chapters run."""
    path = Path(output_dir) / "run.json"
    if not path.is_file():
        raise RenderError(f"{path} not found; the runner writes it when the chapters run, "
                          f"so run `make report` first.")
    try:
        run = read_json(path)
    except ValueError as err:
        raise RenderError(f"{path} is not valid JSON ({err}); run `make report` to write it again.") from err

    if run.get("data_source") not in DATA_SOURCES:
        raise RenderError(f"{path}: data_source must be one of {', '.join(DATA_SOURCES)}, "
                          f"got {run.get('data_source')!r}; run `make report` to write it again.")
    if not run.get("test_set"):
        raise RenderError(f"{path}: test_set is missing; run `make report` to write it again.")
    return run


def escape_markdown(text):
    """Backslash-escape every ASCII punctuation character so pandoc reads `text` literally."""
    return "".join(f"\\{char}" if char.isascii() and not char.isalnum() and not char.isspace() else char
                   for char in str(text))


def run_info_markdown(run):
    """Return the markdown of the run facts block, with the synthetic-data banner first when it applies."""
    data_root = run.get("data_root")
    if run["data_source"] == "synthetic":
        data = data_root or "synthetic demo data"
    else:
        data = f"real images from {data_root}" if data_root else "real images"
    facts = [("Test set", run["test_set"]), ("Data", data)]
    if run.get("model"):
        size = run.get("image_size")
        model = f"{run['model']}, images resized to {size} × {size} pixels" if size else run["model"]
        facts.append(("Model", model))
    for label, key in (("Parameters file", "params_file"), ("Run created", "created")):
        if run.get(key):
            facts.append((label, run[key]))

    lines = [f"- **{label}:** {escape_markdown(value)}" for label, value in facts]
    facts_block = "::: {.run-info}\n" + "\n".join(lines) + "\n:::\n"
    if run["data_source"] == "synthetic":
        return SYNTHETIC_BANNER + "\n" + facts_block
    return facts_block


def media_prefix(project_dir, sources):
    """Return the prefix of image paths in the chapter markdown (see the module docstring)."""
    sources = Path(sources).resolve()
    try:
        relative = sources.relative_to(Path(project_dir).resolve())
    except ValueError:
        return sources.as_posix() + "/"
    return "/" + relative.as_posix() + "/"


def convert_notebook(pandoc_path, notebook, sources, prefix):
    """Convert one executed notebook to chapter markdown in `sources` and return its path."""
    stem = notebook.stem
    media = Path("media") / stem
    shutil.rmtree(sources / media, ignore_errors=True)
    (sources / media).mkdir(parents=True)

    markdown = run_pandoc(pandoc_path, [
        notebook.resolve(), "--from", "ipynb+raw_markdown", "--to", "markdown", "--wrap=none", "--ipynb-output=all",
        "--lua-filter", FILTER_DIR / "chapter.lua",
        "--metadata", f"dermaudit-chapter={stem}",
        "--metadata", f"dermaudit-media-dir={media.as_posix()}",
        "--metadata", f"dermaudit-media-prefix={prefix}",
    ], cwd=sources)
    path = sources / f"{stem}.md"
    write_text(path, markdown)
    return path


def write_sources(project_dir, output_dir, pandoc_path):
    """Write the run facts and the four chapters as markdown into ``output_dir/_report_src``.

    Returns
    -------
    sources : Path
        The folder that now contains ``00-run-info.md``, ``NN-name.md`` and ``media/``.
    prefix : str
        The image path prefix used in the chapters (see :func:`media_prefix`).
    """
    notebooks = find_notebooks(output_dir)
    run = read_run_info(output_dir)
    sources = source_dir(output_dir).resolve()
    sources.mkdir(parents=True, exist_ok=True)
    prefix = media_prefix(project_dir, sources)

    write_text(sources / RUN_INFO_FILE, run_info_markdown(run))
    for notebook in notebooks:
        path = convert_notebook(pandoc_path, notebook, sources, prefix)
        logger.debug("converted %s to %s", notebook, path)
    return sources, prefix
