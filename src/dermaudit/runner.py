"""Execution of the chapter notebooks with papermill, and the run records next to the outputs.

Each chapter receives only the parameters its ``parameters`` cell declares. The executed
notebook is written to a temporary name and renamed on success; a failed chapter keeps its
notebook as ``NN-name.failed.ipynb`` and raises an error that names the chapter and the cell.
"""

import datetime
import logging
import os
import shlex
import sys
from pathlib import Path

import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from dermaudit.exceptions import ChapterExecutionError, ParamsError
from dermaudit.io import read_json, write_json, write_text
from dermaudit.params import PARAM_NAMES, params_to_dict

logger = logging.getLogger(__name__)

CHAPTERS = {
    "training": "01-training",
    "robustness": "02-robustness",
    "calibration": "03-calibration",
    "cases": "04-cases",
}


def chapter_stem(name):
    """Return the notebook stem of chapter `name`, e.g. "02-robustness" for "robustness"."""
    if name not in CHAPTERS:
        raise ParamsError(f"unknown chapter {name!r}; valid chapters: {', '.join(CHAPTERS)}.")
    return CHAPTERS[name]


def declared_parameters(notebook_path):
    """Return the names declared in a notebook's ``parameters`` cell, checked against the params schema."""
    declared = list(papermill.inspect_notebook(str(notebook_path)))
    unknown = sorted(set(declared) - set(PARAM_NAMES))
    if unknown:
        raise ParamsError(f"{notebook_path} declares parameters that the schema lacks: {', '.join(unknown)}; "
                          f"add them to dermaudit.params.Params or remove them from the parameters cell.")
    return declared


def chapter_values(params, declared):
    """Return the values to inject into a chapter: the declared keys, with paths made absolute."""
    values = {key: getattr(params, key) for key in declared}
    for key in ("data_root", "eval_root", "output_dir", "weights_file", "checkpoint"):
        if values.get(key):
            values[key] = str(Path(values[key]).expanduser().resolve())
    return values


def run_chapter(name, params, project_dir="."):
    """Execute chapter `name` with papermill and return the path of the executed notebook.

    Raises
    ------
    ChapterExecutionError
        When a cell raises; the message names the chapter, the cell and the kept notebook.
    """
    stem = chapter_stem(name)
    source = Path(project_dir) / "chapters" / f"{stem}.ipynb"
    if not source.is_file():
        raise ChapterExecutionError(f"chapter notebook {source} not found; run from the dermaudit project folder.")
    output_dir = Path(params.output_dir).resolve()
    notebooks = output_dir / "notebooks"
    notebooks.mkdir(parents=True, exist_ok=True)
    final, running, failed = (notebooks / f"{stem}.ipynb", notebooks / f".{stem}.running.ipynb",
                              notebooks / f"{stem}.failed.ipynb")

    values = chapter_values(params, declared_parameters(source))
    params_file = output_dir / "params" / f"{stem}.yaml"
    write_text(params_file, yaml.safe_dump(values, sort_keys=False))
    record_command(output_dir, ["papermill", str(source), str(final), "-f", str(params_file), "-k", "python3"])

    logger.info("running chapter %s (%s)", name, source)
    try:
        papermill.execute_notebook(str(source), str(running), parameters=values, kernel_name="python3",
                                   cwd=str(notebooks), progress_bar=params.progress)
    except PapermillExecutionError as err:
        os.replace(running, failed)
        final.unlink(missing_ok=True)  # A stale notebook from an earlier run must not reach the report.
        raise ChapterExecutionError(
            f"chapter {name!r} ({source}) failed in cell {err.exec_count} with {err.ename}: {err.evalue.rstrip('.')}. "
            f"The executed notebook is kept at {failed}; open it to see the traceback, fix the cause and rerun "
            f"`make chapter CHAPTER={name}`."
        ) from err
    except BaseException:
        # Kernel death or Ctrl-C: nothing executed completely, so nothing is kept.
        running.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    os.replace(running, final)
    failed.unlink(missing_ok=True)
    return final


def record_command(output_dir, argv):
    """Append a timestamped command line to ``output_dir/COMMANDS.txt``."""
    path = Path(output_dir) / "COMMANDS.txt"
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    write_text(path, previous + f"{stamp}  {shlex.join(str(a) for a in argv)}\n")


def write_run_records(params, params_file, argv=None):
    """Write the resolved params (``params.yaml``) and ``run.json`` describing the run into the output folder."""
    output_dir = Path(params.output_dir).resolve()
    write_text(output_dir / "params.yaml", yaml.safe_dump(params_to_dict(params), sort_keys=False))
    record_command(output_dir, argv or _invocation())
    run = {
        "data_source": "real" if params.data_root else "synthetic",
        "data_root": str(Path(params.data_root).resolve()) if params.data_root else "built-in synthetic demo data",
        "test_set": (f"external: {Path(params.eval_root).resolve()}" if params.eval_root
                     else "internal test split (by lesion, {:.0%} of lesions)".format(params.split_fractions[2])),
        "params_file": str(params_file) if params_file else "defaults",
        "model": params.model_name,
        "image_size": params.image_size,
        "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    write_json(output_dir / "run.json", run)
    return run


def _invocation():
    """Return the command line of this process in a form that can be run again."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":  # started as python -m dermaudit
        return [sys.executable, "-m", "dermaudit", *sys.argv[1:]]
    return [str(program), *sys.argv[1:]]


def previous_params(output_dir):
    """Return the resolved params of the last run in `output_dir` as a dict, or {} when there is none."""
    path = Path(output_dir) / "params.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def previous_run(output_dir):
    """Return ``run.json`` of the last run in `output_dir`, or {}."""
    path = Path(output_dir) / "run.json"
    return read_json(path) if path.is_file() else {}
