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

    Examples:
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


# Draws of a budget: several for budgets this small or smaller (labels per class), one above.
SMALL_BUDGET_PER_CLASS = 10
SMALL_BUDGET_DRAWS = 3


def default_draws(subset: ImageSet) -> int:
    """How many independent draws of `subset`'s budget kssl takes by default: 3 when it
    holds at most 10 labeled images per class (one draw of so few labels cannot say
    whether pretraining helped: on real photos five draws of 10 per class ranged from 24%
    to 41%), else 1.

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> digits = load_digits(image_size=8)
        >>> default_draws(label_subset(digits, 10)), default_draws(label_subset(digits, 20))
        (3, 1)
    """
    classes = max(1, int(np.count_nonzero(np.bincount(subset.labels, minlength=subset.num_classes))))
    return SMALL_BUDGET_DRAWS if len(subset) <= SMALL_BUDGET_PER_CLASS * classes else 1


def draw_seed(seed: int, draw: int) -> int:
    """The seed of draw `draw` (0, 1, ...) of a run seeded `seed`: draw 0 is the run's own seed."""
    return int(seed) + int(draw)


def label_draws(image_set: ImageSet, labels: float | int, draws: int | None, seed: int = 0) -> list[ImageSet]:
    """`draws` independent stratified subsets of one label budget (`label_subset` with the
    seeds `draw_seed(seed, 0)`, `draw_seed(seed, 1)`, ...); `draws=None` takes
    `default_draws` of them.

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> subsets = label_draws(load_digits(image_size=8), 2, draws=None)
        >>> len(subsets), [len(subset) for subset in subsets]
        (3, [20, 20, 20])
    """
    first = label_subset(image_set, labels, seed=draw_seed(seed, 0))
    count = default_draws(first) if draws is None else int(draws)
    if count < 1:
        raise DataError(f"draws must be >= 1. Received: {draws!r}")
    return [first] + [label_subset(image_set, labels, seed=draw_seed(seed, d)) for d in range(1, count)]


# A fifth of each class's labels is held out for validation; a class with fewer than 5
# labels makes it k-fold, k its number of labels.
VALIDATION_FOLDS = 5


def validation_folds(labels, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Where a labeled subset is split to choose on held-out labels, never on the test
    split: a list of `(fit, held_out)` index pairs, stratified and seeded.

    - Every class has at least 5 labels: one split, about a fifth of each class held out.
    - The smallest class has k = 2 to 4: k folds (stratified k-fold); each label is held
      out once, and each fold fits on the other k - 1 parts.
    - A class has a single label: no split leaves it something to fit on, so `[]`
      (nothing can be validated; the caller says so).

    Uses scikit-learn's `StratifiedKFold`.

    Examples:
        >>> labels = np.repeat([0, 1, 2], 10)
        >>> [(len(fit), len(held_out)) for fit, held_out in validation_folds(labels)]
        [(24, 6)]
        >>> [(len(fit), len(held_out)) for fit, held_out in validation_folds(np.repeat([0, 1], 3))]
        [(4, 2), (4, 2), (4, 2)]
        >>> validation_folds([0, 1, 1])
        []
    """
    from sklearn.model_selection import StratifiedKFold

    labels = np.asarray(labels)
    counts = np.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < 2:
        return []
    folds = min(VALIDATION_FOLDS, smallest)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=int(seed) % 2**32)
    splits = [(np.sort(fit), np.sort(held_out)) for fit, held_out in splitter.split(np.zeros(len(labels)), labels)]
    return splits[:1] if folds == VALIDATION_FOLDS else splits


def describe_validation(folds: list) -> str:
    """How `validation_folds`' result chose, in words for the report.

    Examples:
        >>> describe_validation(validation_folds(np.repeat([0, 1], 3)))
        '3-fold cross-validation on the labeled images'
    """
    if not folds:
        return "none: a class has a single label, so none can be held out"
    if len(folds) == 1:
        fit, held_out = folds[0]
        return f"{len(held_out)} of the {len(fit) + len(held_out)} labeled images held out (a fifth of each class)"
    return f"{len(folds)}-fold cross-validation on the labeled images"
