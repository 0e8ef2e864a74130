"""dermaudit: failure-analysis reports for 7-class dermoscopy classifiers."""

from dermaudit.classes import CLASSES

__version__ = "0.1.0"

__all__ = ["CLASSES", "__version__"]
