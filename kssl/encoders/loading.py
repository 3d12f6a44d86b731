"""Encoders from files: a `.keras` image model or a run folder's `encoder.keras`, loaded
safely (`load_keras_file`: a clear error for a truncated file, another format or code
that Keras' `safe_mode` refuses) and made a kssl encoder (`kssl.encoders.from_model`);
the teacher of `--teacher` likewise, or from `keras.applications`.
"""

from __future__ import annotations

import pathlib

from kssl.errors import InputError, MissingInputError


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
        from kssl.encoders.applications import from_keras_applications

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

    from kssl.registration import register_pending

    register_pending()  # if Keras came in halfway through a kssl import, kssl's classes now

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
