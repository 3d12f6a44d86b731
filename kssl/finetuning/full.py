"""Full fine-tuning: every encoder weight trains."""

from __future__ import annotations

from kssl.finetuning.base import FineTuningMode
from kssl.finetuning.stages import set_unfrozen_stages


class FullFineTuning(FineTuningMode):
    """Every encoder layer trains (batch norm in training mode)."""

    def set_trainable(self, encoder):
        set_unfrozen_stages(encoder, "all")
