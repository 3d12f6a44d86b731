"""`kssl export` and the export step of `kssl run`: where each format goes, checked before
anything is written, and the writing (`kssl.outputs.export`, the one artifact writer of exports)."""

from __future__ import annotations

import pathlib
import re

from kssl.app.staging import check_output_folder
from kssl.encoders.loading import load_keras_file
from kssl.errors import InputError, MissingInputError, OutputExistsError
from kssl.outputs.export import EXPORT_FORMATS, export_file, export_saved_model, write_batching_parameters


def export_job(model, out, model_name="kssl", version=1, overwrite=False, formats=("saved_model",)) -> list:
    """`kssl export`: `out/<model_name>/<version>/` (the layout TF Serving reads, with its
    warm-up requests) and an example `out/batching_parameters.txt`, and for ONNX and LiteRT
    `out/<model_name>-v<version>.onnx` / `.tflite`; returns the paths written."""
    path = pathlib.Path(model)
    if path.is_dir():
        path = path / "classifier.keras"
    if not path.is_file():
        raise MissingInputError(f"No classifier at {str(path)!r}: pass a run folder or a classifier .keras file.")
    targets = export_targets(pathlib.Path(out), model_name, version, formats)
    for name, target in targets.items():  # every one checked before anything is written
        if name == "saved_model":
            check_output_folder(target, overwrite)
        elif target.exists() and not overwrite:
            raise OutputExistsError(f"{str(target)!r} already exists; pass --overwrite to replace it.")
    classifier = load_keras_file(path)
    if not hasattr(classifier, "encoder") or not hasattr(classifier, "num_classes"):
        raise InputError(
            f"{str(path)!r} holds a {type(classifier).__name__}, not a kssl classifier: only a fine-tuned classifier "
            "is exported. Fine-tune it first (kssl finetune --pretrained ...), then export its run folder."
        )
    return export_formats(classifier, targets, model_name, overwrite)


# TF Serving finds a model as one folder of its base path: a name is one path component.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def export_targets(root: pathlib.Path, model_name: str, version: int, formats) -> dict:
    """Where each of `formats` goes under the serving root `root`; a model name that is not
    one plain path component (`../x`, `a/b`, empty) or a version that is not a whole number
    >= 1 is an `InputError`, so nothing is ever written outside `root`."""

    if not isinstance(model_name, str) or not _MODEL_NAME.fullmatch(model_name):
        raise InputError(
            f"--model-name {model_name!r}: a model name is one folder name of letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit, at most 128), e.g. flowers; it goes to OUT/<model-name>/<version>/."
        )
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"--version {version!r}: a model version is a whole number >= 1, as TF Serving reads it.")

    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise InputError(f"Unknown export format {unknown[0]!r}: choose among {', '.join(EXPORT_FORMATS)}.")
    if "onnx" in formats:
        try:
            import tf2onnx  # noqa: F401
        except ImportError:
            raise InputError("ONNX export needs tf2onnx: pip install tf2onnx (or pip install 'kssl[onnx]').") from None
    return {
        name: root / model_name / str(version) if name == "saved_model" else root / f"{model_name}-v{version}{suffix}"
        for name, suffix in EXPORT_FORMATS.items()
        if name in formats
    }


def export_formats(classifier, targets: dict, model_name: str, overwrite: bool = False, staged=None) -> list:
    """Writes `classifier` in each format of `targets` (format -> path), printed; returns the
    paths. `staged` is `(staging folder, run folder)`: paths are printed where they end up."""

    def shown(path):
        return path if staged is None else staged[1] / path.relative_to(staged[0])

    written = []
    for name, target in targets.items():
        if name == "saved_model":
            export_saved_model(classifier, target, overwrite=overwrite, model_name=model_name)
            batching = write_batching_parameters(target.parent.parent, overwrite=overwrite)
            print(f"SavedModel for TF Serving in {shown(target)}/ (signatures serving_default, predict_uint8, "
                  f"predict_bytes, embed; its warm-up requests in assets.extra/)\n"
                  f"  an example of TF Serving's batching parameters: {shown(batching)}")  # fmt: skip
            written += [target, batching]
        else:
            export_file(classifier, target, name, overwrite=overwrite)
            print(f"{'ONNX' if name == 'onnx' else 'LiteRT'} file {shown(target)} (input images: float32 pixel values "
                  "0-255, batch x height x width x 3; output probabilities)")  # fmt: skip
            written.append(target)
    return written
