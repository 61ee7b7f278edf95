"""``python -m fastmf``: the command line (`fastmf.cli`)."""

import sys

from .cli import main

sys.exit(main())
