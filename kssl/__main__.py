"""`python -m kssl` is the `kssl` command."""

import sys

from kssl.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
