"""Command line: ``dermaudit report``, ``dermaudit chapter NAME`` and ``dermaudit render``.

``report`` runs the four chapters in order and renders the report. ``chapter`` re-runs one
chapter with new params, reusing the trained model, and renders again.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

from dermaudit.data import load_metadata
from dermaudit.exceptions import ChapterExecutionError, DermauditError, ParamsError
from dermaudit.params import load_params
from dermaudit.params import PARAM_NAMES
from dermaudit.runner import (CHAPTERS, chapter_values, invocation, previous_params, record_command, run_chapter,
                              write_run_records)
from dermaudit.training import TRAINING_KEYS
from dermaudit.workflow import output_paths

logger = logging.getLogger("dermaudit")


def _add_run_arguments(parser):
    parser.add_argument("--params", type=Path, default=None, help="params YAML file (default: built-in defaults)")
    parser.add_argument("--data-root", default=None,
                        help="HAM10000 folder (metadata CSV + image folders); unset uses synthetic demo data")
    parser.add_argument("--eval-root", default=None,
                        help="external test set in the same layout, evaluated instead of the internal test split")
    parser.add_argument("--output-dir", default=None, help="output folder (default: output)")
    parser.add_argument("--renderer", choices=("auto", "quarto", "pandoc"), default="auto",
                        help="report renderer: quarto when on PATH, else pandoc + Typst (default: auto)")
    parser.add_argument("--no-render", action="store_true", help="run the chapters but do not render the report")


def build_parser():
    """Return the argument parser of the ``dermaudit`` command."""
    parser = argparse.ArgumentParser(prog="dermaudit", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser("report", help="run all four chapters and render the report")
    _add_run_arguments(report)

    chapter = commands.add_parser("chapter", help="re-run one chapter with new params and render again")
    chapter.add_argument("name", choices=list(CHAPTERS), help="chapter to run")
    _add_run_arguments(chapter)

    render = commands.add_parser("render", help="render the report from the executed notebooks")
    render.add_argument("--output-dir", default="output", help="output folder (default: output)")
    render.add_argument("--renderer", choices=("auto", "quarto", "pandoc"), default="auto")
    return parser


def _resolve(args):
    """Return the params of this command.

    ``report`` starts from the defaults. ``chapter`` starts from the resolved params of the
    last run in the output folder, so that it uses the same data, test set and model
    settings. The params file and the command-line options then override the keys they set.
    """
    output_dir = args.output_dir or "output"
    base = previous_params(output_dir) if args.command == "chapter" else {}
    if args.command == "chapter" and base:
        logger.info("starting from the params of the last run (%s/params.yaml)", output_dir)
    return load_params(args.params, base=base, data_root=args.data_root or None,
                       eval_root=args.eval_root or None, output_dir=args.output_dir)


def check_trained_model(params, name):
    """Raise when an evaluation chapter is run before any model was trained into the output folder."""
    paths = output_paths(params.output_dir)
    checkpoint = Path(params.checkpoint) if params.checkpoint else paths["checkpoint"]
    missing = [path for path in (checkpoint, paths["split"]) if not path.is_file()]
    if name == "training" or not missing:
        return
    advice = "" if params.checkpoint else ", or set checkpoint: in the params file and run the training chapter"
    raise ChapterExecutionError(
        f"chapter {name!r} evaluates a trained model, but {missing[0]} does not exist. Run `make report` first "
        f"with the same OUTPUT_DIR ({params.output_dir}) and DATA_ROOT{advice}.")


def check_same_training(params, name):
    """Raise when a re-run evaluation chapter changes a key that the trained model and its split depend on."""
    if name == "training":
        return
    last = previous_params(params.output_dir)
    current = chapter_values(params, PARAM_NAMES)
    changed = [key for key in ("data_root", *TRAINING_KEYS) if key in last and current[key] != last[key]]
    if changed:
        details = ", ".join(f"{key}: {last[key]!r} -> {current[key]!r}" for key in changed)
        raise ParamsError(
            f"chapter {name!r} evaluates the model trained in {params.output_dir}, but these params differ from that "
            f"run: {details}. They change the data or the model, so run `make chapter CHAPTER=training` (or "
            f"`make report`) with them first, or leave them out of the params file.")


def find_project_dir():
    """Return the folder holding chapters/ and report.qmd: the working folder, else the source checkout."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[2]):
        if (candidate / "chapters").is_dir() and (candidate / "report.qmd").is_file():
            return candidate
    raise ChapterExecutionError(f"no chapters/ folder and report.qmd in {Path.cwd()}; run dermaudit from the "
                                "project folder (the git checkout), where `make report` works.")


def _render(output_dir, renderer):
    from dermaudit.report.render import render_report

    paths = render_report(find_project_dir(), Path(output_dir), renderer=renderer)
    for kind, path in paths.items():
        logger.info("%s report: %s", kind.upper(), path)


def check_data(params):
    """Validate DATA_ROOT and EVAL_ROOT before any kernel starts, so a bad data set fails at once and by name.

    The chapters validate again when they load the data; image decoding is checked when
    the image cache is built, which also happens before training.
    """
    for root in (params.data_root, params.eval_root):
        if root:
            load_metadata(root)


def run(args):
    """Execute the parsed command."""
    if args.command == "render":
        _render(args.output_dir, args.renderer)
        return

    params = _resolve(args)
    check_data(params)
    names = list(CHAPTERS) if args.command == "report" else [args.name]
    if args.command == "chapter":
        check_trained_model(params, args.name)
        check_same_training(params, args.name)
    record_command(params.output_dir, invocation())
    for position, name in enumerate(names):
        start = time.perf_counter()
        run_chapter(name, params, project_dir=find_project_dir())
        logger.info("chapter %s finished in %.0f s", name, time.perf_counter() - start)
        # Records follow each finished chapter, so a failed one leaves them describing what ran.
        keep_earlier = args.command == "chapter" or position > 0
        write_run_records(params, args.params, [name], keep_earlier=keep_earlier)
    if not args.no_render:
        _render(params.output_dir, args.renderer)


def main(argv=None):
    """Entry point of the ``dermaudit`` command; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("papermill").setLevel(logging.WARNING)  # the runner logs each chapter itself
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except DermauditError as err:
        logger.error("%s", err)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; the chapter that was running left no notebook, and finished outputs are kept. "
                     "Run the same command again to continue (a trained model is reused).")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
