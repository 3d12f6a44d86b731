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

    Examples:
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


@contextlib.contextmanager
def atomic_folder(path, staging=None, keep_on_error: bool = False):
    """Yields a staging folder beside `path`; renames it onto `path` if the block succeeds.

    The one folder writer of kssl's runs and of `kssl export`: a reader never sees a
    half-written folder. `staging` names the staging folder (default: a new temporary
    one); `keep_on_error=True` keeps it when the block fails (a run's checkpoints, for
    a resume), else it is removed. An existing `path` is replaced only on success, so
    callers check `overwrite` before they start.

    Examples:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "model"
        >>> with atomic_folder(target) as folder:
        ...     _ = (folder / "weights.txt").write_text("done")
        >>> sorted(p.name for p in target.iterdir()), sorted(p.name for p in target.parent.iterdir())
        (['weights.txt'], ['model'])
    """
    import shutil

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if staging is None:
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:
        staging = pathlib.Path(staging)
        staging.mkdir(exist_ok=True)
    try:
        yield staging
    except BaseException:
        if not keep_on_error:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(staging, path)
