"""BYOL's and SimSiam's losses against NumPy written from the papers' equations."""

import numpy as np
import pytest
import tensorflow as tf

from kssl.losses import byol, negative_cosine, normalized_mse, simsiam


def numpy_normalized(x):
    x = np.asarray(x, np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_byol(p1, p2, z1, z2):
    """BYOL eq. 2, ||q̄ - z̄'||², for both directions (section 3.1's symmetrised loss)."""
    forward = np.sum((numpy_normalized(p1) - numpy_normalized(z2)) ** 2, axis=1)
    backward = np.sum((numpy_normalized(p2) - numpy_normalized(z1)) ** 2, axis=1)
    return forward + backward


def numpy_simsiam(p1, p2, z1, z2):
    """SimSiam eq. 1-2: D(p, z) = -p/||p|| . z/||z||; L = D(p1, z2)/2 + D(p2, z1)/2."""
    d = lambda p, z: -np.sum(numpy_normalized(p) * numpy_normalized(z), axis=1)  # noqa: E731
    return 0.5 * d(p1, z2) + 0.5 * d(p2, z1)


@pytest.mark.parametrize("n,d", [(1, 3), (8, 16), (33, 5)])
@pytest.mark.parametrize("loss, reference", [(byol, numpy_byol), (simsiam, numpy_simsiam)])
def test_matches_numpy(rng, n, d, loss, reference):
    p1, p2, z1, z2 = (rng.normal(size=(n, d)).astype("float32") for _ in range(4))
    np.testing.assert_allclose(loss(p1, p2, z1, z2).numpy(), reference(p1, p2, z1, z2), rtol=1e-5, atol=1e-5)


def test_perfect_predictions_reach_the_minimum(rng):
    p = rng.normal(size=(5, 7)).astype("float32")
    np.testing.assert_allclose(byol(p, 2 * p, 3 * p, p).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(simsiam(p, 2 * p, 3 * p, p).numpy(), -1.0, atol=1e-5)


@pytest.mark.parametrize("distance", [normalized_mse, negative_cosine])
def test_no_gradient_reaches_the_target(rng, distance):
    p = tf.constant(rng.normal(size=(4, 3)).astype("float32"))
    z = tf.constant(rng.normal(size=(4, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([p, z])
        loss = tf.reduce_sum(distance(p, z))
    assert tape.gradient(loss, z) is None
    assert float(tf.reduce_sum(tf.abs(tape.gradient(loss, p)))) > 0


@pytest.mark.parametrize("n,d", [(1, 3), (8, 16), (33, 1280)])
@pytest.mark.parametrize("normalize", [True, False])
def test_teacher_regression_matches_numpy_and_sends_no_gradient_to_the_teacher(rng, n, d, normalize):
    """LightlyTrain's DistillationV2: MSE(student, teacher) over the features; normalised, the
    squared distance of unit vectors, ||p/||p|| - t/||t|| ||^2."""
    from kssl.losses import teacher_regression

    p, t = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 5
    if normalize:
        expected = np.sum((numpy_normalized(p) - numpy_normalized(t)) ** 2, axis=1)
    else:
        expected = np.mean((p - t) ** 2, axis=1)
    np.testing.assert_allclose(teacher_regression(p, t, normalize).numpy(), expected, rtol=2e-5, atol=1e-6)
    teacher = tf.Variable(t, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(teacher_regression(tf.constant(p, tf.float32), teacher, normalize))
    assert tape.gradient(loss, teacher) is None
