"""SimCLR view augmentation, applied to whole batches inside `tf.data`.

Every image and every view draws its own random parameters, and everything is
vectorised over the batch: one `tf.image.crop_and_resize` call crops the whole batch,
and flips, colour jitter, grayscale, blur and solarize are per-image factors or masks
broadcast over the batch. Randomness is stateless and keyed by a `(2,)` seed, so a seed
reproduces a batch exactly.

Recipe: Chen et al. 2020 (SimCLR), appendix A.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as tf.image.rgb_to_grayscale


@dataclasses.dataclass(frozen=True)
class ViewAugmentation:
    """The SimCLR random view transform, as a batched function of `(images, seed)`.

    Args:
        image_size: side of the square output views, in pixels.
        crop_area: range of the crop's area as a fraction of the image (SimCLR: 0.08-1).
        crop_ratio: range of the crop's aspect ratio (SimCLR: 3/4-4/3).
        flip: apply a horizontal flip with probability 0.5.
        jitter_strength: colour jitter strength s: brightness, contrast and saturation
            factors in [1 - 0.8s, 1 + 0.8s], hue shift in [-0.2s, 0.2s] of a turn.
        jitter_probability: probability that an image gets colour jitter (SimCLR: 0.8).
        grayscale_probability: probability of converting to grayscale (SimCLR: 0.2).
        blur_probability: probability of a Gaussian blur with sigma in [0.1, 2.0] and
            a kernel of 10% of the image side. `None` means SimCLR's choice: 0.5 for
            images of 64 px or more, off below (the paper leaves it out for CIFAR).
        solarize_probability: probability of solarizing (inverting pixels above 0.5);
            0 in SimCLR, 0.2 on one view in BYOL.

    Call it with a batch of images, `uint8` in [0, 255] or float in [0, 1], of shape
    `(B, H, W, 3)`, and a `(2,)` integer seed; it returns `float32` views in [0, 1] of
    shape `(B, image_size, image_size, 3)`.

    Example:
    >>> import numpy as np
    >>> augment = ViewAugmentation(image_size=16)
    >>> views = augment(np.zeros((4, 20, 20, 3), "uint8"), seed=[1, 2])
    >>> tuple(views.shape), str(views.dtype)
    ((4, 16, 16, 3), "<dtype: 'float32'>")

    Reference:
        Chen et al. 2020, https://arxiv.org/abs/2002.05709, appendix A.
    """

    image_size: int = 32
    crop_area: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter_strength: float = 0.5
    jitter_probability: float = 0.8
    grayscale_probability: float = 0.2
    blur_probability: float | None = None
    solarize_probability: float = 0.0

    def __post_init__(self):
        if int(self.image_size) < 2:
            raise ValueError(f"image_size must be at least 2 pixels. Received: image_size={self.image_size}")
        lo, hi = self.crop_area
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_area must satisfy 0 < low <= high <= 1. Received: crop_area={self.crop_area}")
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high. Received: crop_ratio={self.crop_ratio}")
        if self.jitter_strength < 0:
            raise ValueError(f"jitter_strength must be >= 0. Received: jitter_strength={self.jitter_strength}")
        for name in ("jitter_probability", "grayscale_probability", "solarize_probability"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1]. Received: {name}={value}")
        if self.blur_probability is not None and not 0 <= self.blur_probability <= 1:
            raise ValueError(f"blur_probability must be in [0, 1] or None. Received: {self.blur_probability}")

    @property
    def effective_blur_probability(self) -> float:
        if self.blur_probability is not None:
            return float(self.blur_probability)
        return 0.5 if self.image_size >= 64 else 0.0

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    def __call__(self, images, seed):
        images = tf.convert_to_tensor(images)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
        scale = 255.0 if images.dtype == tf.uint8 else 1.0
        views = _random_resized_crop(images, self.image_size, self.crop_area, self.crop_ratio, seeds[0])
        views = views / scale
        if self.flip:
            views = _where_per_image(_draw(seeds[1], views, 0.5), views[:, :, ::-1, :], views)
        if self.jitter_strength > 0 and self.jitter_probability > 0:
            jittered = _color_jitter(views, self.jitter_strength, seeds[2])
            views = _where_per_image(_draw(seeds[3], views, self.jitter_probability), jittered, views)
        if self.grayscale_probability > 0:
            gray = tf.repeat(_grayscale(views), 3, axis=-1)
            views = _where_per_image(_draw(seeds[4], views, self.grayscale_probability), gray, views)
        if self.effective_blur_probability > 0:
            blurred = _gaussian_blur(views, seeds[5])
            views = _where_per_image(_draw(seeds[6], views, self.effective_blur_probability), blurred, views)
        if self.solarize_probability > 0:
            solarized = tf.where(views < 0.5, views, 1.0 - views)
            views = _where_per_image(_draw(seeds[7], views, self.solarize_probability), solarized, views)
        return tf.clip_by_value(views, 0.0, 1.0)


def _batch_size(images):
    # The static size where it is known: ops then get fully defined shapes, which
    # grappler's cost model needs (with an unknown box count it logged a multi-kilobyte
    # "Error in PredictCost()" for every traced CropAndResize).
    return images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]


def _uniform(seed, images, low, high):
    """One float per image, uniform in [low, high)."""
    return tf.random.stateless_uniform([_batch_size(images)], seed, minval=low, maxval=high)


def _draw(seed, images, probability):
    """One boolean per image, True with `probability`."""
    return _uniform(seed, images, 0.0, 1.0) < probability


def _where_per_image(mask, a, b):
    return tf.where(mask[:, None, None, None], a, b)


def _per_image(values):
    return values[:, None, None, None]


def _random_resized_crop(images, size, area, ratio, seed):
    # Inception-style crop. torchvision retries up to 10 draws and falls back to a
    # centre crop; clipping the drawn side to the image keeps this branch-free and
    # vectorised, at the price of slightly more near-full-width crops for extreme ratios.
    area_seed, ratio_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    scale = _uniform(area_seed, images, area[0], area[1])
    log_ratio = _uniform(ratio_seed, images, math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    width = tf.minimum(tf.sqrt(scale * aspect), 1.0)
    height = tf.minimum(tf.sqrt(scale / aspect), 1.0)
    top = _uniform(y_seed, images, 0.0, 1.0) * (1.0 - height)
    left = _uniform(x_seed, images, 0.0, 1.0) * (1.0 - width)
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(_batch_size(images)), [size, size], method="bilinear")


def _grayscale(images):
    return tf.reduce_sum(images * tf.constant(_GRAY_WEIGHTS, images.dtype), axis=-1, keepdims=True)


def _color_jitter(images, strength, seed):
    # Fixed order brightness -> contrast -> saturation -> hue, as keras_cv's
    # RandomColorJitter; SimCLR shuffles the order per image, which would cost four
    # times the work in a vectorised pipeline for no reported accuracy gain.
    b_seed, c_seed, s_seed, h_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 4))
    amount = 0.8 * strength
    low, high = max(0.0, 1.0 - amount), 1.0 + amount
    # Brightness is multiplicative, as in SimCLR v2's implementation.
    images = tf.clip_by_value(images * _per_image(_uniform(b_seed, images, low, high)), 0.0, 1.0)
    mean = tf.reduce_mean(_grayscale(images), axis=[1, 2, 3], keepdims=True)
    images = tf.clip_by_value((images - mean) * _per_image(_uniform(c_seed, images, low, high)) + mean, 0.0, 1.0)
    gray = _grayscale(images)
    images = tf.clip_by_value((images - gray) * _per_image(_uniform(s_seed, images, low, high)) + gray, 0.0, 1.0)
    hue_shift = 0.2 * strength
    if hue_shift > 0:
        hsv = tf.image.rgb_to_hsv(images)
        hue = tf.math.floormod(hsv[..., 0] + _uniform(h_seed, images, -hue_shift, hue_shift)[:, None, None], 1.0)
        images = tf.image.hsv_to_rgb(tf.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1))
    return images


def _gaussian_blur(images, seed, sigma_range=(0.1, 2.0)):
    # Per-image kernels as one depthwise convolution: the batch is folded into the
    # channel axis, so every image is blurred with its own sigma in a single op.
    size = images.shape[1]
    radius = max(1, int(size * 0.1) // 2)
    sigma = _uniform(seed, images, *sigma_range)
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    kernel = tf.exp(-(offsets[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
    kernel /= tf.reduce_sum(kernel, axis=1, keepdims=True)  # (B, K)
    batch = _batch_size(images)
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    folded = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), [1, height, width, batch * 3])
    folded = tf.pad(folded, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    per_channel = tf.repeat(kernel, 3, axis=0)  # (B*3, K)
    vertical = tf.transpose(per_channel)[:, None, :, None]
    horizontal = tf.transpose(per_channel)[None, :, :, None]
    folded = tf.nn.depthwise_conv2d(folded, vertical, [1, 1, 1, 1], "VALID")
    folded = tf.nn.depthwise_conv2d(folded, horizontal, [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(folded, [height, width, batch, 3]), [2, 0, 1, 3])
