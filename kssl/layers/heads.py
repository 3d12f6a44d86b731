"""Projection heads for contrastive pretraining."""

from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="kssl")
class ProjectionHead(keras.layers.Layer):
    """SimCLR's MLP projection head: `(Dense -> BatchNorm -> ReLU) x (depth - 1) -> Dense -> BatchNorm`.

    Args:
        hidden_dim: width of the hidden layers.
        output_dim: dimension of the projections the loss compares (SimCLR: 128).
        depth: number of Dense layers, >= 1 (SimCLR v1: 2, v2: 3).
        batch_norm: batch norm after every Dense layer, as SimCLR does; the last one
            has no bias or offset, so projections are centred per dimension.
        sync_batch_norm: statistics over the global batch under a multi-replica strategy.

    Example:
    >>> import numpy as np
    >>> head = ProjectionHead(hidden_dim=32, output_dim=8, depth=2)
    >>> head(np.ones((4, 16), "float32")).shape
    TensorShape([4, 8])

    Reference:
        Chen et al. 2020 (SimCLR), section 2.1 and appendix B.
    """

    def __init__(self, hidden_dim=2048, output_dim=128, depth=2, batch_norm=True, sync_batch_norm=True, **kwargs):
        super().__init__(**kwargs)
        for name, value in (("hidden_dim", hidden_dim), ("output_dim", output_dim), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.depth = depth
        self.batch_norm = batch_norm
        self.sync_batch_norm = sync_batch_norm
        self.blocks = []
        for index in range(depth):
            last = index == depth - 1
            block = [layers.Dense(output_dim if last else hidden_dim, use_bias=not batch_norm, name=f"dense_{index}")]
            if batch_norm:
                block.append(
                    layers.BatchNormalization(
                        momentum=0.9, epsilon=1e-5, center=not last, synchronized=sync_batch_norm, name=f"bn_{index}"
                    )
                )
            if not last:
                block.append(layers.ReLU(name=f"relu_{index}"))
            self.blocks.append(block)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for block in self.blocks:
            for layer in block:
                if not layer.built:
                    layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(layer, layers.BatchNormalization) else layer(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "output_dim": self.output_dim,
            "depth": self.depth,
            "batch_norm": self.batch_norm,
            "sync_batch_norm": self.sync_batch_norm,
        }
