"""Multi-crop (Caron et al. 2020): two global crops and K small local ones, for any method.

The one policy for every method that takes `local_crops` (SimCLR, VICReg, BYOL, DINO):
the crops' sizes and areas, the encoder that takes the small crops, and which crops are
compared with which. Global crops cover 14-100% of the image and local crops 5-14%, at
96/224 of the training size: SwAV's multi-crop and DINO's ResNet-50 setting (kssl's
local crops go through convolutional encoders only; DINO's ViT setting, 40-100% and
5-40%, is for encoders kssl cannot feed small crops to). Without local crops a method
keeps its own two views.

Examples:
    >>> from kssl.data.augment import ViewAugmentation
    >>> views = with_local_crops([ViewAugmentation(96)] * 2, 96, local_crops=2)
    >>> [(view.image_size, view.crop_area) for view in views]
    [(96, (0.14, 1.0)), (96, (0.14, 1.0)), (41, (0.05, 0.14)), (41, (0.05, 0.14))]
    >>> symmetric_pairs(4), directed_pairs(3)
    ([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)], [(0, 1), (0, 2), (1, 0), (1, 2)])
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from kssl.data.augment import LARGE_IMAGE_SIZE

GLOBAL_CROPS = 2
LOCAL_SCALE = 96 / 224
GLOBAL_AREA = (0.14, 1.0)
LOCAL_AREA = (0.05, 0.14)
# The size-dependent default of methods whose `local_crops` option defaults to None
# (SimCLR): 4 local crops from 64 px, none below. At equal wall clock, 4 local crops gave
# +2.0 kNN and +2.2 linear points on the 96-px flowers and a wash on 32-px CIFAR-10, whose
# local crops are 14 px (BENCHMARKS.md, "Multi-crop and DINO at equal wall clock").
AUTO_LOCAL_CROPS = 4
AUTO_FROM_SIZE = LARGE_IMAGE_SIZE  # where blur is on


def local_size(image_size: int) -> int:
    """The side of a local crop for training at `image_size` (at least 4 px).

    Examples:
        >>> local_size(224), local_size(96), local_size(32)
        (96, 41, 14)
    """
    return max(4, int(round(image_size * LOCAL_SCALE)))


def check_local_crops(local_crops) -> int:
    """`local_crops` if it is a whole number >= 0, else a `ValueError` naming it."""
    if isinstance(local_crops, bool) or not isinstance(local_crops, int) or local_crops < 0:
        raise ValueError(f"local_crops must be a whole number >= 0. Received: local_crops={local_crops!r}")
    return local_crops


def resolve_local_crops(local_crops, image_size, encoder=None) -> int:
    """`local_crops` checked, or for None the size-dependent default: `AUTO_LOCAL_CROPS`
    from `AUTO_FROM_SIZE` px, 0 below, and 0 for an `encoder` that takes one image size
    only (a ViT). The one place the default is decided: the model's constructor, its
    views, `kssl.pretrain` and the command all call it.

    Examples:
        >>> resolve_local_crops(None, 96), resolve_local_crops(None, 32), resolve_local_crops(2, 32)
        (4, 0, 2)
    """
    if local_crops is not None:
        return check_local_crops(local_crops)
    if image_size is None or image_size < AUTO_FROM_SIZE:
        return 0
    if encoder is not None:
        try:
            any_size(encoder)
        except ValueError:
            return 0
    return AUTO_LOCAL_CROPS


def with_local_crops(global_views: list, image_size: int, local_crops: int) -> list:
    """A method's two global view transforms, and `local_crops` local ones after them.

    With local crops the global crops' area becomes `GLOBAL_AREA`; each local crop is the
    second global transform at `local_size(image_size)` over `LOCAL_AREA`, blurred with
    probability 0.5 where blur is on (64 px or more) and never solarized (DINO's local
    transform). Without local crops, `global_views` unchanged.
    """
    if not check_local_crops(local_crops):
        return list(global_views)
    large = image_size >= LARGE_IMAGE_SIZE
    first, second = (dataclasses.replace(view, crop_area=GLOBAL_AREA) for view in global_views)
    local = dataclasses.replace(
        second,
        image_size=local_size(image_size),
        crop_area=LOCAL_AREA,
        blur_probability=0.5 if large else 0.0,
        solarize_probability=0.0,
    )
    return [first, second] + [local] * local_crops


def any_size(encoder):
    """`encoder`'s layers (the same objects: the same weights) on an input of any image size,
    for crops smaller than the training size; a `ValueError` for an encoder that needs its
    own size (a ViT's position embeddings).

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import conv4
        >>> encoder = conv4(width=0.125, image_size=16)
        >>> any_size(encoder)(np.zeros((2, 7, 7, 3), "float32")).shape
        TensorShape([2, 8])
    """
    try:
        flexible = keras.models.clone_model(encoder, input_tensors=keras.Input((None, None, 3)),
                                            clone_function=lambda layer: layer)  # fmt: skip
        flexible(tf.zeros((1, 5, 5, 3)))
    except Exception as error:  # noqa: BLE001 - any failure means the encoder takes one size only
        raise ValueError(
            f"Local crops need an encoder that takes images of any size; {encoder.name!r} does not ({error}). "
            "Use local_crops=0, or a convolutional encoder (kssl's ResNets, Conv-4)."
        ) from None
    return flexible


def symmetric_pairs(views: int) -> list[tuple[int, int]]:
    """The pairs a symmetric two-view loss (NT-Xent, VICReg) is averaged over: the two
    global crops together, and each global crop with each local one (local crops are
    never compared with each other, as in SwAV and DINO)."""
    return [(g, v) for g in range(GLOBAL_CROPS) for v in range(g + 1, views)]


def directed_pairs(views: int) -> list[tuple[int, int]]:
    """`(target, prediction)` pairs of a teacher-student loss (BYOL, DINO): every global
    crop's target against every other crop's prediction."""
    return [(g, v) for g in range(GLOBAL_CROPS) for v in range(views) if v != g]


def split(tensor, batch, parts: int) -> list:
    """`tensor`'s rows as `parts` consecutive blocks of `batch` rows (one per view)."""
    return [tensor[i * batch : (i + 1) * batch] for i in range(parts)]
