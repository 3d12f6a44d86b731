"""Keras models: the self-supervised pretraining methods, and classification on top of an encoder.

`METHODS` maps each method's name (`method="simclr"` in `kssl.pretrain` and `--method` on
the command line) to its class; adding a method is its file plus one line here.
"""

from kssl.models.barlow_twins import BarlowTwins
from kssl.models.base import SelfSupervisedModel, ViewsLoss
from kssl.models.classifier import Classifier
from kssl.models.simclr import SimCLR
from kssl.models.simsiam import SimSiam
from kssl.models.vicreg import VICReg

METHODS = {
    "simclr": SimCLR,
    "simsiam": SimSiam,
    "barlow": BarlowTwins,
    "vicreg": VICReg,
}


def method_class(name: str) -> type[SelfSupervisedModel]:
    """The pretraining method called `name` (case-insensitive).

    Example:
    >>> method_class("SimCLR").__name__
    'SimCLR'
    """
    from kssl.errors import InputError

    key = str(name).lower()
    if key not in METHODS:
        raise InputError(f"Unknown pretraining method {name!r}. Available methods: {', '.join(METHODS)}.")
    return METHODS[key]


__all__ = [
    "METHODS",
    "BarlowTwins",
    "Classifier",
    "SelfSupervisedModel",
    "SimCLR",
    "SimSiam",
    "VICReg",
    "ViewsLoss",
    "method_class",
]
