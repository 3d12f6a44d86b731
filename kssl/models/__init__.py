"""Keras models: the self-supervised pretraining methods, and classification on top of an encoder.

`kssl.methods.METHODS` maps each method's name (`method="simclr"` in `kssl.pretrain`,
`--method` on the command line) to its class.
"""

from kssl.methods import METHODS, method_class  # noqa: E402  (the registry, which imports no TensorFlow)
from kssl.models.barlow_twins import BarlowTwins
from kssl.models.base import SelfSupervisedModel, ViewsLoss
from kssl.models.byol import BYOL
from kssl.models.classifier import Classifier
from kssl.models.mae import MAE, MAEDecoder
from kssl.models.moco import MoCo
from kssl.models.simclr import SimCLR
from kssl.models.simsiam import SimSiam
from kssl.models.vicreg import VICReg

__all__ = [
    "BYOL",
    "MAE",
    "MAEDecoder",
    "METHODS",
    "MoCo",
    "BarlowTwins",
    "Classifier",
    "SelfSupervisedModel",
    "SimCLR",
    "SimSiam",
    "VICReg",
    "ViewsLoss",
    "method_class",
]
