"""Fine-tuning strategies: how a `Classifier` trains (or adapts) the encoder it holds.

The registry maps a mode name to its strategy class and a one-line description.
Importing it imports no TensorFlow, so the command line lists the modes in `--help` at
once; `strategy_class` imports a strategy's module when it is asked for. Adding a
strategy is its file in `kssl/finetuning/` (a `FineTuningStrategy` subclass) and one
line here.

Example:
>>> list(STRATEGIES)
['linear', 'partial', 'full', 'lora', 'adapter', 'gradual']
>>> strategy_class("LoRA").__name__
'LoRA'
"""

from __future__ import annotations

from kssl.registry import check_name, load_class

# name: ("module:Class", what it trains, in one line)
STRATEGIES = {
    "linear": ("kssl.finetuning.linear:LinearProbe", "the head only, on frozen features (a linear probe)"),
    "partial": ("kssl.finetuning.partial:LastStages", "the head and the encoder's last stage(s)"),
    "full": ("kssl.finetuning.full:FullFineTuning", "every weight"),
    "lora": (
        "kssl.finetuning.lora:LoRA",
        "low-rank updates of every convolution and dense kernel, merged for export (Hu et al. 2022)",
    ),
    "adapter": (
        "kssl.finetuning.adapter:Adapters",
        "small residual bottleneck adapters after each stage of a frozen encoder (Houlsby et al. 2019)",
    ),
    "gradual": (
        "kssl.finetuning.gradual:GradualUnfreezing",
        "the head first, then one more stage every few epochs (Howard & Ruder 2018)",
    ),
}


def check_mode(name: str) -> str:
    """`name` in the registry's spelling, or an `InputError` listing the modes."""
    return check_name(STRATEGIES, name, "fine-tuning mode")


def strategy_class(name: str):
    """The `FineTuningStrategy` subclass of the mode called `name` (case-insensitive)."""
    return load_class(STRATEGIES, name, "fine-tuning mode")
