"""``python -m lineprof FILE...``: show profiles (see :mod:`lineprof.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
