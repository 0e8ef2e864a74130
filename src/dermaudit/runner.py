"""Execution of the chapter notebooks with papermill, and the run records next to the outputs.

Each chapter receives only the parameters its ``parameters`` cell declares. The executed
notebook is written to a temporary name and renamed on success. A failed chapter keeps its
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
from dermaudit.params import PARAM_NAMES

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
        # The notebook of the last successful run stays, so the output folder still renders
        # the state that params.yaml and run.json describe.
        os.replace(running, failed)
        raise ChapterExecutionError(
            f"chapter {name!r} ({source}) failed in cell {err.exec_count} with {err.ename}: {err.evalue.rstrip('.')}. "
            f"The executed notebook is kept at {failed}; open it to see the traceback, fix the cause and rerun "
            f"`make chapter CHAPTER={name}{_output_dir_option(params.output_dir)}`."
        ) from err
    except BaseException:
        # Kernel death or Ctrl-C: the partial notebook is dropped, the last successful one stays.
        running.unlink(missing_ok=True)
        raise
    os.replace(running, final)
    failed.unlink(missing_ok=True)
    return final


def _output_dir_option(output_dir):
    return "" if Path(output_dir) == Path("output") else f" OUTPUT_DIR={output_dir}"


def record_command(output_dir, argv):
    """Append a timestamped command line to ``output_dir/COMMANDS.txt``."""
    path = Path(output_dir) / "COMMANDS.txt"
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    stamp = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    write_text(path, previous + f"{stamp}  {shlex.join(str(a) for a in argv)}\n")


def describe_test_set(params):
    """Return the test set of a run in words, as the report shows it."""
    if params.eval_root:
        return f"external: {Path(params.eval_root).resolve()}"
    return f"internal test split (whole lesions, about {params.split_fractions[2]:.0%} of the images)"


def write_run_records(params, params_file, chapters, keep_earlier=False):
    """Write the resolved params (``params.yaml``) and ``run.json`` describing the run into the output folder.

    ``run.json`` records, per chapter, the params file and test set it last ran with. When
    `keep_earlier` (a single chapter re-run), the other chapters keep their entries, and the
    summary fields read "mixed: ..." when the chapters no longer share one params file or test set.
    """
    output_dir = Path(params.output_dir).resolve()
    resolved = chapter_values(params, PARAM_NAMES)  # every key, with absolute paths
    write_text(output_dir / "params.yaml", yaml.safe_dump(resolved, sort_keys=False))

    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    earlier = previous_run(output_dir) if keep_earlier else {}
    entries = dict(earlier.get("chapters", {}))
    for name in chapters:
        if params_file:
            source = str(params_file)
        elif keep_earlier:
            source = "params of the last run"
        else:
            source = "defaults"
        entries[name] = {"params_file": source, "test_set": describe_test_set(params), "run_at": now}

    run = {
        "data_source": "real" if params.data_root else "synthetic",
        "data_root": str(Path(params.data_root).resolve()) if params.data_root else "built-in synthetic demo data",
        "test_set": _summarize(entries, "test_set", [c for c in CHAPTERS if c != "training"]),
        "params_file": _summarize(entries, "params_file", list(CHAPTERS)),
        "model": params.model_name,
        "image_size": params.image_size,
        "created": earlier.get("created", now),
        "chapters": entries,
    }
    if "mixed" in run["test_set"]:
        logger.warning("the chapters now use different test sets (%s); run `make report` with one EVAL_ROOT "
                       "to make them agree", run["test_set"])
    write_json(output_dir / "run.json", run)
    return run


def _summarize(entries, key, chapters):
    """Return the shared value of `key` over `chapters`, or "mixed: ..." naming which chapter used which."""
    by_value = {}
    for name in chapters:
        if name in entries:
            by_value.setdefault(entries[name][key], []).append(name)
    if len(by_value) <= 1:
        return next(iter(by_value), "none")
    return "mixed: " + "; ".join(f"{', '.join(names)}: {value}" for value, names in by_value.items())


def invocation():
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
