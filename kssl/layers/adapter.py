"""A residual bottleneck adapter (Houlsby et al. 2019; Rebuffi et al. 2017)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="kssl")
class ResidualAdapter(keras.layers.Layer):
    """`x + up(relu(down(x)))` on the channel (last) axis; `up` starts at zero.

    On feature maps `(B, H, W, C)` the two projections are 1x1 convolutions; on token
    sequences `(B, N, C)` they are per-token dense layers (both are a `Dense` on the last
    axis). With `up` zero-initialised the adapter starts as the identity.

    Args:
        reduction: the bottleneck has `max(1, C // reduction)` channels.

    Examples:
        >>> import numpy as np
        >>> adapter = ResidualAdapter(reduction=4)
        >>> x = np.random.rand(2, 5, 5, 16).astype("float32")
        >>> bool(np.array_equal(adapter(x), x)), adapter.count_params()  # 16*4+4 + 4*16+16
        (True, 148)
    """

    def __init__(self, reduction: int = 4, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"reduction must be an integer >= 1. Received: reduction={reduction!r}")
        self.reduction = reduction

    def build(self, input_shape):
        channels = input_shape[-1]
        self.down = keras.layers.Dense(max(1, channels // self.reduction), activation="relu", name="down")
        self.up = keras.layers.Dense(channels, kernel_initializer="zeros", name="up")
        self.down.build(input_shape)
        self.up.build((*input_shape[:-1], self.down.units))

    def call(self, inputs):
        return inputs + self.up(self.down(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "reduction": self.reduction}
