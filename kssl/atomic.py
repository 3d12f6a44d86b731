"""Atomic file writes: write beside the target, then rename over it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_file(path, suffix: str = ""):
    """Yields a temporary path in `path`'s folder; renames it onto `path` if the block succeeds.

    A reader never sees a half-written file, and a failure leaves `path` as it was.

    Example:
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=suffix, dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        yield pathlib.Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes files private; give them normal permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
