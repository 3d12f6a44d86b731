"""Linear probe: only the classifier's head trains."""

from __future__ import annotations

from kssl.finetuning.base import FineTuningMode


class LinearProbe(FineTuningMode):
    """Every encoder layer frozen; batch norm in inference mode, so neither weights nor
    moving statistics change. Only the head trains."""

    def set_trainable(self, encoder):
        encoder.trainable = False
