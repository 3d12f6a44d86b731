"""Masked image modelling: reconstruct the pixels of the patches a model did not see.

MAE (He et al. 2022) cuts images into p x p patches, hides most of them, and regresses
the hidden patches' pixels, each patch normalised by its own mean and variance
("norm_pix_loss", which the paper found to give better representations).
"""

from __future__ import annotations

import tensorflow as tf


def patchify(images, patch_size: int):
    """`(B, H, W, C)` -> `(B, (H/p) * (W/p), p * p * C)`: patches in raster order, each
    flattened row by row, channels last (MAE's `patchify`).

    Examples:
        >>> import numpy as np
        >>> patchify(np.arange(16, dtype="float32").reshape(1, 4, 4, 1), 2)[0, 1].numpy().tolist()
        [2.0, 3.0, 6.0, 7.0]
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    rows, columns, channels = shape[1] // patch_size, shape[2] // patch_size, images.shape[-1]
    x = tf.reshape(images, [shape[0], rows, patch_size, columns, patch_size, channels])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [shape[0], rows * columns, patch_size * patch_size * channels])


def masked_patch_mse(predictions, images, mask, patch_size: int, normalize_targets: bool = True):
    """MAE's loss per image: the mean squared error over the masked patches only.

    Args:
        predictions: `(B, P, p * p * C)` predicted pixels of every patch.
        images: `(B, H, W, C)` the original images.
        mask: `(B, P)`, 1 for the patches that were hidden (and are scored), 0 otherwise.
        patch_size: p.
        normalize_targets: normalise each target patch by its mean and standard deviation
            (with the unbiased variance and 1e-6, as MAE's official code).

    Returns:
        `(B,)` float32: for each image, the mean over its masked patches of the mean over
        the patch's values of the squared error. With equally many masked patches per
        image (MAE's random masking), their mean is the paper's loss.

    Reference:
        He et al. 2022, https://arxiv.org/abs/2111.06377, section 3 ("Reconstruction target").
    """
    target = patchify(tf.cast(images, tf.float32), patch_size)
    if normalize_targets:
        mean, variance = tf.nn.moments(target, axes=[-1], keepdims=True)
        count = tf.cast(tf.shape(target)[-1], tf.float32)
        variance = variance * count / (count - 1.0)
        target = (target - mean) / tf.sqrt(variance + 1e-6)
    per_patch = tf.reduce_mean(tf.square(tf.cast(predictions, tf.float32) - target), axis=-1)
    mask = tf.cast(mask, tf.float32)
    return tf.reduce_sum(per_patch * mask, axis=1) / tf.reduce_sum(mask, axis=1)
