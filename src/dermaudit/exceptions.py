"""Exceptions raised by dermaudit.

Every message names what was expected, what was received (file, row, column or value)
and what to do next.
"""


class DermauditError(Exception):
    """Base class of every error that dermaudit raises on purpose."""


class DataValidationError(DermauditError, ValueError):
    """The data set on disk does not match the HAM10000 layout or contains invalid rows."""


class ParamsError(DermauditError, ValueError):
    """A params file or parameter value is invalid."""


class RegistryError(DermauditError, KeyError):
    """A registry lookup used an unknown name, or a name was registered twice."""

    def __str__(self):
        # KeyError quotes its message; a plain message reads better.
        return str(self.args[0]) if self.args else ""


class SliceUnavailableError(DermauditError):
    """A slice cannot be formed on this data (a column is missing or all values are equal)."""


class WeightsError(DermauditError, RuntimeError):
    """Pretrained weights or a checkpoint could not be loaded."""


class ChapterExecutionError(DermauditError, RuntimeError):
    """A chapter notebook failed; the message names the chapter, the cell and the kept notebook."""


class RenderError(DermauditError, RuntimeError):
    """The report could not be rendered to HTML or PDF."""
