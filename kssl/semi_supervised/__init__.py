"""Semi-supervised fine-tuning: the unlabeled images train the classifier with the labels.

The registry maps a method's name to its `Spec` (the class, a line of description, its
options), as `kssl.finetuning.MODES` does for modes: `--semi-supervised NAME` and
`--semi-option KEY=VALUE` reach them, and importing it imports no TensorFlow. A method
is a `kssl.semi_supervised.base.SemiSupervisedMethod`: the views it takes of each
unlabeled image and its per-image loss terms. `SemiSupervisedTraining` trains any
fine-tuning mode's `Classifier` with one. Adding a method is its file here and one entry.

Examples:
    >>> list(SEMI_SUPERVISED)
    ['fixmatch', 'flexmatch', 'freematch', 'distill']
    >>> SEMI_SUPERVISED["fixmatch"].parse_options(["threshold=0.9"], "--semi-option")
    {'threshold': 0.9}
"""

from __future__ import annotations

from kssl.registry import Option, Spec, check_name, load_class

SEMI_SUPERVISED = {
    "fixmatch": Spec(
        "kssl.semi_supervised.fixmatch:FixMatch",
        "confident predictions on a weak view of each unlabeled image train its strong view (Sohn et al. 2020)",
        {
            "ratio": Option(7, "unlabeled images per labeled image in a step (the paper's mu)"),
            "threshold": Option(0.95, "confidence a pseudo-label needs (tau)"),
            "weight": Option(1.0, "weight of the unlabeled loss (lambda_u)"),
        },
    ),
    "flexmatch": Spec(
        "kssl.semi_supervised.flexmatch:FlexMatch",
        "FixMatch with class-wise thresholds lowered for the classes the model learns slowly (Zhang et al. 2021)",
        {
            "ratio": Option(7, "unlabeled images per labeled image in a step (mu)"),
            "threshold": Option(0.95, "the fixed threshold tau the class-wise ones scale"),
            "weight": Option(1.0, "weight of the unlabeled loss (lambda_u)"),
        },
    ),
    "freematch": Spec(
        "kssl.semi_supervised.freematch:FreeMatch",
        "FixMatch with thresholds that adapt to the model's confidence, per class, and a fairness term "
        "(Wang et al. 2023)",
        {
            "ratio": Option(7, "unlabeled images per labeled image in a step (mu)"),
            "weight": Option(1.0, "weight of the unlabeled loss (lambda_u)"),
            "momentum": Option(
                None, "EMA rate of the thresholds' statistics (lambda; none: from the run's length, <= 0.999)", float
            ),
            "fairness_weight": Option(0.01, "weight of the fairness term (lambda_f)"),
        },
    ),
    "distill": Spec(
        "kssl.semi_supervised.distill:Distillation",
        "a student from the pretrained encoder matches the fine-tuned classifier on unlabeled images "
        "(SimCLRv2, Chen et al. 2020b)",
        {
            "ratio": Option(7, "unlabeled images per labeled image in a step"),
            "temperature": Option(1.0, "softmax temperature of teacher and student (tau)"),
            "weight": Option(1.0, "weight of the distillation loss (the labeled loss has weight 1)"),
        },
    ),
}


def check_semi_supervised(name: str) -> str:
    """`name` in the registry's spelling, or an `InputError` listing the methods."""
    return check_name(SEMI_SUPERVISED, name, "semi-supervised method")


def semi_supervised_class(name: str):
    """The method's class, imported on first use."""
    return load_class(SEMI_SUPERVISED, name, "semi-supervised method")
