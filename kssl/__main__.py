"""`python -m kssl` is the `kssl` command."""

import sys

from kssl.cli import main

if __name__ == "__main__":
    sys.exit(main())
