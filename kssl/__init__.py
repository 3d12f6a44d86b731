"""kssl: self-supervised (SimCLR) pretraining of image encoders with Keras 3, and transfer
to small labeled image sets.

`import kssl` registers kssl's Keras classes (layers and models), so
`keras.saving.load_model` loads kssl's `.keras` files right after it; other public names
are imported when first used. Imported before TensorFlow, kssl turns on TensorFlow's
oneDNN CPU kernels (see `kssl.cpu`).

Example:
    >>> import kssl
    >>> kssl.SimCLR.__name__
    'SimCLR'
"""

from __future__ import annotations

import importlib

from kssl.cpu import prefer_onednn

prefer_onednn()

# Registers the Keras serializables: Keras imports only its own packages when it meets an
# unknown class in a .keras file, so kssl's must be imported before loading one. This
# costs a TensorFlow import, also for `kssl --help` (the price of a plain `import kssl`
# then `keras.saving.load_model(...)` working).
import kssl.layers  # noqa: E402, F401
import kssl.models  # noqa: E402, F401

__version__ = "0.1.0"

_EXPORTS = {
    "SimCLR": "kssl.models.simclr",
    "Classifier": "kssl.models.classifier",
    "ProjectionHead": "kssl.layers.heads",
    "resnet": "kssl.encoders.resnet",
    "build_encoder": "kssl.encoders.resnet",
    "nt_xent": "kssl.losses",
    "ImageSet": "kssl.data.sources",
    "DataError": "kssl.data.sources",
    "load": "kssl.data.sources",
    "from_folder": "kssl.data.sources",
    "from_tfds": "kssl.data.sources",
    "from_arrays": "kssl.data.sources",
    "load_digits": "kssl.data.sources",
    "label_subset": "kssl.data.subsets",
    "ViewAugmentation": "kssl.data.augment",
    "save_view_grid": "kssl.data.preview",
    "view_pairs": "kssl.data.pipeline",
    "labeled_batches": "kssl.data.pipeline",
    "evaluate_encoder": "kssl.evaluation",
    "knn_accuracy": "kssl.evaluation",
    "linear_probe_accuracy": "kssl.evaluation",
    "export_saved_model": "kssl.export",
    "warmup_cosine": "kssl.schedules",
    "TimeBudget": "kssl.callbacks",
    "pretrain": "kssl.training",
    "finetune": "kssl.training",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kssl' has no attribute {name!r}")


def __dir__():
    return __all__
