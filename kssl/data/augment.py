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

import numpy as np
import tensorflow as tf

# Images this large or larger are photos: blur is on (SimCLR leaves it out for CIFAR's
# 32 px), and so are BYOL's asymmetric views and SimCLR's default local crops.
LARGE_IMAGE_SIZE = 64
_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601, as tf.image.rgb_to_grayscale
# RGB to YIQ (NTSC): Y is the luma above; the chroma plane (I, Q) holds the hue as an angle.
_RGB_TO_YIQ = np.array([_GRAY_WEIGHTS, (0.596, -0.274, -0.322), (0.211, -0.523, 0.312)])


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

    Examples:
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
        return 0.5 if self.image_size >= LARGE_IMAGE_SIZE else 0.0

    def get_config(self) -> dict:
        return dataclasses.asdict(self)

    def draw(self, seed, count) -> dict:
        """Every random parameter of `count` views from a `(2,)` seed, one value per view.

        A view's parameters depend only on the seed and its row, so a slice of the rows
        gives the same views wherever it is computed (each worker of a multi-worker run
        draws the whole global batch, which is a few floats per image, and transforms
        only its own rows).
        """
        seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=8)
        area_seed, ratio_seed, y_seed, x_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[0], 4))
        b_seed, c_seed, s_seed, h_seed = tf.unstack(tf.random.experimental.stateless_split(seeds[2], 4))
        amount = 0.8 * self.jitter_strength
        low, high = max(0.0, 1.0 - amount), 1.0 + amount
        hue = 0.2 * self.jitter_strength
        jitter = self.jitter_strength > 0 and self.jitter_probability > 0
        return {
            "crop_area": _uniform(area_seed, count, *self.crop_area),
            "crop_log_ratio": _uniform(ratio_seed, count, math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1])),
            "crop_y": _uniform(y_seed, count, 0.0, 1.0),
            "crop_x": _uniform(x_seed, count, 0.0, 1.0),
            "flip": _draw(seeds[1], count, 0.5 if self.flip else 0.0),
            "brightness": _uniform(b_seed, count, low, high),
            "contrast": _uniform(c_seed, count, low, high),
            "saturation": _uniform(s_seed, count, low, high),
            "hue": _uniform(h_seed, count, -hue, hue),
            "jitter": _draw(seeds[3], count, self.jitter_probability if jitter else 0.0),
            "grayscale": _draw(seeds[4], count, self.grayscale_probability),
            "blur_sigma": _uniform(seeds[5], count, 0.1, 2.0),
            "blur": _draw(seeds[6], count, self.effective_blur_probability),
            "solarize": _draw(seeds[7], count, self.solarize_probability),
        }

    def windows(self, parameters, heights, widths):
        """The crop windows of drawn views in each image's pixels (float32, `(N, 4)`).

        A window is `(top, left, height, width)` of the span its samples cover: the
        view's corner pixels sit at `(top, left)` and `(top + height, left + width)`
        (`crop_windows`). Inception-style random resized crops measured in each
        image's own pixels, so a crop keeps its drawn aspect ratio whatever the image's
        shape. torchvision retries up to 10 draws and falls back to a centre crop;
        clipping the drawn side to the image keeps this branch-free and vectorised, at
        the price of slightly more full-width crops for extreme ratios.
        """
        heights = tf.cast(heights, tf.float32)
        widths = tf.cast(widths, tf.float32)
        aspect = tf.exp(parameters["crop_log_ratio"])
        height = tf.minimum(tf.sqrt(parameters["crop_area"] / aspect * widths / heights), 1.0)
        width = tf.minimum(tf.sqrt(parameters["crop_area"] * aspect * heights / widths), 1.0)
        top = parameters["crop_y"] * (1.0 - height)
        left = parameters["crop_x"] * (1.0 - width)
        spans = tf.stack([heights - 1.0, widths - 1.0, heights - 1.0, widths - 1.0], axis=1)
        return tf.stack([top, left, height, width], axis=1) * spans

    def flips(self, parameters):
        """Which views are mirrored (`(N,)` bool), or None: `crop_windows` flips them as it crops."""
        return parameters["flip"] if self.flip else None

    def finishing_parameters(self, parameters) -> dict:
        """The drawn parameters that `finish` uses: those of the branches this transform has on.

        With the crops, they are all a device needs to finish the views
        (`finish_views`), and which of them are present says which branches run.
        """
        on = {
            "jitter": self.jitter_strength > 0 and self.jitter_probability > 0,
            "grayscale": self.grayscale_probability > 0,
            "blur": self.effective_blur_probability > 0,
            "solarize": self.solarize_probability > 0,
        }
        return {name: parameters[name] for branch, names in _BRANCHES.items() if on[branch] for name in names}

    def finish(self, crops, parameters, compute_all_branches: bool = False):
        """Colour jitter, grayscale, blur and solarize of `(N, S, S, 3)` crops (uint8, or
        float in [0, 1]); `finish_views` of this transform's branches. (The flip is the
        crop's: `crop_windows`.)"""
        return finish_views(crops, self.finishing_parameters(parameters), compute_all_branches)

    def __call__(self, images, seed, shapes=None):
        """Views of a batch of images (`shapes`: each image's `(height, width)` in a padded batch)."""
        images = tf.convert_to_tensor(images)
        parameters = self.draw(seed, _batch_size(images))
        heights, widths = _image_shapes(images, shapes)
        windows = self.windows(parameters, heights, widths)
        crops = crop_windows(images, windows, self.image_size, self.flips(parameters))
        return self.finish(as_uint8(crops) if images.dtype == tf.uint8 else crops, parameters)


# The parameters of each branch of `finish_views`, in the order they apply.
_BRANCHES = {
    "jitter": ("jitter", "brightness", "contrast", "saturation", "hue"),
    "grayscale": ("grayscale",),
    "blur": ("blur", "blur_sigma"),
    "solarize": ("solarize",),
}


def as_uint8(crops):
    """Crops of uint8 images (float, in [0, 255]) rounded back to uint8.

    Every pipeline rounds its crops so: views stay uint8 until they are finished (a
    quarter of float32's memory in prefetch buffers, and of the bytes sent to an
    accelerator), and the host and device paths finish the very same crops.
    """
    # Halves round up, with a margin: centred crops sample midway between pixels, so
    # many values are exact halves, which float round-off on two paths would send
    # either way (0.6% of evaluation pixels differed by a level with `tf.round`).
    return tf.cast(tf.clip_by_value(tf.floor(crops + 0.501), 0.0, 255.0), tf.uint8)


def finish_views(crops, parameters, compute_all_branches: bool = False):
    """Colour jitter, grayscale, blur and solarize of `(N, S, S, 3)` crops (flipped as cropped).

    `crops` are uint8 (divided by 255 here) or float in [0, 1]; `parameters` are the
    drawn ones of `ViewAugmentation.finishing_parameters`: the branches whose
    parameters are present run. Colour jitter and grayscale are one affine map per
    image (`colour_matrices`: the identity for an image that takes neither); blur
    runs only for the images that take it (gathered, blurred and scattered back: at
    p=0.5 it skips half the batch).
    `compute_all_branches=True` blurs every image and selects with `tf.where`: the
    same views at a higher cost, with static shapes, as XLA needs (`tf.where(mask)`
    has a data-dependent shape).

    Examples:
        >>> augment = ViewAugmentation(image_size=8)
        >>> parameters = augment.finishing_parameters(augment.draw([0, 1], 2))
        >>> sorted(parameters)[:3], finish_views(tf.zeros([2, 8, 8, 3], tf.uint8), parameters).dtype
        (['brightness', 'contrast', 'grayscale'], tf.float32)
    """
    scale = 1 / 255 if crops.dtype == tf.uint8 else 1.0
    views = tf.cast(crops, tf.float32)
    if "jitter" in parameters or "grayscale" in parameters:
        views = apply_colour(views, parameters, scale)
    elif scale != 1.0:
        views = views * scale
    if "blur" in parameters:
        apply = _where_all if compute_all_branches else _gather_scatter
        views = apply(parameters["blur"], views, parameters, lambda v, p: _gaussian_blur(v, p["blur_sigma"]))
    if "solarize" in parameters:
        solarized = tf.where(views < 0.5, views, 1.0 - views)
        views = _where_per_image(parameters["solarize"], solarized, views)
    return views  # in [0, 1]: every step keeps the range (blur averages, colour clips)


def _image_shapes(images, shapes):
    if shapes is not None:
        shapes = tf.cast(shapes, tf.int32)
        return shapes[:, 0], shapes[:, 1]
    count = _batch_size(images)
    return tf.fill([count], tf.shape(images)[1]), tf.fill([count], tf.shape(images)[2])


def crop_windows(images, windows, size, flips=None):
    """Bilinear crops of `windows` (`(N, 4)` top, left, height, width) resized to `size` x `size`,
    mirrored left to right where `flips` (`(N,)` bool, optional) is True.

    `images` is a batch whose image `i` holds its picture in its top-left corner (the
    rest may be padding), or a single image that every window is cut from. A window
    is in pixels: the crop's corner samples sit on `(top, left)` and `(top + height,
    left + width)`, as `tf.image.crop_and_resize` places them, so cutting a region out
    first and cropping the window shifted by the region's corner gives the same view
    (the streaming path decodes only that region). The result is float32 in the
    images' value range.
    """
    images = tf.convert_to_tensor(images)
    windows = tf.cast(windows, tf.float32)
    canvas_height = tf.cast(tf.maximum(tf.shape(images)[1] - 1, 1), tf.float32)
    canvas_width = tf.cast(tf.maximum(tf.shape(images)[2] - 1, 1), tf.float32)
    top, left, height, width = tf.unstack(windows, axis=1)
    x1, x2 = left / canvas_width, (left + width) / canvas_width
    if flips is not None:  # a box from right to left samples the mirrored crop: a flip at no cost
        x1, x2 = tf.where(flips, x2, x1), tf.where(flips, x1, x2)
    boxes = tf.stack([top / canvas_height, x1, (top + height) / canvas_height, x2], axis=1)
    count = tf.shape(windows)[0] if windows.shape[0] is None else windows.shape[0]
    box_indices = tf.range(count) if images.shape[0] is None or images.shape[0] != 1 else tf.zeros([count], tf.int32)
    return tf.image.crop_and_resize(images, boxes, box_indices, [size, size], method="bilinear")


def _batch_size(images):
    # The static size where it is known: ops then get fully defined shapes, which
    # grappler's cost model needs (with an unknown box count it logged a multi-kilobyte
    # "Error in PredictCost()" for every traced CropAndResize).
    return images.shape[0] if images.shape[0] is not None else tf.shape(images)[0]


def _uniform(seed, count, low, high):
    """One float per image, uniform in [low, high)."""
    return tf.random.stateless_uniform([count], seed, minval=low, maxval=high)


def _draw(seed, count, probability):
    """One boolean per image, True with `probability`."""
    return _uniform(seed, count, 0.0, 1.0) < probability


def _where_per_image(mask, a, b):
    return tf.where(mask[:, None, None, None], a, b)


def _where_all(mask, views, parameters, transform):
    """`transform` of every image, kept where `mask` is True."""
    return _where_per_image(mask, transform(views, parameters), views)


def _gather_scatter(mask, views, parameters, transform):
    """`transform` of only the images where `mask` is True, scattered back into `views`."""
    chosen = tf.where(mask)  # (K, 1) indices
    subset = tf.gather_nd(views, chosen)
    chosen_parameters = {name: tf.gather_nd(value, chosen) for name, value in parameters.items()}
    return tf.tensor_scatter_nd_update(views, chosen, transform(subset, chosen_parameters))


def _grayscale(images):
    return tf.reduce_sum(images * tf.constant(_GRAY_WEIGHTS, images.dtype), axis=-1, keepdims=True)


def apply_colour(views, parameters, scale=1.0):
    """Colour jitter and grayscale of `(N, S, S, 3)` float views (`colour_matrices`), clipped
    to [0, 1]; `scale` (1/255 for uint8 values) rides in the map, one pass fewer."""
    # Per image and elementwise, so a row's views do not depend on the batch it is computed
    # in (a tensordot here is one matmul over the batch's pixels, whose rounding does:
    # two workers then trained to weights 7e-4 apart from one process's).
    mean_luma = tf.reduce_mean(_grayscale(views), axis=[1, 2, 3]) * scale
    matrices, offsets = colour_matrices(parameters, mean_luma)
    views = tf.einsum("bhwc,bdc->bhwd", views, matrices * scale) + offsets[:, None, None, None]
    return tf.clip_by_value(views, 0.0, 1.0)


def colour_matrices(parameters, mean_luma):
    """Colour jitter and grayscale of each image as one affine map of its pixels.

    Returns `(matrices, offsets)`: `(N, 3, 3)` and `(N,)`, such that an image's
    transformed pixel is `matrix @ rgb + offset` (before the final clip to [0, 1]);
    `mean_luma` is each image's mean luma (in [0, 1]), which contrast blends with.
    Jitter (brightness b, contrast c, saturation s, hue h, in SimCLR's order) is linear
    in the pixels: brightness scales them, contrast blends them with their mean luma
    (b times the original's), saturation with each pixel's luma, and the hue turns
    the chroma plane of YIQ by -h of a turn (HSV's hue grows red -> yellow -> green,
    YIQ's angle the other way). Grayscale, after jitter, projects onto the luma.
    So `matrix = G @ (c b H S)` and `offset = (1 - c) b mean_luma`, where a
    gray pixel stays gray under S, H and G.

    This is NVIDIA DALI's `ColorTwist` (which solo-learn's DALI loaders use for the same
    methods) rather than torchvision's `ColorJitter`: the hue turns in YIQ instead of a
    round trip through HSV, and values are clipped once at the end instead of after
    every step. It costs one 3 x 3 product per pixel instead of the HSV round trip's
    ~40 operations (`benchmarks/augment_speed.py --colour`; BENCHMARKS.md).
    """
    count = _batch_size(mean_luma)
    identity = tf.eye(3, batch_shape=[count])
    luma = tf.constant(_GRAY_WEIGHTS, tf.float32)
    to_luma = tf.ones([3, 1]) * luma[None, :]  # each channel becomes the luma: 1 w^T
    matrices, offsets = identity, tf.zeros([count])
    if "jitter" in parameters:
        brightness, contrast = parameters["brightness"], parameters["contrast"]
        saturation = parameters["saturation"][:, None, None]
        saturate = saturation * identity + (1.0 - saturation) * to_luma
        angle = -2.0 * math.pi * parameters["hue"]
        cos, sin, zero, one = tf.cos(angle), tf.sin(angle), tf.zeros([count]), tf.ones([count])
        rotation = tf.stack([one, zero, zero, zero, cos, -sin, zero, sin, cos], axis=1)
        rotation = tf.reshape(rotation, [count, 3, 3])
        yiq = tf.constant(_RGB_TO_YIQ, tf.float32)
        hue = tf.linalg.inv(yiq)[None] @ rotation @ yiq[None]
        jittered = (contrast * brightness)[:, None, None] * (hue @ saturate)
        chosen = parameters["jitter"]
        matrices = tf.where(chosen[:, None, None], jittered, matrices)
        offsets = tf.where(chosen, (1.0 - contrast) * brightness * mean_luma, offsets)
    if "grayscale" in parameters:
        matrices = tf.where(parameters["grayscale"][:, None, None], to_luma[None] @ matrices, matrices)
    return matrices, offsets


def _gaussian_blur(images, sigma):
    # Per-image kernels as one depthwise convolution: the batch is folded into the
    # channel axis, so every image is blurred with its own sigma in a single op.
    size = images.shape[1]
    radius = max(1, int(size * 0.1) // 2)
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    sigma = tf.cast(sigma, tf.float32)
    kernel = tf.exp(-(offsets[None, :] ** 2) / (2.0 * sigma[:, None] ** 2))
    kernel = tf.cast(kernel / tf.reduce_sum(kernel, axis=1, keepdims=True), images.dtype)  # (B, K)
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
