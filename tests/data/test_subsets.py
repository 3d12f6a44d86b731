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


def test_draws_are_seeded_stratified_distinct_and_from_the_train_split_only(train):
    from helpers import digits

    from kssl.data.subsets import default_draws, label_draws

    draws = label_draws(train, 4, draws=None, seed=5)
    assert len(draws) == 3 == default_draws(draws[0])  # 4 per class is a small budget: 3 draws
    assert len(label_draws(train, 11, draws=None)) == 1 and len(label_draws(train, 2, draws=4)) == 4
    again = label_draws(train, 4, draws=3, seed=5)
    for drawn, repeated, seed in zip(draws, again, (5, 6, 7)):
        assert drawn.class_counts() == {str(c): 4 for c in range(10)}
        assert np.array_equal(drawn.images, repeated.images)  # seeded
        assert np.array_equal(drawn.images, label_subset(train, 4, seed=seed).images)  # draw d: seed + d
    assert not np.array_equal(draws[0].images, draws[1].images)
    test_images = {bytes(image) for image in digits(image_size=8, split="test").images}
    assert not any(bytes(image) in test_images for drawn in draws for image in drawn.images)


@pytest.mark.parametrize("per_class, folds, held_out_per_class", [(10, 1, 2), (5, 1, 1), (4, 4, 1), (2, 2, 1)])
def test_validation_holds_out_a_fifth_of_each_class_or_folds_when_a_class_has_few(per_class, folds, held_out_per_class):
    from kssl.data.subsets import validation_folds

    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(3), per_class))
    splits = validation_folds(labels, seed=3)
    assert len(splits) == folds
    for fit, held_out in splits:
        assert not set(fit) & set(held_out) and sorted([*fit, *held_out]) == list(range(len(labels)))
        assert np.bincount(labels[held_out], minlength=3).tolist() == [held_out_per_class] * 3  # stratified
        assert np.all(np.bincount(labels[fit], minlength=3) >= 1)  # every class keeps labels to fit on
    if folds > 1:  # k-fold: every label is held out exactly once
        assert sorted(np.concatenate([held_out for _, held_out in splits]).tolist()) == list(range(len(labels)))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, validation_folds(labels, seed=3)))  # seeded


def test_a_single_label_in_a_class_leaves_nothing_to_validate_on_and_says_so():
    from kssl.data.subsets import describe_validation, validation_folds

    assert validation_folds([0, 0, 0, 1, 1, 2]) == []
    assert "a class has a single label" in describe_validation([])
