import numpy as np
import pytest
import tensorflow as tf

from kssl.data.shuffle import shuffled_indices


@pytest.mark.parametrize("size", [1, 2, 3, 10, 257, 5000])
def test_every_epoch_is_a_permutation_and_epochs_differ(size):
    epochs = shuffled_indices(tf.range(3 * size, dtype=tf.int64), size, seed=7).numpy().reshape(3, size)
    for order in epochs:
        assert sorted(order.tolist()) == list(range(size))
    if size > 2:
        assert len({tuple(order) for order in epochs}) == 3


def test_any_position_is_computed_alone_and_seeds_differ():
    positions = tf.constant([123_456, 5, 999_999], tf.int64)
    together = shuffled_indices(positions, 1000, seed=1).numpy()
    alone = [int(shuffled_indices(positions[i : i + 1], 1000, seed=1)[0]) for i in range(3)]
    assert together.tolist() == alone
    assert not np.array_equal(shuffled_indices(tf.range(1000, dtype=tf.int64), 1000, seed=2).numpy(),
                              shuffled_indices(tf.range(1000, dtype=tf.int64), 1000, seed=1).numpy())  # fmt: skip


@pytest.mark.parametrize("seed", [0, 3])  # 0: kssl's default, the key a weak permutation handles worst
def test_the_order_looks_random(seed):
    # Against what a weak permutation (a stride, a rotation) would show: neighbours in the
    # order and an image's place in it are uncorrelated, and first places spread evenly.
    size, epochs = 1000, 200
    orders = shuffled_indices(tf.range(size * epochs, dtype=tf.int64), size, seed=seed).numpy().reshape(epochs, size)
    assert abs(np.corrcoef(orders[:, :-1].ravel(), orders[:, 1:].ravel())[0, 1]) < 0.02
    assert abs(np.mean([np.corrcoef(np.arange(size), order)[0, 1] for order in orders])) < 0.02
    counts = np.histogram(orders[:, 0], bins=10, range=(0, size))[0]
    assert counts.min() >= 8 and counts.max() <= 35  # expected 20 a bin
