import numpy as np
import pytest
from helpers import digits

from kssl.data.sources import DataError, from_arrays
from kssl.data.subsets import label_subset


@pytest.fixture(scope="module")
def train():
    return digits(image_size=8)


def test_per_class_count_is_exact_and_stratified(train):
    subset = label_subset(train, 7, seed=1)
    assert subset.class_counts() == {str(c): 7 for c in range(10)}


def test_fraction_is_stratified_with_at_least_one_per_class(train):
    subset = label_subset(train, 0.1, seed=0)
    counts = train.class_counts()
    assert subset.class_counts() == {c: max(1, round(0.1 * n)) for c, n in counts.items()}
    assert all(v >= 1 for v in label_subset(train, 0.001).class_counts().values())


def test_same_seed_same_subset_other_seed_other_subset(train):
    a, b, c = label_subset(train, 5, seed=3), label_subset(train, 5, seed=3), label_subset(train, 5, seed=4)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.images, c.images)


def test_subset_images_come_from_the_set_with_their_labels(train):
    subset = label_subset(train, 3, seed=0)
    lookup = {bytes(img): label for img, label in zip(train.images, train.labels)}
    assert all(lookup[bytes(img)] == label for img, label in zip(subset.images, subset.labels))


@pytest.mark.parametrize(
    "labels, message",
    [(0.0, r"\(0, 1\]"), (-0.5, r"\(0, 1\]"), (1.5, r"\(0, 1\]"), (0, ">= 1"), (500, "has only"), ("ten", "fraction")],
)
def test_bad_label_budgets_are_named(train, labels, message):
    with pytest.raises(DataError, match=message):
        label_subset(train, labels)


def test_unlabeled_set_has_no_subset():
    with pytest.raises(DataError, match="no labels"):
        label_subset(from_arrays(np.zeros((4, 4, 4, 3), "uint8")), 1)
