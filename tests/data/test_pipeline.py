import numpy as np
import pytest
from helpers import digits

from kssl.data.pipeline import labeled_batches, view_pairs
from kssl.data.sources import DataError, from_arrays


@pytest.fixture(scope="module")
def images():
    return digits(split="test")  # 360 images


def test_view_pairs_shapes_labels_and_range(images):
    (v1, v2), labels = next(iter(view_pairs(images, batch_size=32, with_labels=True)))
    assert v1.shape == v2.shape == (32, 16, 16, 3) and labels.shape == (32,)
    assert 0.0 <= float(np.min(v1)) and float(np.max(v2)) <= 1.0
    assert not np.array_equal(v1, v2)


def test_one_pass_without_repeat_sees_each_image_once_in_a_seeded_order(images):
    # Label every image with its own index, so the labels of a pass say which images it took.
    numbered = from_arrays(images.images, np.arange(len(images)), source="numbered")

    def one_pass(seed):
        return np.concatenate([ids for _, ids in view_pairs(numbered, 64, seed=seed, with_labels=True, repeat=False)])

    seen = one_pass(0)
    assert len(seen) == (360 // 64) * 64  # incomplete batches are dropped
    assert len(np.unique(seen)) == len(seen)  # no image twice
    assert not np.array_equal(seen, np.sort(seen))  # shuffled
    np.testing.assert_array_equal(seen, one_pass(0))  # the same seed, the same order
    assert not np.array_equal(seen, one_pass(1))


def test_repeated_passes_reshuffle_and_cover_every_image(images):
    numbered = from_arrays(images.images, np.arange(len(images)), source="numbered")
    batches = view_pairs(numbered, 60, seed=0, with_labels=True).take(12)  # two passes of 6 batches
    ids = np.concatenate([ids for _, ids in batches])
    first, second = ids[:360], ids[360:]
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(360))
    assert not np.array_equal(first, second)


def test_start_step_skips_exactly_the_batches_already_seen(images):
    numbered = from_arrays(images.images, np.arange(len(images)), source="numbered")
    full = [ids for _, ids in view_pairs(numbered, 32, seed=3, with_labels=True).take(5)]
    resumed = [ids for _, ids in view_pairs(numbered, 32, seed=3, with_labels=True, start_step=2).take(3)]
    for a, b in zip(full[2:], resumed):
        np.testing.assert_array_equal(a, b)


def test_any_range_of_steps_tagged_with_its_steps_is_that_stretch_of_training(images):
    # What the tf.data service's workers compute (`kssl.data.service`): steps 2-4 alone.
    full = list(view_pairs(images, 32, seed=3, with_labels=True).take(5))
    tagged = list(view_pairs(images, 32, seed=3, with_labels=True, start_step=2, stop_step=5, tag_steps=True))
    assert [int(step) for step, _ in tagged] == [2, 3, 4]
    for (views, labels), (_, ((tagged_views, tagged_labels))) in zip(full[2:], tagged):
        np.testing.assert_array_equal(labels, tagged_labels)
        for a, b in zip(views, tagged_views):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="stop_step needs a shuffled, repeated source"):
        view_pairs(images, 32, repeat=False, stop_step=3)


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
