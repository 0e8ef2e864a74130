"""Small helpers for the chapter notebooks: parameters, logging, Markdown and table output."""

import logging
import sys

import pandas as pd
from IPython.display import Markdown, display

from dermaudit.evaluation import format_cell, format_interval, is_missing  # format_interval: used by the chapters
from dermaudit.params import PARAM_NAMES, resolve_params


def chapter_params(namespace):
    """Return validated :class:`dermaudit.params.Params` from the names a chapter's parameters cell defined.

    Parameters
    ----------
    namespace : dict
        The notebook's ``globals()``; every schema key found in it is used, the rest keep
        their defaults.
    """
    values = {key: namespace[key] for key in PARAM_NAMES if key in namespace}
    return resolve_params(values, source="chapter parameters")


def setup_chapter(level=logging.INFO):
    """Prepare a chapter kernel: dermaudit logs go to stderr (the report drops stderr), and tables show whole cells."""
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.max_rows", 200)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("dermaudit")
    root.handlers[:] = [handler]
    root.setLevel(level)


def md(text):
    """Display `text` as Markdown (rendered as narrative in the report)."""
    display(Markdown(text))


def show_table(table, digits=3):
    """Display a DataFrame with floats rounded to `digits` places."""
    display(table.round(digits) if isinstance(table, pd.DataFrame) else table)


def format_ci(cell, digits=3):
    """Format an evaluation cell {"value", "ci_low", "ci_high"} as "0.812 (95% CI 0.780 to 0.840)"."""
    if cell is None or is_missing(cell.get("value")) or is_missing(cell.get("ci_low")):
        return format_cell(cell, digits)
    return f"{cell['value']:.{digits}f} (95% CI {cell['ci_low']:.{digits}f} to {cell['ci_high']:.{digits}f})"
