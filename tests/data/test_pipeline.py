import numpy as np
import pytest
from helpers import digits

from kssl.data.pipeline import labeled_batches, view_pairs
from kssl.data.sources import DataError


@pytest.fixture(scope="module")
def images():
    return digits(split="test")  # 360 images


def test_view_pairs_shapes_labels_and_range(images):
    (v1, v2), labels = next(iter(view_pairs(images, batch_size=32, with_labels=True)))
    assert v1.shape == v2.shape == (32, 16, 16, 3) and labels.shape == (32,)
    assert 0.0 <= float(np.min(v1)) and float(np.max(v2)) <= 1.0
    assert not np.array_equal(v1, v2)


def test_one_pass_without_repeat_sees_each_image_once_in_a_seeded_order(images):
    def first_views(seed):
        return [b[0] for b in labeled_batches(images, 64, training=False)], list(
            view_pairs(images, 64, seed=seed, with_labels=True, repeat=False)
        )

    _, passes = first_views(0)
    labels = np.concatenate([labels for _, labels in passes])
    assert len(labels) == (360 // 64) * 64  # incomplete batches are dropped
    again = list(view_pairs(images, 64, seed=0, repeat=False))
    np.testing.assert_array_equal(again[0][0], passes[0][0][0])


def test_labeled_batches_in_order_keep_the_last_partial_batch(images):
    batches = list(labeled_batches(images, 100))
    assert [len(labels) for _, labels in batches] == [100, 100, 100, 60]
    np.testing.assert_array_equal(np.concatenate([labels for _, labels in batches]), images.labels)
    np.testing.assert_allclose(batches[0][0][0], images.images[0] / 255.0, atol=1e-6)


def test_errors_for_small_sets_bad_batch_sizes_and_missing_labels(images):
    with pytest.raises(DataError, match="fewer than one batch of 512"):
        view_pairs(images, batch_size=512)
    with pytest.raises(DataError, match="batch_size"):
        labeled_batches(images, batch_size=0)
    unlabeled = images.subset(range(10))
    unlabeled.labels = None
    with pytest.raises(DataError, match="no labels"):
        labeled_batches(unlabeled, 4)
