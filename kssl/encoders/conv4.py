"""Conv-4, the few-shot learning literature's standard small backbone, as a kssl encoder.

Four blocks of a 3x3 convolution, batch normalization, ReLU and a 2x2 max-pool (64
filters each at width 1), then global average pooling. It is the architecture few-shot
results on small images are usually reported with, and the fastest kssl encoder to train
and to trace: a quarter of a ResNet-10's layers. Layers are named by stage like kssl's
ResNets (`stage{n}_block1_1_conv`, ...), so stage-wise fine-tuning (`partial`, `gradual`,
discriminative rates, adapters) works on it.
"""

from __future__ import annotations

import keras
from keras import layers

from kssl.layers.batch_norm import FusedBatchNormalization


def conv4(
    width: float = 1.0, image_size: int = 32, sync_batch_norm: bool = True, name: str | None = None
) -> keras.Model:
    """Builds Conv-4: `(B, image_size, image_size, 3)` images in [0, 1] -> `(B, 64 * width)`.

    Args:
        width: width multiplier of the 64 filters of every block (at least 8 filters).
        image_size: side of the square input images (at least 8: every block halves it,
            down to 1 pixel).
        sync_batch_norm: compute batch-norm statistics over the global batch when
            training on several replicas, as kssl's ResNets do.
        name: the model's name; defaults to e.g. `conv4_w0.5`.

    Examples:
        >>> encoder = conv4(width=0.125, image_size=16)
        >>> encoder.output_shape, [layer.name for layer in encoder.layers[1:5]]
        ((None, 8), ['stage1_block1_1_conv', 'stage1_block1_1_bn', 'stage1_block1_1_relu', 'stage1_pool'])

    Reference:
        Vinyals et al. 2016, https://arxiv.org/abs/1606.04080 (section 4.1.1);
        Snell et al. 2017, https://arxiv.org/abs/1703.05175.
    """
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier. Received: width={width!r}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8 pixels. Received: image_size={image_size!r}")
    filters = max(8, int(round(64 * width)))
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for stage in range(1, 5):
        prefix = f"stage{stage}_block1_1"
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"{prefix}_conv")(x)  # fmt: skip
        x = FusedBatchNormalization(momentum=0.9, epsilon=1e-5, synchronized=sync_batch_norm, name=f"{prefix}_bn")(x)
        x = layers.ReLU(name=f"{prefix}_relu")(x)
        x = layers.MaxPooling2D(2, padding="same", name=f"stage{stage}_pool")(x)
    features = layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, features, name=name or f"conv4_w{width:g}")
