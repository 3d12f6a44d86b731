"""Partial fine-tuning: the last stage(s) of the encoder train, the rest stays frozen."""

from __future__ import annotations

from kssl.finetuning.base import FineTuningMode
from kssl.finetuning.stages import require_stages, set_unfrozen_stages


class LastStages(FineTuningMode):
    """Only the last `trainable_stages` stages train (`kssl.finetuning.stages` reads the
    stages from layer names); the stem and earlier stages stay frozen.

    Args:
        trainable_stages: how many of the last stages train, >= 1.
    """

    def __init__(self, trainable_stages: int = 1):
        self.trainable_stages = trainable_stages

    def set_trainable(self, encoder):
        stages = require_stages(encoder, "partial")
        count = self.trainable_stages
        if not isinstance(count, int) or not 1 <= count <= len(stages):
            raise ValueError(
                f"trainable_stages must be between 1 and {len(stages)} for this encoder. "
                f"Received: trainable_stages={count!r}"
            )
        set_unfrozen_stages(encoder, set(stages[-count:]))

    def get_config(self):
        return {"trainable_stages": self.trainable_stages}
