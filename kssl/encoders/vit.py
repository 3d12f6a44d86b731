"""Vision-transformer encoders (Dosovitskiy et al. 2021), as Keras functional models.

A kssl ViT maps `(B, S, S, 3)` images in [0, 1] to `(B, D)` features (the mean of the
final tokens), like every kssl encoder, so kNN, the linear probe, `Classifier` and the
SavedModel export take it as they take a ResNet. Its blocks are named `stage{n}_block`,
so `Classifier(mode="partial", trainable_stages=k)` unfreezes the last k blocks. `kssl.MAE`
runs its layers on the visible patches only.
"""

from __future__ import annotations

import keras
from keras import layers

from kssl.errors import InputError
from kssl.layers.transformer import PatchEmbedding, TransformerBlock

# ViT-Base's width: `width=0.25` gives ViT-Tiny's 192 (Touvron et al. 2021).
_BASE_WIDTH = 768


def default_patch_size(image_size: int) -> int:
    """The divisor of `image_size` nearest `image_size / 8`: an 8 x 8 grid of patches where
    one tiles the image (4 px at 32 px, 2 px at 16, 12 px at 96), else the closest grid
    (4 px, 7 x 7, at 28 px).

    Examples:
        >>> [default_patch_size(size) for size in (16, 28, 32, 96, 224)]
        [2, 4, 4, 12, 28]
    """
    image_size = int(image_size)
    divisors = [p for p in range(1, image_size + 1) if image_size % p == 0]
    return min(divisors, key=lambda p: (abs(p - image_size / 8), p))


def vit(
    depth: int = 6,
    width: float = 0.25,
    image_size: int = 32,
    patch_size: int | None = None,
    heads: int | None = None,
    mlp_ratio: float = 4.0,
    name: str | None = None,
) -> keras.Model:
    """Builds a ViT encoder: `(B, image_size, image_size, 3)` images in [0, 1] -> `(B, D)`.

    Args:
        depth: number of transformer blocks (ViT-Tiny: 12; 6 keeps a CPU run short).
        width: token width as a multiple of ViT-Base's 768 (0.25: ViT-Tiny's 192),
            rounded to a multiple of 4 x heads.
        image_size: side of the square input images.
        patch_size: side of the square patches; it must divide `image_size`. Default
            `default_patch_size(image_size)`: an 8 x 8 grid of 64 tokens where it tiles.
        heads: attention heads (default: one per 64 channels, at least 1).
        mlp_ratio: hidden width of each block's MLP over the token width.
        name: the model's name; defaults to e.g. `vit6_w0.25_p4`.

    Returns:
        A functional `keras.Model` with `D = width * 768` features: patch embedding with
        fixed sine-cosine positions, `depth` pre-norm blocks, a final layer norm and the
        mean over tokens.

    Examples:
        >>> encoder = vit(depth=2, width=1 / 12, image_size=16)
        >>> encoder.output_shape, encoder.get_layer("patch_embedding").patch_size
        ((None, 64), 2)

    Reference:
        Dosovitskiy et al. 2021, https://arxiv.org/abs/2010.11929; He et al. 2022 (MAE).
    """
    image_size = int(image_size)
    patch_size = default_patch_size(image_size) if patch_size is None else int(patch_size)
    if patch_size < 1 or image_size % patch_size:
        divisors = [p for p in range(2, image_size // 2 + 1) if image_size % p == 0]
        raise InputError(
            f"The ViT patch size {patch_size} does not divide the image size {image_size}: patches must tile "
            f"the image. Use a patch size that divides {image_size} (one of {divisors}) or another image size."
        )
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive integer. Received: depth={depth!r}")
    if not width > 0:
        raise ValueError(f"width must be a positive multiplier. Received: width={width!r}")
    dim = width * _BASE_WIDTH
    heads = heads or max(1, round(dim / 64))
    dim = max(4 * heads, int(round(dim / (4 * heads))) * 4 * heads)
    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = PatchEmbedding(patch_size, dim, name="patch_embedding")(inputs)
    for index in range(depth):
        x = TransformerBlock(heads, mlp_ratio, name=f"stage{index + 1}_block")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    outputs = layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, outputs, name=name or f"vit{depth}_w{width:g}_p{patch_size}")
