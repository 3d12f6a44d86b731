import numpy as np
import pytest

from kssl.losses import contrastive_accuracy, nt_xent


def numpy_nt_xent(z1, z2, tau):
    """NT-Xent written from the paper's eq. (1), one anchor at a time."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n2 = len(z)
    n = n2 // 2
    losses = []
    for i in range(n2):
        j = (i + n) % n2
        sims = z @ z[i] / tau
        others = [k for k in range(n2) if k != i]
        losses.append(-(sims[j] - np.log(np.sum(np.exp(sims[others])))))
    return float(np.mean(losses))


@pytest.mark.parametrize("n,d", [(1, 3), (4, 8), (16, 32), (33, 5)])
@pytest.mark.parametrize("tau", [0.07, 0.2, 0.5, 1.0])
def test_nt_xent_matches_numpy_reference(rng, n, d, tau):
    z1 = rng.normal(size=(n, d)).astype("float32")
    z2 = rng.normal(size=(n, d)).astype("float32")
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(numpy_nt_xent(z1, z2, tau), rel=1e-4)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_nt_xent_is_half_of_keras_cv_simclr_loss(rng, tau):
    # keras_cv.losses.SimCLRLoss returns, per pair i, loss(anchor i) + loss(anchor i+N)
    # and its default reduction averages over the N pairs: it is the sum of the two
    # directions, so exactly twice kssl's mean over the 2N anchors.
    from keras_cv.losses import SimCLRLoss

    z1 = rng.normal(size=(12, 16)).astype("float32")
    z2 = rng.normal(size=(12, 16)).astype("float32")
    theirs = float(SimCLRLoss(temperature=tau)(z1, z2))
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(theirs / 2, rel=1e-5)


def test_nt_xent_is_invariant_to_projection_scale(rng):
    z1 = rng.normal(size=(8, 4)).astype("float32")
    z2 = rng.normal(size=(8, 4)).astype("float32")
    assert float(nt_xent(z1, z2, 0.3)) == pytest.approx(float(nt_xent(5 * z1, 0.1 * z2, 0.3)), rel=1e-5)


def test_contrastive_accuracy_perfect_and_swapped():
    z = np.eye(6, dtype="float32")
    assert float(contrastive_accuracy(z, z)) == 1.0
    assert float(contrastive_accuracy(z, z[::-1])) == 0.0


@pytest.mark.parametrize("bad", [0, -0.1, "warm", None])
def test_nt_xent_rejects_bad_temperature(bad):
    z = np.ones((2, 3), dtype="float32")
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, bad)


def numpy_info_nce(q, k, queue, tau):
    """MoCo's InfoNCE (He et al. 2020, eq. 1), one query at a time."""

    def unit(x):
        x = np.asarray(x, np.float64)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q, k, queue = unit(q), unit(k), unit(queue)
    losses = []
    for i in range(len(q)):
        positive = np.exp(q[i] @ k[i] / tau)
        negatives = np.exp(queue @ q[i] / tau).sum()
        losses.append(-np.log(positive / (positive + negatives)))
    return np.array(losses)


@pytest.mark.parametrize("n,d,size", [(1, 3, 1), (4, 8, 16), (10, 16, 64)])
@pytest.mark.parametrize("tau", [0.07, 0.2, 1.0])
def test_info_nce_matches_numpy_reference(rng, n, d, size, tau):
    from kssl.losses import info_nce, info_nce_per_query

    q, k = rng.normal(size=(2, n, d)).astype("float32")
    queue = rng.normal(size=(size, d)).astype("float32")
    losses, hits = info_nce_per_query(q, k, queue, tau)
    expected = numpy_info_nce(q, k, queue, tau)
    np.testing.assert_allclose(losses.numpy(), expected, rtol=1e-4, atol=1e-6)
    assert float(info_nce(q, k, queue, tau)) == pytest.approx(expected.mean(), rel=1e-4, abs=1e-6)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    un = queue / np.linalg.norm(queue, axis=1, keepdims=True)
    wins = (qn * kn).sum(1) > (qn @ un.T).max(1)
    np.testing.assert_array_equal(hits.numpy(), wins.astype("float32"))


def test_info_nce_sends_no_gradient_to_keys_or_queue(rng):
    import tensorflow as tf

    from kssl.losses import info_nce

    q, k, queue = (tf.Variable(rng.normal(size=shape).astype("float32")) for shape in [(4, 5), (4, 5), (8, 5)])
    with tf.GradientTape() as tape:
        loss = info_nce(q, k, queue)
    grad_q, grad_k, grad_queue = tape.gradient(loss, [q, k, queue])
    assert grad_q is not None and np.abs(grad_q.numpy()).sum() > 0
    assert grad_k is None and grad_queue is None
