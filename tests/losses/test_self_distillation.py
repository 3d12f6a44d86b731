"""DINO's loss against NumPy written from the paper's Algorithm 1."""

import numpy as np
import pytest
import tensorflow as tf

from kssl.losses import dino


def numpy_dino(students, teachers, center, tau_s, tau_t):
    """Caron et al. 2021, Algorithm 1: H(t, s) = -(softmax((t - C) / tau_t) * log softmax(s / tau_s)).sum(1),
    summed over (teacher global crop i, student crop j != i), averaged over the pairs."""

    def softmax(z):
        z = np.asarray(z, np.float64)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    pairs = [
        -(softmax((t - center) / tau_t) * np.log(softmax(s / tau_s))).sum(axis=1)
        for i, t in enumerate(teachers)
        for j, s in enumerate(students)
        if i != j
    ]
    return np.mean(pairs, axis=0)


@pytest.mark.parametrize("n, k, local", [(1, 4, 0), (8, 16, 2), (5, 32, 6)])
def test_matches_numpy_with_any_number_of_local_crops(rng, n, k, local):
    students = [rng.normal(size=(n, k)).astype("float32") for _ in range(2 + local)]
    teachers = [rng.normal(size=(n, k)).astype("float32") for _ in range(2)]
    center = rng.normal(size=(k,)).astype("float32")
    np.testing.assert_allclose(
        dino(students, teachers, center, 0.1, 0.05).numpy(),
        numpy_dino(students, teachers, center, 0.1, 0.05),
        rtol=1e-4,
        atol=1e-5,
    )


def test_no_gradient_reaches_the_teacher_or_the_centre(rng):
    students = [tf.Variable(rng.normal(size=(4, 6)).astype("float32")) for _ in range(3)]
    teachers = [tf.Variable(rng.normal(size=(4, 6)).astype("float32")) for _ in range(2)]
    center = tf.Variable(np.zeros(6, "float32"))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(dino(students, teachers, center))
    gradients = tape.gradient(loss, [*students, *teachers, center])
    assert all(g is not None for g in gradients[:3]) and all(g is None for g in gradients[3:])


def test_too_few_crops_are_refused():
    with pytest.raises(ValueError, match="2 student crops"):
        dino([np.zeros((1, 3), "float32")], [np.zeros((1, 3), "float32")], np.zeros(3, "float32"))
