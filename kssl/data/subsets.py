"""Stratified, seeded labeled subsets: "1% of the labels" or "10 images per class"."""

from __future__ import annotations

import logging
import numbers

import numpy as np

from kssl.data.sources import DataError, ImageSet

logger = logging.getLogger("kssl")


def label_subset(image_set: ImageSet, labels: float | int, seed: int = 0) -> ImageSet:
    """Takes a stratified random subset of a labeled set.

    Args:
        image_set: a labeled `ImageSet`.
        labels: a float in (0, 1] is a fraction of each class (at least one image per
            class); an int >= 1 is a number of images per class.
        seed: the same seed and set always give the same subset.

    Returns:
        The subset, in a random order. Its `class_counts()` says what it took, and the
        same is logged at INFO level.

    Example:
    >>> from kssl.data.sources import load_digits
    >>> label_subset(load_digits(image_size=8), 3).class_counts()["7"]
    3
    """
    if image_set.labels is None:
        raise DataError(f"{image_set.source or 'This image set'} has no labels, so no labeled subset can be taken.")
    counts = np.bincount(image_set.labels, minlength=image_set.num_classes)
    if isinstance(labels, bool) or not isinstance(labels, numbers.Real):
        raise DataError(f"labels must be a fraction in (0, 1] or a count per class. Received: {labels!r}")
    if isinstance(labels, numbers.Integral) or (isinstance(labels, float) and labels > 1 and labels.is_integer()):
        per_class = int(labels)
        if per_class < 1:
            raise DataError(f"A count of labels per class must be >= 1. Received: {labels!r}")
        smallest = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        if per_class > counts[smallest]:
            raise DataError(
                f"Asked for {per_class} labeled images per class, but class "
                f"{image_set.class_names[smallest]!r} has only {counts[smallest]}."
            )
        wanted = np.where(counts > 0, per_class, 0)
    else:
        fraction = float(labels)
        if not 0 < fraction <= 1:
            raise DataError(f"A fraction of labels must be in (0, 1]. Received: {labels!r}")
        wanted = np.where(counts > 0, np.maximum(1, np.round(fraction * counts).astype(int)), 0)
    rng = np.random.default_rng(seed)
    chosen = []
    for label, count in enumerate(wanted):
        members = np.flatnonzero(image_set.labels == label)
        chosen.append(rng.choice(members, size=int(count), replace=False))
    indices = rng.permutation(np.concatenate(chosen))
    subset = image_set.subset(indices, source=f"{image_set.source} ({len(indices)} labeled, seed {seed})")
    logger.info("Labeled subset: %d images, per class %s", len(indices), subset.class_counts())
    return subset
