"""Which stage of an encoder each layer belongs to, read from the layer names.

Recognised names: kssl's ResNets and ViTs (`stage{n}_...`), and the `keras.applications`
families: ResNet/ResNetV2 (`conv{n}_...`), EfficientNet/V2 (`block{n}{a-z}_...`),
ConvNeXt (`..._stage_{n}_...`) and MobileNetV3 (`expanded_conv_{n}_...`, one block a
stage). Layers outside every stage (the stem, a final norm) have stage `None`.

Examples:
    >>> [stage_of(name) for name in ("stem_conv", "stage2_block1_conv", "conv4_block6_out",
    ...                              "block6a_expand_conv", "convnext_tiny_stage_1_block_0_conv")]
    [None, 2, 4, 6, 1]
"""

from __future__ import annotations

import re

_STAGE_PATTERNS = (
    re.compile(r"^(?:stage|conv)(\d+)_"),
    re.compile(r"^block(\d+)[a-z]_"),
    re.compile(r"_stage_(\d+)_"),
    re.compile(r"^expanded_conv_(\d+)_"),
)


def stage_of(layer_name: str) -> int | None:
    """The stage number in `layer_name`, or None for a layer outside the stages."""
    for pattern in _STAGE_PATTERNS:
        if match := pattern.search(layer_name):
            return int(match.group(1))
    return None


def encoder_stages(encoder) -> list[int]:
    """The stage numbers found in the encoder's layer names, in order."""
    return sorted({stage for layer in encoder.layers if (stage := stage_of(layer.name)) is not None})


def stage_end_layers(encoder) -> dict[int, str]:
    """Stage number -> name of its last layer in the encoder's (topological) layer order."""
    ends = {}
    for layer in encoder.layers:
        stage = stage_of(layer.name)
        if stage is not None:
            ends[stage] = layer.name
    return ends


def require_stages(encoder, mode: str) -> list[int]:
    """`encoder_stages(encoder)`, or a `ValueError` saying the mode needs named stages."""
    stages = encoder_stages(encoder)
    if not stages:
        raise ValueError(
            f"mode={mode!r} needs an encoder whose layers are named by stage (stage1_..., conv2_..., block3a_...); "
            f"{encoder.name!r} has none. Use mode='linear', 'full' or 'lora', or set layer.trainable yourself."
        )
    return stages


def set_unfrozen_stages(encoder, stages) -> None:
    """Trains exactly the layers of `stages` (a collection of stage numbers, or "all").

    Layers outside every stage train only with "all". Frozen batch-norm layers run in
    inference mode (Keras does so for non-trainable BatchNormalization).
    """
    encoder.trainable = True
    for layer in encoder.layers:
        stage = stage_of(layer.name)
        layer.trainable = stages == "all" or (stage is not None and stage in stages)
