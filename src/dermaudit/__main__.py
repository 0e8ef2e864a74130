"""Allow ``python -m dermaudit``."""

import sys

from dermaudit.cli import main

sys.exit(main())
