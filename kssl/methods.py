"""The registry of pretraining methods: name -> class, with a one-line description.

Importing it imports no TensorFlow, so the command line lists the methods in `--help`
at once; `method_class` imports a method's module when it is asked for. Adding a method
is its file in `kssl/models/`, one line here, and its recipe in `kssl.recipes`.

Example:
>>> list(METHODS)
['simclr', 'moco', 'byol', 'simsiam', 'barlow', 'vicreg', 'mae']
>>> method_class("SimSiam").__name__
'SimSiam'
"""

from __future__ import annotations

from kssl.registry import check_name, load_class

# name: ("module:Class", what it does in one line)
METHODS = {
    "simclr": (
        "kssl.models.simclr:SimCLR",
        "contrastive: each view against the batch's other images (Chen et al. 2020)",
    ),
    "moco": (
        "kssl.models.moco:MoCo",
        "contrastive against a queue of keys from a momentum encoder (MoCo v2, Chen et al. 2020)",
    ),
    "byol": (
        "kssl.models.byol:BYOL",
        "predict a slowly moving (EMA) target network's projections (Grill et al. 2020)",
    ),
    "simsiam": ("kssl.models.simsiam:SimSiam", "a predictor and a stop-gradient, no negatives (Chen & He 2021)"),
    "barlow": (
        "kssl.models.barlow_twins:BarlowTwins",
        "cross-correlation of the views driven to identity (Zbontar et al. 2021)",
    ),
    "vicreg": ("kssl.models.vicreg:VICReg", "variance, invariance and covariance terms (Bardes et al. 2022)"),
    "mae": (
        "kssl.models.mae:MAE",
        "masked autoencoder: reconstruct hidden patches, ViT encoders only (He et al. 2022)",
    ),
}


def check_method(name: str) -> str:
    """`name` in the registry's spelling, or an `InputError` listing the methods."""
    return check_name(METHODS, name, "pretraining method")


def method_class(name: str):
    """The `SelfSupervisedModel` subclass of the method called `name` (case-insensitive)."""
    return load_class(METHODS, name, "pretraining method")
