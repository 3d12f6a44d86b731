"""The registry of pretraining methods: one `MethodSpec` per method, the only description of it.

Importing it imports no TensorFlow, so the command line lists the methods and their
options in `--help` at once; `method_class` imports a method's module when it is asked
for. A spec names the class, its recipe (`kssl.training.recipes`), its default encoder and its
own constructor options with their defaults and a line of help; registration with
Keras (`kssl.registration`), `--method`, `--method-option`, `config.json` and the
registry-driven contract tests (`tests/models/test_method_contract.py`) all read it. A
method's views are its class's `view_augmentations(image_size, **options)`: a list of
any length, of any sizes.

Adding a method is its file in `kssl/models/` (a `SelfSupervisedModel` subclass), one
entry here, and its tests; nothing else changes.

Examples:
    >>> list(METHODS)
    ['simclr', 'moco', 'byol', 'simsiam', 'barlow', 'vicreg', 'dino', 'distillation', 'mae']
    >>> method_class("SimSiam").__name__
    'SimSiam'
    >>> method_spec("moco").parse_options(["queue_size=1024", "symmetric=false"], "--method-option")
    {'queue_size': 1024, 'symmetric': False}
"""

from __future__ import annotations

import dataclasses

from kssl.registry import Option, Spec, check_name, load_class
from kssl.training import recipes


@dataclasses.dataclass(frozen=True)
class MethodSpec(Spec):
    """A pretraining method: its class, summary and options (`Spec`), recipe and default encoder."""

    recipe: recipes.PretrainingRecipe = recipes.SIMCLR
    encoder: str = "resnet18"
    needs_teacher: bool = False  # its constructor takes a frozen `teacher` model (--teacher)


_TEMPERATURE = Option(0.2, "softmax temperature of the contrastive loss")
_LOCAL_CROPS = Option(
    0, "small crops per image besides the 2 global ones (multi-crop, Caron et al. 2020); conv encoders"
)

METHODS = {
    "simclr": MethodSpec(
        "kssl.models.simclr:SimCLR",
        "contrastive: each view against the batch's other images (Chen et al. 2020)",
        {
            "temperature": _TEMPERATURE,
            "local_crops": Option(
                None,
                "small crops per image besides the 2 global ones (multi-crop); default: 4 from 64 px, 0 below",
                kind=int,
            ),
        },
        recipe=recipes.SIMCLR,
    ),
    "moco": MethodSpec(
        "kssl.models.moco:MoCo",
        "contrastive against a queue of keys from a momentum encoder (MoCo v2, Chen et al. 2020)",
        {
            "temperature": _TEMPERATURE,
            "queue_size": Option(4096, "keys kept from earlier batches (negatives)"),
            "momentum": Option(0.99, "EMA rate of the key encoder"),
            "momentum_schedule": Option(False, "raise the momentum to 1 on a cosine over training"),
            "symmetric": Option(True, "each view is query and key in turn"),
        },
        recipe=recipes.MOCO,
    ),
    "byol": MethodSpec(
        "kssl.models.byol:BYOL",
        "predict a slowly moving (EMA) target network's projections (Grill et al. 2020)",
        {
            "momentum": Option(0.99, "starting EMA rate of the target network"),
            "momentum_schedule": Option(True, "raise the momentum to 1 on a cosine over training"),
            "local_crops": _LOCAL_CROPS,
        },
        recipe=recipes.BYOL,
    ),
    "simsiam": MethodSpec(
        "kssl.models.simsiam:SimSiam",
        "a predictor and a stop-gradient, no negatives (Chen & He 2021)",
        recipe=recipes.SIMSIAM,
    ),
    "barlow": MethodSpec(
        "kssl.models.barlow_twins:BarlowTwins",
        "cross-correlation of the views driven to identity (Zbontar et al. 2021)",
        {"lambda_": Option(5e-3, "weight of the off-diagonal (redundancy) terms")},
        recipe=recipes.BARLOW,
    ),
    "vicreg": MethodSpec(
        "kssl.models.vicreg:VICReg",
        "variance, invariance and covariance terms (Bardes et al. 2022)",
        {
            "invariance_weight": Option(25.0, "weight of the views' mean squared distance"),
            "variance_weight": Option(25.0, "weight of the hinge on each dimension's standard deviation"),
            "covariance_weight": Option(1.0, "weight of the off-diagonal covariances"),
            "local_crops": _LOCAL_CROPS,
        },
        recipe=recipes.LIGHTLY_CIFAR,
    ),
    "dino": MethodSpec(
        "kssl.models.dino:DINO",
        "self-distillation: a student matches a momentum teacher's centred, sharpened prototypes across crops, "
        "multi-crop (Caron et al. 2021)",
        {
            "prototypes": Option(1024, "number of prototypes K (the head's output)"),
            "student_temperature": Option(0.1, "tau of the student's softmax"),
            "teacher_temperature": Option(0.07, "tau of the teacher's softmax after the warm-up"),
            "warmup_teacher_temperature": Option(0.04, "tau of the teacher's softmax at the start"),
            "teacher_warmup": Option(0.3, "share of training over which the teacher's tau warms up"),
            "centre_momentum": Option(0.9, "EMA rate of the teacher's centre"),
            "local_crops": dataclasses.replace(_LOCAL_CROPS, default=6),
            "momentum": Option(0.99, "starting EMA rate of the teacher"),
            "momentum_schedule": Option(True, "raise the momentum to 1 on a cosine over training"),
            "head_batch_norm": Option(False, "batch norm after the head's hidden layers (use_bn_in_head)"),
        },
        recipe=recipes.LIGHTLY_CIFAR,
    ),
    "distillation": MethodSpec(
        "kssl.models.distillation:Distillation",
        "a student reproduces a frozen teacher's feature maps of the same views (--teacher; LightlyTrain's "
        "distillation; not --semi-supervised distill)",
        {
            "normalize": Option(True, "compare unit vectors (2 - 2 cos); false: the raw features' mean squared error"),
            "feature_map": Option(
                True,
                "regress the teacher's feature map position by position where both "
                "encoders end in a pooled map; false: the pooled features",
            ),
            "views": Option(1, "views of each image distilled: 1 (LightlyTrain's: more images per step) or 2"),
        },
        recipe=recipes.DISTILLATION,
        needs_teacher=True,
    ),
    "mae": MethodSpec(
        "kssl.models.mae:MAE",
        "masked autoencoder: reconstruct hidden patches, ViT encoders only (He et al. 2022)",
        {
            "mask_ratio": Option(0.75, "share of each image's patches hidden from the encoder"),
            "normalize_targets": Option(True, "reconstruct each patch's normalised pixels"),
            "seed": Option(0, "seed of the masks"),
        },
        recipe=recipes.MAE,
        encoder="vit6",
    ),
}


def check_method(name: str) -> str:
    """`name` in the registry's spelling, or an `InputError` listing the methods."""
    return check_name(METHODS, name, "pretraining method")


def method_spec(name: str) -> MethodSpec:
    """The `MethodSpec` of the method called `name` (case-insensitive)."""
    return METHODS[check_method(name)]


def recipe_for(method: str) -> recipes.PretrainingRecipe:
    """The default recipe of a pretraining method (`"simclr"`, `"barlow"`, ...): its spec's."""
    return method_spec(method).recipe


def method_class(name: str):
    """The `SelfSupervisedModel` subclass of the method called `name` (case-insensitive)."""
    return load_class(METHODS, name, "pretraining method")
