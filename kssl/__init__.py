"""kssl: self-supervised pretraining of image encoders with Keras 3 (SimCLR, MoCo v2,
BYOL, SimSiam, Barlow Twins, VICReg, MAE), and transfer to small labeled image sets.

`import kssl` is light: it imports no TensorFlow. Public names are imported when first
used, and kssl's Keras classes are registered as soon as Keras is imported (see
`kssl.registration`), so `keras.saving.load_model` loads kssl's `.keras` files after a
plain `import kssl`. Imported before TensorFlow, kssl turns on TensorFlow's oneDNN CPU
kernels (see `kssl.runtime.cpu`).

Example: an encoder saved as `.keras` loads back with Keras alone once kssl is imported.
    >>> import os, tempfile
    >>> import kssl, keras
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.keras")
    >>> kssl.resnet(10, width=0.125, image_size=8).save(path)
    >>> [type(layer).__name__ for layer in keras.saving.load_model(path).layers][1:3]
    ['Conv2D', 'FusedBatchNormalization']
"""

from __future__ import annotations

import importlib

from kssl.runtime.cpu import prefer_onednn

prefer_onednn()

from kssl.registration import register_when_keras_is_imported  # noqa: E402

register_when_keras_is_imported()

__version__ = "0.1.0"

_EXPORTS = {
    "SelfSupervisedModel": "kssl.models.base",
    "METHODS": "kssl.methods",
    "method_class": "kssl.methods",
    "Classifier": "kssl.models.classifier",
    "ProjectionHead": "kssl.layers.heads",
    "conv4": "kssl.encoders.conv4",
    "resnet": "kssl.encoders.resnet",
    "build_encoder": "kssl.encoders",
    "vit": "kssl.encoders.vit",
    "from_keras_applications": "kssl.encoders.applications",
    "MODES": "kssl.finetuning",
    "method_spec": "kssl.methods",
    "AdversarialTraining": "kssl.finetuning.adversarial",
    "evaluate_robustness": "kssl.finetuning.adversarial",
    "fgsm": "kssl.finetuning.adversarial",
    "pgd": "kssl.finetuning.adversarial",
    "LayerwiseAdam": "kssl.finetuning.discriminative",
    "few_shot_accuracy": "kssl.evaluation.few_shot",
    "nt_xent": "kssl.losses",
    "LARS": "kssl.training.optimizers",
    "ImageSet": "kssl.data.sources",
    "DataError": "kssl.errors",
    "InputError": "kssl.errors",
    "parse_data_spec": "kssl.data.sources",
    "load": "kssl.data.sources",
    "from_folder": "kssl.data.sources",
    "from_tfds": "kssl.data.sources",
    "from_arrays": "kssl.data.sources",
    "load_digits": "kssl.data.sources",
    "label_subset": "kssl.data.subsets",
    "ImageFiles": "kssl.data.files",
    "list_folder": "kssl.data.files",
    "cached_copies": "kssl.data.image_cache",
    "TFDSRecords": "kssl.data.tfds_stream",
    "evaluation_images": "kssl.data.pipeline",
    "ViewAugmentation": "kssl.data.augment",
    "save_view_grid": "kssl.data.preview",
    "view_pairs": "kssl.data.pipeline",
    "labeled_batches": "kssl.data.pipeline",
    "evaluate_encoder": "kssl.evaluation.features",
    "select_for_labeling": "kssl.evaluation.label_selection",
    "knn_accuracy": "kssl.evaluation.features",
    "linear_probe_accuracy": "kssl.evaluation.features",
    "export_saved_model": "kssl.outputs.export",
    "export_file": "kssl.outputs.export",
    "write_embeddings": "kssl.evaluation.similarity",
    "read_embeddings": "kssl.evaluation.similarity",
    "top_k": "kssl.evaluation.similarity",
    "duplicate_pairs": "kssl.evaluation.similarity",
    "TensorBoardScalars": "kssl.outputs.tensorboard_logs",
    "extract_features": "kssl.evaluation.features",
    "warmup_cosine": "kssl.training.schedules",
    "PretrainingRecipe": "kssl.training.recipes",
    "recipe_for": "kssl.methods",
    "TimeBudget": "kssl.training.callbacks",
    "TrainingProgress": "kssl.training.callbacks",
    "StepHistory": "kssl.training.curves",
    "StopOnDivergence": "kssl.training.callbacks",
    "StepProgress": "kssl.training.progress",
    "KNNMonitor": "kssl.evaluation.monitor",
    "pretrain": "kssl.training",
    "finetune": "kssl.training",
    "RunConfig": "kssl.app.settings",
    "filter_native_logs": "kssl.runtime.quiet",
    "run": "kssl.app.jobs",
}

# Every registered method's class, by its class name (`kssl.SimCLR`), from the registry.
from kssl.methods import METHODS as _METHODS  # noqa: E402  (imports no TensorFlow)

_EXPORTS.update({spec.target.rpartition(":")[2]: spec.target.partition(":")[0] for spec in _METHODS.values()})

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kssl' has no attribute {name!r}")


def __dir__():
    return __all__
