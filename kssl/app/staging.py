"""Run folders: refusing to overwrite, staging beside `out` for resumes, and reading a
run's artifacts back.

Every job that writes a folder stages it beside `out` and renames it into place at the
end (`kssl.atomic.atomic_folder`, the one folder writer, which `kssl export` uses too),
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

from kssl.atomic import atomic_file, atomic_folder
from kssl.errors import InputError, MissingInputError, OutputExistsError, UnwritableOutputError


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
    from kssl.data.sources import parse_data_spec

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


def encoder_file(path) -> pathlib.Path:
    """The encoder `.keras` file of `path`: the file itself, or a run folder's `encoder.keras`."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "encoder.keras"
    if not path.is_file():
        raise MissingInputError(f"No encoder at {str(path)!r}: pass a run folder of `kssl pretrain` or a .keras file.")
    return path


def load_encoder(path, image_size: int | None = None):
    """An encoder from a `.keras` file (any Keras image model: `kssl.encoders.from_model`), or
    from a run folder holding `encoder.keras`, at `image_size` when the model takes any size."""
    path = encoder_file(path)
    return as_encoder(load_keras_file(path), image_size, path)


def declared_size(model, asked, path) -> tuple[int | None, str | None]:
    """`(size, where it came from)` of the images the model in `path` takes: its own size
    ("from the encoder file"; another `--image-size` is an `InputError`), the one asked for,
    or `(None, None)` for a model of any size when none was asked (the data's default)."""
    from kssl.encoders.from_model import encoder_from_model

    model = getattr(model, "encoder", model)
    size = model.input_shape[1] if len(model.input_shape) == 4 else None
    if size is None:
        return (asked, "as asked (--image-size)") if asked is not None else (None, None)
    encoder_from_model(model, asked, name=repr(str(path)))  # another size asked: its message
    return size, f"from the encoder file ({path.name})"


def as_encoder(model, image_size, path, role: str = "encoder"):
    """`model` (loaded from `path`) as a kssl encoder at `image_size`, what was done to it
    printed as the `role` it plays (the encoder, a teacher)."""
    from kssl.encoders.from_model import encoder_from_model

    encoder, notes = encoder_from_model(model, image_size, name=repr(str(path)))
    if notes:
        print(f"{role}: {path}: {'; '.join(notes)}", flush=True)
    return encoder


def load_teacher(spec: str, image_size: int):
    """The frozen teacher of `--teacher`: a `.keras` image model or run folder (a model of any
    size is used at `image_size`), or `keras:NAME` with ImageNet weights."""
    if str(spec).lower().startswith("keras:"):
        from kssl.encoders import from_keras_applications

        return from_keras_applications(str(spec)[len("keras:") :], weights="imagenet", image_size=image_size)
    if str(spec).lower().startswith("keras_hub:"):
        from kssl.encoders.from_model import from_keras_hub

        return from_keras_hub(str(spec)[len("keras_hub:") :], image_size)
    path = encoder_file(pathlib.Path(spec).expanduser())
    return as_encoder(load_keras_file(path), image_size, path, role="teacher")


def load_keras_file(path):
    """`keras.saving.load_model(path)`, with an `InputError` naming the file when it is not a
    `.keras` file (truncated, another format) or holds code that `safe_mode` refuses.

    Keras says "File not found" for a file that exists but is no zip archive, and reports
    `safe_mode` refusals as a `ValueError` like any other; other errors stay bugs.
    """
    import zipfile

    import keras

    path = pathlib.Path(path)
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{str(path)!r} is not a .keras file (a zip archive that Keras writes): it may be truncated or of "
            "another format. Pass a model saved by kssl (encoder.keras or classifier.keras), or a run folder."
        )
    with zipfile.ZipFile(path) as archive:
        if "config.json" not in archive.namelist():
            raise InputError(f"{str(path)!r} is a zip archive but not a .keras file (it has no config.json).")
        if b'"keras_hub' in archive.read("config.json"):  # its layers register when keras-hub is imported
            try:
                import keras_hub  # noqa: F401
            except ImportError:
                raise InputError(f"{str(path)!r} holds keras-hub layers: pip install keras-hub to load it.") from None
    try:
        return keras.saving.load_model(path)
    except ValueError as error:
        if "safe_mode" not in str(error):
            raise
        raise InputError(
            f"{str(path)!r} holds code (such as a Lambda layer) that Keras runs only with safe_mode=False, "
            "so kssl does not load it. If you trust the file, load it in Python with "
            "keras.saving.load_model(path, safe_mode=False)."
        ) from None
    except TypeError as error:  # Keras' word for a class or function it does not know
        reason = str(error).strip().splitlines()[-1]
        raise InputError(
            f"{str(path)!r} was refused as unsafe or unknown: it names a class or function that is neither Keras' "
            f"nor kssl's ({reason}), and kssl runs no other code from a model file. If it holds layers of your "
            "own, import the module that registers them and load it in Python."
        ) from None
