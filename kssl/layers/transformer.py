"""Vision-transformer layers: patch embedding with fixed 2-D sine-cosine positions, and a
pre-norm transformer block. `kssl.encoders.vit` and `kssl.MAE` are built from them.

Examples:
    >>> import numpy as np
    >>> tokens = PatchEmbedding(patch_size=4, width=32)(np.zeros((2, 16, 16, 3), "float32"))
    >>> tokens.shape  # a 4 x 4 grid of patches
    TensorShape([2, 16, 32])
    >>> TransformerBlock(heads=2)(tokens).shape
    TensorShape([2, 16, 32])
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops


def sincos_positions(grid: int, width: int) -> np.ndarray:
    """`(grid * grid, width)` fixed 2-D sine-cosine position embeddings, rows in raster
    order: half the channels encode the row, half the column (He et al. 2022, MAE)."""
    if width % 4:
        raise ValueError(f"width must be a multiple of 4 for 2-D sine-cosine positions. Received: width={width}")
    quarter = width // 4
    frequencies = 1.0 / 10000 ** (np.arange(quarter, dtype=np.float64) / quarter)
    rows, columns = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")

    def encode(positions):
        angles = positions.reshape(-1)[:, None] * frequencies[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([encode(rows), encode(columns)], axis=1).astype("float32")


@keras.saving.register_keras_serializable(package="kssl")
class PatchEmbedding(keras.layers.Layer):
    """Images `(B, H, W, 3)` -> tokens `(B, (H/p) * (W/p), width)`: a linear map of each
    p x p patch (a stride-p convolution) plus fixed sine-cosine positions.

    Args:
        patch_size: p; it must divide the image's height and width.
        width: token dimension, a multiple of 4.
    """

    def __init__(self, patch_size, width, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.width = int(width)
        self.projection = layers.Conv2D(width, patch_size, strides=patch_size, name="projection")

    def build(self, input_shape):
        height, width = input_shape[1], input_shape[2]
        if height != width or height % self.patch_size:
            raise ValueError(
                f"PatchEmbedding needs square images whose side the patch size {self.patch_size} divides. "
                f"Received: input shape {tuple(input_shape)}"
            )
        self.grid = height // self.patch_size
        self.projection.build(input_shape)
        self.positions = sincos_positions(self.grid, self.width)

    def call(self, images):
        tokens = self.projection(images)
        tokens = ops.reshape(tokens, (-1, self.grid * self.grid, self.width))
        return tokens + ops.cast(self.positions, tokens.dtype)

    def compute_output_shape(self, input_shape):
        grid = input_shape[1] // self.patch_size
        return (input_shape[0], grid * grid, self.width)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "width": self.width}


@keras.saving.register_keras_serializable(package="kssl")
class TransformerBlock(keras.layers.Layer):
    """A pre-norm transformer block: `x + MHA(LN(x))`, then `x + MLP(LN(x))` (GELU).

    Args:
        heads: attention heads; they split the token width.
        mlp_ratio: hidden width of the MLP over the token width.
    """

    def __init__(self, heads, mlp_ratio=4.0, **kwargs):
        super().__init__(**kwargs)
        self.heads = int(heads)
        self.mlp_ratio = float(mlp_ratio)

    def build(self, input_shape):
        width = int(input_shape[-1])
        if width % self.heads:
            raise ValueError(f"{self.heads} heads do not divide the token width {width}.")
        self.norm_1 = layers.LayerNormalization(epsilon=1e-6, name="norm_1")
        self.attention = layers.MultiHeadAttention(self.heads, width // self.heads, name="attention")
        self.norm_2 = layers.LayerNormalization(epsilon=1e-6, name="norm_2")
        self.hidden = layers.Dense(int(width * self.mlp_ratio), activation="gelu", name="hidden")
        self.output_dense = layers.Dense(width, name="output")
        self.norm_1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm_2.build(input_shape)
        self.hidden.build(input_shape)
        self.output_dense.build(tuple(input_shape[:-1]) + (int(width * self.mlp_ratio),))

    def call(self, tokens, training=None):
        normed = self.norm_1(tokens)
        tokens = tokens + self.attention(normed, normed, training=training)
        return tokens + self.output_dense(self.hidden(self.norm_2(tokens)))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "heads": self.heads, "mlp_ratio": self.mlp_ratio}
