"""Adapters: small residual bottlenecks after each stage of a frozen encoder."""

from __future__ import annotations

import keras

from kssl.finetuning.base import FineTuningMode
from kssl.finetuning.stages import require_stages, stage_end_layers
from kssl.layers.adapter import ResidualAdapter


class Adapters(FineTuningMode):
    """Inserts a `ResidualAdapter` after the last layer of every stage and trains only
    the adapters (and the classifier's head); the encoder stays frozen, batch norm in
    inference mode. The adapters' output projections start at zero, so the adapted
    encoder starts as the pretrained one.

    Args:
        reduction: channels / bottleneck width of each adapter (default 4).

    Reference:
        Houlsby et al. 2019, Parameter-Efficient Transfer Learning for NLP,
        https://arxiv.org/abs/1902.00751; Rebuffi et al. 2017 (residual adapters for
        vision), https://arxiv.org/abs/1705.08045.
    """

    def __init__(self, reduction: int = 4):
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"adapter reduction must be an integer >= 1. Received: reduction={reduction!r}")
        self.reduction = reduction

    def adapt(self, encoder):
        if any(isinstance(layer, ResidualAdapter) for layer in encoder.layers):
            return encoder  # a loaded classifier's encoder has its adapters already
        ends = {name: stage for stage, name in stage_end_layers(encoder).items()}
        require_stages(encoder, "adapter")

        def call_with_adapters(layer, *args, **kwargs):
            outputs = layer(*args, **kwargs)
            if layer.name in ends:
                outputs = ResidualAdapter(self.reduction, name=f"adapter{ends[layer.name]}")(outputs)
            return outputs

        # The adapted encoder reuses the encoder's own layers (and weights).
        return keras.models.clone_model(encoder, clone_function=lambda layer: layer, call_function=call_with_adapters)

    def set_trainable(self, encoder):
        encoder.trainable = True
        for layer in encoder.layers:
            layer.trainable = isinstance(layer, ResidualAdapter)

    def get_config(self):
        return {"reduction": self.reduction}
