"""Projection and prediction heads: one MLP layer, and each paper's head as a preset."""

from __future__ import annotations

import keras
from keras import layers

OUTPUT_NORMS = ("auto", "scale", "plain", None)


@keras.saving.register_keras_serializable(package="kssl")
class ProjectionHead(keras.layers.Layer):
    """An MLP head: `(Dense -> [BatchNorm] -> ReLU) x (depth - 1) -> Dense -> [BatchNorm]`.

    Every paper's projector and predictor is one of these (see the presets below).

    Args:
        hidden_dim: width of the hidden layers.
        output_dim: dimension of the output (SimCLR: 128).
        depth: number of Dense layers, >= 1 (SimCLR v1: 2, v2: 3).
        batch_norm: batch norm after every hidden Dense layer.
        sync_batch_norm: statistics over the global batch under a multi-replica strategy.
        output_norm: batch norm on the output: `"scale"` (with a scale, no offset, as
            SimCLR), `"plain"` (neither, as SimSiam's projector), `None` (none: the last
            Dense has a bias, as BYOL's and Barlow Twins' heads), or `"auto"`: `"scale"`
            with `batch_norm`, else None.

    Examples:
        >>> import numpy as np
        >>> head = ProjectionHead(hidden_dim=32, output_dim=8, depth=2)
        >>> head(np.ones((4, 16), "float32")).shape
        TensorShape([4, 8])

    Reference:
        Chen et al. 2020 (SimCLR), section 2.1 and appendix B.
    """

    def __init__(
        self,
        hidden_dim=2048,
        output_dim=128,
        depth=2,
        batch_norm=True,
        sync_batch_norm=True,
        output_norm="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("hidden_dim", hidden_dim), ("output_dim", output_dim), ("depth", depth)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if output_norm not in OUTPUT_NORMS:
            raise ValueError(f"output_norm must be one of {OUTPUT_NORMS}. Received: output_norm={output_norm!r}")
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.depth = depth
        self.batch_norm = batch_norm
        self.sync_batch_norm = sync_batch_norm
        self.output_norm = output_norm
        last_norm = ("scale" if batch_norm else None) if output_norm == "auto" else output_norm
        self.blocks = []
        for index in range(depth):
            last = index == depth - 1
            norm = last_norm if last else ("hidden" if batch_norm else None)
            block = [layers.Dense(output_dim if last else hidden_dim, use_bias=norm is None, name=f"dense_{index}")]
            if norm is not None:
                block.append(
                    layers.BatchNormalization(
                        momentum=0.9,
                        epsilon=1e-5,
                        center=norm == "hidden",
                        scale=norm in ("hidden", "scale"),
                        synchronized=sync_batch_norm,
                        name=f"bn_{index}",
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
            "output_norm": self.output_norm,
        }


# Each paper's heads, sized from the encoder's feature dimension D. The papers' widths
# are for a ResNet-50 (D = 2048); kssl keeps their shapes and ratios to D, capped, so the
# heads stay small next to the small encoders users train on a CPU.


def simclr_projector(feature_dim: int) -> ProjectionHead:
    """SimCLR: D -> D -> 128, batch norm with a scale on the output (Chen et al. 2020)."""
    return ProjectionHead(hidden_dim=feature_dim, output_dim=128, depth=2)


def byol_projector(feature_dim: int, name: str = "projector") -> ProjectionHead:
    """BYOL: D -> 2D (paper: 4096) -> 256, batch norm on the hidden layer only (Grill et al. 2020)."""
    return ProjectionHead(hidden_dim=min(4096, 2 * feature_dim), output_dim=256, depth=2, output_norm=None, name=name)


def byol_predictor(name: str = "predictor") -> ProjectionHead:
    """BYOL's predictor: 256 -> 1024 (paper: 4096) -> 256, the projector's shape."""
    return ProjectionHead(hidden_dim=1024, output_dim=256, depth=2, output_norm=None, name=name)


def simsiam_projector(feature_dim: int) -> ProjectionHead:
    """SimSiam: D -> D -> D, batch norm on every layer, the output's without affine (Chen & He 2021)."""
    return ProjectionHead(
        hidden_dim=feature_dim, output_dim=feature_dim, depth=3, output_norm="plain", name="projector"
    )


def simsiam_predictor(feature_dim: int) -> ProjectionHead:
    """SimSiam's bottleneck predictor: D -> D/4 -> D (paper: 2048 -> 512 -> 2048)."""
    return ProjectionHead(
        hidden_dim=max(8, feature_dim // 4), output_dim=feature_dim, depth=2, output_norm=None, name="predictor"
    )


def barlow_twins_projector(feature_dim: int, width: int | None = None) -> ProjectionHead:
    """Barlow Twins and VICReg: three layers of width 4D (paper: 8192), last without batch norm."""
    width = width or min(8192, 4 * feature_dim)
    return ProjectionHead(hidden_dim=width, output_dim=width, depth=3, output_norm=None, name="projector")


def moco_projector(feature_dim: int) -> ProjectionHead:
    """MoCo v2: D -> D (paper: 2048) -> 128, ReLU between, no batch norm (Chen et al. 2020b)."""
    return ProjectionHead(
        hidden_dim=min(2048, feature_dim), output_dim=128, depth=2, batch_norm=False, name="projector"
    )


@keras.saving.register_keras_serializable(package="kssl")
class Prototypes(keras.layers.Layer):
    """DINO's last layer: a weight-normalised linear map to K prototypes, without bias and
    with the norm fixed at 1 (`weight_norm` with `g = 1`, `norm_last_layer=True`): on
    L2-normalised inputs, each output is the cosine of the input and a prototype.

    Examples:
        >>> import numpy as np
        >>> layer = Prototypes(5)
        >>> out = layer(np.eye(4, dtype="float32"))
        >>> out.shape, bool(np.all(np.abs(out.numpy()) <= 1 + 1e-6))
        (TensorShape([4, 5]), True)
    """

    def __init__(self, count, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(count, int) or count < 2:
            raise ValueError(f"count must be an integer >= 2. Received: count={count!r}")
        self.count = count

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.count), initializer="glorot_uniform",
                                      name="kernel")  # fmt: skip

    def call(self, inputs):
        import tensorflow as tf

        kernel = tf.math.l2_normalize(tf.cast(self.kernel, inputs.dtype), axis=0)
        return tf.matmul(inputs, kernel)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.count,)

    def get_config(self):
        return {**super().get_config(), "count": self.count}


@keras.saving.register_keras_serializable(package="kssl")
class DINOHead(keras.layers.Layer):
    """DINO's projection head: an MLP (`hidden_dim`, then a `bottleneck_dim` output),
    L2 normalisation, and `Prototypes(prototypes)` (Caron et al. 2021, 3.1).
    The paper's MLP is 2048 wide with a 256 bottleneck and 65,536 prototypes for ImageNet;
    kssl's preset (`dino_head`) scales them to the encoder and to small data sets.
    `batch_norm` puts batch norm after each hidden layer (the reference code's
    `use_bn_in_head`; lightly's ResNet heads), never on the bottleneck.
    """

    def __init__(self, prototypes=1024, hidden_dim=2048, bottleneck_dim=256, depth=3, batch_norm=False, **kwargs):
        super().__init__(**kwargs)
        self.prototypes, self.hidden_dim = prototypes, hidden_dim
        self.bottleneck_dim, self.depth = bottleneck_dim, depth
        self.batch_norm = bool(batch_norm)
        self.mlp = ProjectionHead(hidden_dim=hidden_dim, output_dim=bottleneck_dim, depth=depth,
                                  batch_norm=self.batch_norm, output_norm=None, name="mlp")  # fmt: skip
        self.last = Prototypes(prototypes, name="prototypes")
        self.output_dim = prototypes

    def build(self, input_shape):
        if not self.mlp.built:
            self.mlp.build(input_shape)
        if not self.last.built:
            self.last.build((None, self.bottleneck_dim))

    def call(self, inputs, training=None):
        import tensorflow as tf

        x = self.mlp(inputs, training=training)
        return self.last(tf.math.l2_normalize(x, axis=-1))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.prototypes,)

    def get_config(self):
        return {**super().get_config(), "prototypes": self.prototypes, "hidden_dim": self.hidden_dim,
                "bottleneck_dim": self.bottleneck_dim, "depth": self.depth, "batch_norm": self.batch_norm}  # fmt: skip


def dino_head(feature_dim: int, prototypes: int = 1024, batch_norm: bool = False) -> DINOHead:
    """DINO: D -> 2D (paper: 2048) -> 2D -> 256 -> L2 -> K prototypes (paper: 65,536)."""
    return DINOHead(prototypes=prototypes, hidden_dim=min(2048, 2 * feature_dim), bottleneck_dim=256, depth=3,
                    batch_norm=batch_norm, name="projector")  # fmt: skip
