"""Run folders: refusing to overwrite, staging beside `out` for resumes, and reading a
run's artifacts back.

Every job that writes a folder stages it beside `out` and renames it into place at the
end (`kssl.outputs.atomic.atomic_folder`, the one folder writer, which `kssl export` uses too),
so an interrupted job leaves no half-written model, and an existing folder is never
replaced unless `overwrite=True`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import shutil
import socket
import tempfile

from kssl.data.sources import parse_data_spec
from kssl.errors import InputError, MissingInputError, OutputExistsError, UnwritableOutputError
from kssl.outputs.atomic import atomic_file, atomic_folder


def check_output_folder(out, overwrite: bool, data: str | None = None) -> pathlib.Path:
    """Fails early, before any training, if `out` exists, is a file, cannot be written,
    or lies inside the `data` folder (or holds it)."""
    out = pathlib.Path(out).expanduser()
    if out.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(out)!r} already exists; pass --overwrite to replace it, or choose another --out."
        )
    if out.exists() and not out.is_dir():
        raise OutputExistsError(
            f"--out {str(out)!r} is a file, not a run folder; --overwrite replaces run folders only. "
            "Choose another --out, or remove the file."
        )
    _check_apart(out, data)
    existing = out.parent
    while not existing.exists():
        existing = existing.parent
    try:  # the real test of writability: root passes os.access checks on read-only mounts
        tempfile.TemporaryDirectory(dir=existing).cleanup()
    except OSError:
        raise UnwritableOutputError(f"Cannot write to {str(out.parent)!r}: choose a writable --out.") from None
    if out.parent.is_dir():
        with run_lock(out):  # another run writing `out` stops this one now, not after loading the data
            pass
    return out


def check_output_file(path, overwrite: bool) -> pathlib.Path:
    """Fails early, before any work, if the file `path` exists (unless `overwrite`) or its
    folder does not."""
    path = pathlib.Path(path).expanduser()
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{str(path)!r} already exists; pass --overwrite to replace it, or choose another --out."
        )
    if not path.parent.is_dir():
        raise MissingInputError(f"No folder {str(path.parent)!r} to write --out into: create it first.")
    if path.is_dir():
        raise InputError(f"--out {str(path)!r} is a folder: name a file.")
    try:  # the real test of writability: root passes os.access checks on read-only mounts
        tempfile.TemporaryFile(dir=path.parent).close()
    except OSError:
        raise UnwritableOutputError(f"Cannot write to {str(path.parent)!r}: choose a writable --out.") from None
    return path


def _check_apart(out: pathlib.Path, data: str | None) -> None:
    """A run folder inside the data folder would be read as a class by the next run on it."""

    if data is None or parse_data_spec(data).kind != "folder":
        return
    folder, target = pathlib.Path(data).expanduser().resolve(), out.resolve()
    if target == folder or folder in target.parents:
        raise InputError(
            f"--out {str(out)!r} is inside --data {data!r}: the next run on that folder would train on this "
            "run's files as a class. Choose an --out outside the data folder."
        )
    if target in folder.parents:
        raise InputError(
            f"--data {data!r} is inside --out {str(out)!r}, which --overwrite would replace. Choose another --out."
        )


@contextlib.contextmanager
def staged_folder(out: pathlib.Path, identity: dict | None = None):
    """Yields the staging folder `.<name>.partial` beside `out`; on success it replaces `out`.

    A run that dies leaves its staging folder, with training checkpoints in
    `checkpoints/` and, in `run.json`, `identity`: what determines the run's result
    (`RunConfig.result_fields()`, and the hash of the pretrained encoder it fine-tunes).
    The same command started again resumes from the checkpoints. A staging folder left
    by a run with another identity is an error naming what differs, never reused.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(out), _staged(out, identity) as staging:
        yield staging


@contextlib.contextmanager
def _staged(out, identity):
    staging = out.parent / f".{out.name}.partial"
    recorded = staging / "run.json"
    identity = json.loads(json.dumps(identity or {}, default=str))  # as it reads back from JSON
    if staging.exists():
        previous = json.loads(recorded.read_text()) if recorded.exists() else None
        if previous != identity:
            if previous is None:
                what = "an unknown configuration (it has no run.json)"
            else:
                keys = sorted(k for k in {*previous, *identity} if previous.get(k) != identity.get(k))
                what = "; ".join(f"{k}: {previous.get(k)!r} then, {identity.get(k)!r} now" for k in keys)
            raise OutputExistsError(
                f"{str(staging)!r} holds an interrupted run that differs from this one ({what}). "
                "Run that command again to resume it, or delete the folder to start afresh."
            )
        print(f"resuming the interrupted run in {staging}", flush=True)
    try:
        with atomic_folder(out, staging, keep_on_error=True):
            write_json(recorded, identity)
            yield staging
            shutil.rmtree(staging / "checkpoints", ignore_errors=True)
            recorded.unlink(missing_ok=True)
    except InputError:
        # Input kssl cannot use fails the same command again: the folder is kept only for
        # the training it holds, which a corrected command of the same settings resumes.
        if any((staging / "checkpoints").rglob("checkpoint")):
            print(f"kssl: the training done so far is kept in {staging}; once the input is fixed, a command with "
                  "the same settings resumes it.", flush=True)  # fmt: skip
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    except BaseException:
        print(f"kssl: the unfinished run is kept in {staging}; the same command resumes it.", flush=True)
        raise


@contextlib.contextmanager
def run_lock(out: pathlib.Path):
    """Holds an OS lock on `.<name>.lock` beside `out` while a run writes it: a second run
    on the same `--out` stops at once with an `OutputExistsError` naming the first one's
    process. The operating system releases the lock when the process ends, even by
    `kill -9`, so the same command then resumes. (Without `fcntl`, as on Windows, no lock.)
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux or macOS
        yield
        return
    path = out.parent / f".{out.name}.lock"
    while True:
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise OutputExistsError(
                f"Another kssl run ({holder}) is writing {str(out)!r}. Wait for it to finish, stop it, or choose "
                "another --out."
            ) from None
        try:  # the file may have been removed by the run that held it: lock the one on disk
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def file_sha256(path) -> str:
    """The SHA-256 of a file's bytes: the identity of a saved encoder."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path, payload):
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(payload, indent=2, default=str))
