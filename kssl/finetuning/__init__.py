"""Fine-tuning modes: how a `Classifier` trains (or adapts) the encoder it holds.

The registry maps a mode name to its `Spec`: the class (a `FineTuningMode` subclass),
a one-line description, and its options with their defaults and a line of help, which
`--mode-option KEY=VALUE` reaches. Importing it imports no TensorFlow, so the command
line lists the modes in `--help` at once; `mode_class` imports a mode's module when it
is asked for. Adding a mode is its file in `kssl/finetuning/` and one entry here.

("Mode" is kssl's one word for this concept; "strategy" means `tf.distribute`'s.)

Examples:
    >>> list(MODES)
    ['linear', 'partial', 'full', 'lora', 'adapter', 'gradual']
    >>> mode_class("LoRA").__name__
    'LoRA'
    >>> MODES["lora"].parse_options(["rank=4"], "--mode-option")
    {'rank': 4}
"""

from __future__ import annotations

from kssl.registry import Option, Spec, check_name, load_class, renamed

MODES = {
    "linear": Spec("kssl.finetuning.linear:LinearProbe", "the head only, on frozen features (a linear probe)"),
    "partial": Spec(
        "kssl.finetuning.partial:LastStages",
        "the head and the encoder's last stage(s)",
        {"trainable_stages": Option(1, "how many of the encoder's last stages train")},
    ),
    "full": Spec("kssl.finetuning.full:FullFineTuning", "every weight"),
    "lora": Spec(
        "kssl.finetuning.lora:LoRA",
        "low-rank updates of every convolution and dense kernel, merged for export (Hu et al. 2022)",
        {
            "rank": Option(8, "rank of each low-rank update"),
            "alpha": Option(None, "updates scaled by alpha / rank (default: rank, a scale of 1)", float),
        },
    ),
    "adapter": Spec(
        "kssl.finetuning.adapter:Adapters",
        "small residual bottleneck adapters after each stage of a frozen encoder (Houlsby et al. 2019)",
        {"reduction": Option(4, "channel reduction of each adapter's bottleneck")},
    ),
    "gradual": Spec(
        "kssl.finetuning.gradual:GradualUnfreezing",
        "the head first, then one more stage every few epochs (Howard & Ruder 2018)",
        {"every_epochs": Option(None, "epochs between two unfreezings (default: done at half of training)", float)},
    ),
}
# Adversarial fine-tuning's attacks (`kssl.finetuning.adversarial`), listed here for `--help`.
ATTACKS = ("fgsm", "pgd")
# MODES' name before 2026-12-01 ("strategy" now means tf.distribute's only).
__getattr__ = renamed("kssl.finetuning", {"STRATEGIES": ("MODES", MODES)})


def check_mode(name: str) -> str:
    """`name` in the registry's spelling, or an `InputError` listing the modes."""
    return check_name(MODES, name, "fine-tuning mode")


def mode_class(name: str):
    """The `FineTuningMode` subclass of the mode called `name` (case-insensitive)."""
    return load_class(MODES, name, "fine-tuning mode")
