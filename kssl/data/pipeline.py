"""tf.data pipelines over an in-memory `ImageSet`.

Both builders shuffle *indices* and gather whole batches from the decoded image array,
instead of passing decoded images one by one through a `shuffle` buffer: that buffer
would hold up to the whole dataset and be refilled whenever an iterator starts, and
per-element work costs far more than one `tf.gather` per batch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kssl.data.augment import ViewAugmentation
from kssl.data.sources import DataError, ImageSet


def _check_batch(image_set: ImageSet, batch_size: int, drop_remainder: bool):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if drop_remainder and len(image_set) < batch_size:
        raise DataError(
            f"The dataset has {len(image_set)} images, fewer than one batch of {batch_size}: "
            f"lower batch_size to at most {len(image_set)} or add images."
        )


def _shuffled_index_batches(size, batch_size, seed, repeat, shuffle, drop_remainder):
    indices = tf.data.Dataset.range(size)
    if shuffle:
        indices = indices.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        indices = indices.repeat()
    return indices.batch(batch_size, drop_remainder=drop_remainder)


def view_pairs(
    image_set: ImageSet,
    batch_size: int = 256,
    augmentation: ViewAugmentation | tuple | None = None,
    seed: int = 0,
    with_labels: bool = False,
    repeat: bool = True,
    shuffle: bool = True,
    start_step: int = 0,
) -> tf.data.Dataset:
    """Batches of two augmented views of each image, for a pretraining model's `fit`.

    Args:
        image_set: the images (labels are ignored unless `with_labels`).
        batch_size: images per batch (each gives two views). Incomplete batches are
            dropped, since NT-Xent's negatives depend on the batch.
        augmentation: the view transform; default `ViewAugmentation(image_size)`. A
            pair `(first, second)` transforms the two views differently (BYOL's
            asymmetric views).
        seed: shuffling and augmentation seed.
        with_labels: yield `((views_1, views_2), labels)` for the model's online probe.
        repeat: repeat forever (use `steps_per_epoch` in `fit`; one long epoch avoids
            the cost of epoch boundaries, see `kssl.training`).
        shuffle: reshuffle every pass.
        start_step: skip this many batches (cheaply: before any image is touched), to
            resume an interrupted run on exactly the batches it had not seen.

    Returns:
        A `tf.data.Dataset` of `(views_1, views_2)` float32 batches in [0, 1].

    Example:
    >>> from kssl.data.sources import load_digits
    >>> pairs = view_pairs(load_digits(image_size=16), batch_size=8)
    >>> [tuple(v.shape) for v in next(iter(pairs))]
    [(8, 16, 16, 3), (8, 16, 16, 3)]
    """
    _check_batch(image_set, batch_size, drop_remainder=True)
    if with_labels and image_set.labels is None:
        raise DataError("with_labels=True needs a labeled image set.")
    augmentation = augmentation or ViewAugmentation(image_set.image_size)
    first, second = augmentation if isinstance(augmentation, (tuple, list)) else (augmentation, augmentation)
    images = tf.constant(image_set.images)
    labels = tf.constant(image_set.labels if image_set.labels is not None else np.zeros(len(image_set), np.int64))

    def make_views(step, index_batch):
        batch = tf.gather(images, index_batch)
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(seed, tf.int64), step]), 2)
        views = (first(batch, seeds[0]), second(batch, seeds[1]))
        return (views, tf.gather(labels, index_batch)) if with_labels else views

    batches = _shuffled_index_batches(len(image_set), batch_size, seed, repeat, shuffle, drop_remainder=True)
    return (
        batches.enumerate()
        .skip(start_step)
        .map(make_views, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def labeled_batches(
    image_set: ImageSet,
    batch_size: int = 256,
    training: bool = False,
    augmentation: ViewAugmentation | None = None,
    seed: int = 0,
    repeat: bool = False,
    start_step: int = 0,
) -> tf.data.Dataset:
    """Batches of `(images, labels)` for `Classifier.fit`/`evaluate`, images float32 in [0, 1].

    With `training=True` the batches are shuffled and lightly augmented (random
    resized crop of 25-100% of the area and horizontal flip, unless `augmentation`
    is given); otherwise they come in order, unaugmented, with the last partial batch.
    `start_step` skips batches, as in `view_pairs`.

    Example:
    >>> from kssl.data.sources import load_digits
    >>> images, labels = next(iter(labeled_batches(load_digits(image_size=16, split="test"), 32)))
    >>> images.shape, labels.shape
    (TensorShape([32, 16, 16, 3]), TensorShape([32]))
    """
    if image_set.labels is None:
        raise DataError(f"{image_set.source or 'The image set'} has no labels; a classifier needs labeled images.")
    _check_batch(image_set, batch_size, drop_remainder=False)
    images = tf.constant(image_set.images)
    labels = tf.constant(image_set.labels)
    if training and augmentation is None:
        augmentation = ViewAugmentation(
            image_set.image_size,
            crop_area=(0.25, 1.0),
            jitter_strength=0.0,
            grayscale_probability=0.0,
            blur_probability=0.0,
        )

    def gather(step, index_batch):
        batch = tf.gather(images, index_batch)
        if training:
            batch = augmentation(batch, tf.stack([tf.constant(seed, tf.int64), step]))
        else:
            batch = tf.cast(batch, tf.float32) / 255.0
        return batch, tf.gather(labels, index_batch)

    batches = _shuffled_index_batches(len(image_set), batch_size, seed, repeat, training, drop_remainder=False)
    return (
        batches.enumerate().skip(start_step).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    )
