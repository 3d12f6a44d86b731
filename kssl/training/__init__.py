"""Training: one-call pretraining (`kssl.training.pretraining.pretrain`) and fine-tuning
(`kssl.training.fine_tuning.finetune`) over `ImageSet`s, on any `tf.distribute` strategy,
resumable from checkpoints (`fitting`); the callbacks, curves, progress, schedules,
optimizers and recipes they use.

`from kssl.training import pretrain, finetune, copy_model` works; their modules (and
TensorFlow) are imported on first use, so importing a light part such as
`kssl.training.recipes` imports no TensorFlow.
"""

import importlib

_EXPORTS = {
    "pretrain": "kssl.training.pretraining",
    "finetune": "kssl.training.fine_tuning",
    "copy_model": "kssl.training.fitting",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kssl.training' has no attribute {name!r}")
