"""Self-supervised losses, one family a module, each checked against a NumPy
re-derivation of its paper's formula in `tests/losses/`.

- `contrastive`: NT-Xent (SimCLR) and InfoNCE against a queue (MoCo).
- `distillation`: BYOL's normalized MSE and SimSiam's negative cosine, between a
  prediction and a stop-gradient target; a frozen teacher's features regressed
  (`teacher_regression`, the `distillation` pretraining method).
- `reconstruction`: MAE's masked-patch pixel regression.
- `self_distillation`: DINO's centred, sharpened teacher against the student, across crops.
- `semi_supervised`: FixMatch's pseudo-labels and SimCLRv2's distillation, for fine-tuning
  with unlabeled images.
- `redundancy_reduction`: Barlow Twins and VICReg, on the embeddings of a whole batch.

Losses that compare examples across the batch take `gather_distributed=True`, which
uses the embeddings of every replica (`kssl.runtime.distribute`), so a multi-replica step
computes the loss of the global batch.
"""

from kssl.losses.contrastive import (
    check_temperature,
    contrastive_accuracy,
    info_nce,
    info_nce_per_query,
    nt_xent,
    nt_xent_logits,
    nt_xent_per_anchor,
)
from kssl.losses.distillation import byol, byol_crops, negative_cosine, normalized_mse, simsiam, teacher_regression
from kssl.losses.reconstruction import masked_patch_mse, patchify
from kssl.losses.redundancy_reduction import barlow_twins, cross_correlation, vicreg
from kssl.losses.self_distillation import dino
from kssl.losses.semi_supervised import (
    distillation,
    fixmatch,
    flexmatch_thresholds,
    freematch_fairness,
    freematch_mask,
)

__all__ = [
    "barlow_twins",
    "byol",
    "byol_crops",
    "check_temperature",
    "contrastive_accuracy",
    "cross_correlation",
    "dino",
    "distillation",
    "fixmatch",
    "flexmatch_thresholds",
    "freematch_fairness",
    "freematch_mask",
    "info_nce",
    "info_nce_per_query",
    "masked_patch_mse",
    "negative_cosine",
    "normalized_mse",
    "nt_xent",
    "nt_xent_logits",
    "nt_xent_per_anchor",
    "patchify",
    "simsiam",
    "teacher_regression",
    "vicreg",
]
