"""Keras models: the self-supervised pretraining methods, and classification on top of an encoder.

`kssl.methods.METHODS` maps each method's name (`method="simclr"` in `kssl.pretrain`,
`--method` on the command line) to its spec; a method's class is importable from here
by its class name (`from kssl.models import SimCLR`), found through the registry, so a
new method needs no line in this file.
"""

from kssl.methods import METHODS, method_class  # noqa: F401  (re-exported)
from kssl.models.base import SelfSupervisedModel, ViewsLoss  # noqa: F401
from kssl.models.classifier import Classifier  # noqa: F401

_METHOD_CLASSES = {spec.target.rpartition(":")[2]: spec for spec in METHODS.values()}
_OTHERS = {"MAEDecoder": "kssl.models.mae"}

_BASE = ["METHODS", "Classifier", "SelfSupervisedModel", "ViewsLoss", "method_class"]
__all__ = sorted([*_BASE, *_METHOD_CLASSES, *_OTHERS])


def __getattr__(name):
    if name in _METHOD_CLASSES:
        return _METHOD_CLASSES[name].load()
    if name in _OTHERS:
        import importlib

        return getattr(importlib.import_module(_OTHERS[name]), name)
    raise AttributeError(f"module 'kssl.models' has no attribute {name!r}")


def __dir__():
    return __all__
