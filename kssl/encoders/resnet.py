"""ResNet encoders for self-supervised pretraining, as Keras functional models.

The models use built-in Keras layers except for batch normalization, which is kssl's
`FusedBatchNormalization` (Keras' layer with TensorFlow's fused training kernel, 1.2-1.35x
faster on CPU); a saved encoder loads wherever `kssl` is importable, and a SavedModel
export needs only TensorFlow. Layer names start with `stage{n}_` for the residual stages
(1-4), which is what `Classifier(mode="partial")` uses to unfreeze the last stages.
"""

from __future__ import annotations

import keras
from keras import layers

from kssl.layers.batch_norm import FusedBatchNormalization

# (block type, blocks per stage) - He et al. 2016, table 1.
_ARCHITECTURES = {
    10: ("basic", (1, 1, 1, 1)),  # the smallest: one block per stage (a fast CPU or test encoder)
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
}
DEPTHS = tuple(_ARCHITECTURES)

# SimCLR's batch-norm decay (0.9) adapts faster than Keras' default 0.99, which
# matters for short pretraining runs.
_BN = dict(momentum=0.9, epsilon=1e-5)


def resnet(
    depth: int = 18,
    width: float = 1.0,
    image_size: int = 32,
    stem: str = "auto",
    sync_batch_norm: bool = True,
    name: str | None = None,
    stage_widths: tuple[int, int, int, int] | None = None,
) -> keras.Model:
    """Builds a ResNet encoder: `(B, image_size, image_size, 3)` images in [0, 1] -> `(B, D)`.

    Args:
        depth: 10, 18, 34 or 50 (10: one basic block per stage).
        width: width multiplier; stage widths are `64, 128, 256, 512` times `width`
            (bottleneck outputs four times that). 0.25 gives a fast CPU encoder.
        image_size: side of the square input images.
        stem: `"cifar"` (3x3 stride-1 convolution, no max-pool: for small images),
            `"imagenet"` (7x7 stride-2 convolution and a max-pool), or `"auto"`:
            `"cifar"` for images up to 64 px, `"imagenet"` above.
        sync_batch_norm: compute batch-norm statistics over the global batch when
            training on several replicas (as SimCLR does: per-replica statistics let
            the model cheat the contrastive task). No effect on one device.
        name: the model's name; defaults to e.g. `resnet18_w0.25`.
        stage_widths: the four stages' widths, overriding `width` (the stem gets the
            first). E.g. `(16, 32, 64, 256)` widens only the last stage of a
            quarter-width ResNet-18: twice the features, for 1.4x the training compute
            at 24 px (the last stage works on the smallest feature maps).

    Returns:
        A functional `keras.Model` ending in global average pooling, so the output
        has `D = 512 * width` features (`2048 * width` for ResNet-50; the last stage
        width, or four times it, with `stage_widths`).

    Examples:
        >>> encoder = resnet(18, width=0.125, image_size=16)
        >>> encoder.output_shape
        (None, 64)

    Reference:
        He et al. 2016, https://arxiv.org/abs/1512.03385; CIFAR stem as in
        Chen et al. 2020 (SimCLR), appendix B.9.
    """
    if depth not in _ARCHITECTURES:
        raise ValueError(f"depth must be one of {sorted(_ARCHITECTURES)}. Received: depth={depth!r}")
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier. Received: width={width!r}")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8 pixels. Received: image_size={image_size!r}")
    if stem == "auto":
        stem = "cifar" if image_size <= 64 else "imagenet"
    if stem not in ("cifar", "imagenet"):
        raise ValueError(f"stem must be 'cifar', 'imagenet' or 'auto'. Received: stem={stem!r}")
    block_type, blocks = _ARCHITECTURES[depth]
    base = max(8, int(round(64 * width)))
    if stage_widths is None:
        stage_widths = tuple(base * 2**stage for stage in range(4))
    elif not (
        isinstance(stage_widths, (tuple, list))
        and len(stage_widths) == 4
        and all(isinstance(w, int) and w > 0 for w in stage_widths)
    ):
        raise ValueError(f"stage_widths must be four positive integers. Received: stage_widths={stage_widths!r}")
    else:
        name = name or f"resnet{depth}_" + "-".join(map(str, stage_widths))

    bn = dict(_BN, synchronized=sync_batch_norm)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    if stem == "cifar":
        x = _conv_bn(inputs, stage_widths[0], 3, 1, "stem", bn)
    else:
        x = _conv_bn(inputs, stage_widths[0], 7, 2, "stem", bn)
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (count, filters) in enumerate(zip(blocks, stage_widths), start=1):
        for index in range(count):
            strides = 2 if stage > 1 and index == 0 else 1
            block = _basic_block if block_type == "basic" else _bottleneck_block
            x = block(x, filters, strides, f"stage{stage}_block{index + 1}", bn)
    features = layers.GlobalAveragePooling2D(name="features")(x)
    return keras.Model(inputs, features, name=name or f"resnet{depth}_w{width:g}")


def _conv_bn(x, filters, kernel, strides, name, bn, relu=True, zero_gamma=False):
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=f"{name}_conv",
    )(x)
    # Zero-initialised last gamma makes each residual block start as the identity
    # (Goyal et al. 2017), which speeds up the first epochs.
    x = FusedBatchNormalization(gamma_initializer="zeros" if zero_gamma else "ones", name=f"{name}_bn", **bn)(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _shortcut(x, filters, strides, name, bn):
    if strides == 1 and x.shape[-1] == filters:
        return x
    return _conv_bn(x, filters, 1, strides, f"{name}_shortcut", bn, relu=False)


def _basic_block(x, filters, strides, name, bn):
    shortcut = _shortcut(x, filters, strides, name, bn)
    y = _conv_bn(x, filters, 3, strides, f"{name}_1", bn)
    y = _conv_bn(y, filters, 3, 1, f"{name}_2", bn, relu=False, zero_gamma=True)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))


def _bottleneck_block(x, filters, strides, name, bn):
    shortcut = _shortcut(x, 4 * filters, strides, name, bn)
    y = _conv_bn(x, filters, 1, 1, f"{name}_1", bn)
    y = _conv_bn(y, filters, 3, strides, f"{name}_2", bn)
    y = _conv_bn(y, 4 * filters, 1, 1, f"{name}_3", bn, relu=False, zero_gamma=True)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, y]))
