"""`python -m tfkd ...`: the same command line as `tfkd ...`."""

import sys

from tfkd.cli import main

if __name__ == "__main__":
    sys.exit(main())
