"""Atomic file writes: every output is written to a temporary file beside it, then renamed.

A crash or a failed chapter therefore never leaves a half-written JSON, CSV, cache or
checkpoint behind under the final name.
"""

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`, and rename it to `path` if the block succeeds.

    The temporary file keeps the suffix of `path`, so writers that look at the
    extension (matplotlib, numpy, torch) choose the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp_path = Path(tmp_name)
    # mkstemp creates mode 0600; outputs get the usual mode for new files under the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path, text):
    """Write `text` to `path` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _to_builtin(value):
    # json cannot serialise numpy scalars and arrays; NaN is written as null.
    if isinstance(value, np.ndarray):
        return [_to_builtin(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _to_builtin(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_builtin(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path, data):
    """Write `data` to `path` atomically as indented JSON.

    numpy scalars and arrays become plain numbers and lists, and NaN or infinity
    becomes ``null`` so that every JSON reader accepts the file.
    """
    write_text(path, json.dumps(_to_builtin(data), indent=2, allow_nan=False) + "\n")


def read_json(path):
    """Read a JSON file written by :func:`write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
