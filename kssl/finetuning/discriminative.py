"""Discriminative learning rates: a smaller learning rate for each earlier stage.

Howard & Ruder (2018) fine-tune the last layers at the full rate and each earlier group
at the rate of the one after it divided by a constant; here the head trains at the
learning rate, the last stage at `lr * decay`, the one before at `lr * decay**2`, and
layers outside the stages (the stem) at the smallest rate, `lr * decay**(stages + 1)`.

Scaling the gradients would not do this for Adam, whose update does not depend on the
gradient's scale, so `LayerwiseAdam` scales the learning rate of each variable.
"""

from __future__ import annotations

import keras

from kssl.finetuning.stages import encoder_stages, stage_of


def stage_learning_rates(encoder, decay: float) -> dict[str, float]:
    """Encoder layer name -> learning-rate multiplier, for layers that have weights.

    Examples:
        >>> from kssl.encoders import resnet
        >>> rates = stage_learning_rates(resnet(18, width=0.125, image_size=8), decay=0.5)
        >>> rates["stage4_block2_2_conv"], rates["stage1_block1_1_conv"], rates["stem_conv"]
        (0.5, 0.0625, 0.03125)
    """
    if not 0 < decay <= 1:
        raise ValueError(f"stage_decay must be in (0, 1]. Received: stage_decay={decay!r}")
    from kssl.layers.adapter import ResidualAdapter

    stages = encoder_stages(encoder)
    rank = {stage: len(stages) - index for index, stage in enumerate(stages)}  # last stage: 1
    rates = {}
    for layer in encoder.layers:
        if not layer.weights:
            continue
        if isinstance(layer, ResidualAdapter):
            rates[layer.name] = 1.0  # new layers train at the head's rate
            continue
        stage = stage_of(layer.name)
        rates[layer.name] = decay ** (rank[stage] if stage is not None else len(stages) + 1)
    return rates


@keras.saving.register_keras_serializable(package="kssl")
class LayerwiseAdam(keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per layer, found by name in a variable's path
    (the outermost layer listed); other variables (the head's) use the learning rate.

    Args:
        layer_multipliers: layer name -> multiplier, e.g. from `stage_learning_rates`.
        **kwargs: Adam's arguments.

    Examples:
        >>> import numpy as np
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, name="slow"),
        ...                           keras.layers.Dense(1, name="fast")])
        >>> optimizer = LayerwiseAdam(learning_rate=0.1, layer_multipliers={"slow": 0.1})
        >>> before = [w.numpy() for w in model.trainable_weights]
        >>> optimizer.apply([np.ones(w.shape, "float32") for w in model.trainable_weights],
        ...                 model.trainable_weights)
        >>> [round(float((b - w.numpy()).max()), 4) for b, w in zip(before, model.trainable_weights)]
        [0.01, 0.01, 0.1, 0.1]
    """

    def __init__(self, layer_multipliers: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.layer_multipliers = dict(layer_multipliers or {})

    def build(self, var_list):
        super().build(var_list)
        self._multipliers = [self._multiplier(v.path) for v in var_list]

    def _multiplier(self, path):
        for part in path.split("/")[:-1]:  # the outermost named layer that has a multiplier
            if part in self.layer_multipliers:
                return self.layer_multipliers[part]
        return 1.0

    def update_step(self, gradient, variable, learning_rate):
        multiplier = self._multipliers[self._get_variable_index(variable)]
        return super().update_step(gradient, variable, learning_rate * multiplier)

    def get_config(self):
        return {**super().get_config(), "layer_multipliers": self.layer_multipliers}
