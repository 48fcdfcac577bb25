"""``python -m kernprof ...``: same as the ``kernprof`` command (see :mod:`kernprof`)."""

import sys

from kernprof import main

if __name__ == "__main__":
    sys.exit(main())
