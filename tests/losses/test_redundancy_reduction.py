"""Barlow Twins and VICReg against NumPy written from the papers' equations, with the
exact conventions kssl documents (biased std for Barlow Twins, unbiased for VICReg)."""

import numpy as np
import pytest

from kssl.losses import barlow_twins, vicreg


def numpy_barlow_twins(z1, z2, lambda_, epsilon=1e-5):
    """Zbontar et al. eq. 1-2: C_ij = sum_b ẑ1_bi ẑ2_bj / N with columns standardised
    by the batch mean and the biased std (sqrt(var + eps))."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n = len(z1)
    s1 = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + epsilon)  # numpy's var is biased (ddof=0)
    s2 = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + epsilon)
    c = np.zeros((z1.shape[1], z2.shape[1]))
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            c[i, j] = np.sum(s1[:, i] * s2[:, j]) / n
    on = sum((1 - c[i, i]) ** 2 for i in range(len(c)))
    off = sum(c[i, j] ** 2 for i in range(len(c)) for j in range(len(c)) if i != j)
    return on + lambda_ * off


def numpy_vicreg(z1, z2, epsilon=1e-4):
    """Bardes et al. eq. 1-6 with weights 25 / 25 / 1."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    n, d = z1.shape

    def v(z):
        return np.mean(np.maximum(0.0, 1.0 - np.sqrt(z.var(0, ddof=1) + epsilon)))

    def c(z):
        cov = np.cov(z, rowvar=False)  # unbiased: divides by n - 1
        return (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / d

    s = np.mean((z1 - z2) ** 2)
    return 25 * s + 25 * (v(z1) + v(z2)) + 1 * (c(z1) + c(z2))


@pytest.mark.parametrize("n,d", [(4, 3), (16, 8), (64, 5)])
@pytest.mark.parametrize("lambda_", [5e-3, 0.5])
def test_barlow_twins_matches_numpy(rng, n, d, lambda_):
    z1 = rng.normal(1.0, 2.0, size=(n, d)).astype("float32")
    z2 = (z1 + rng.normal(size=(n, d))).astype("float32")
    expected = numpy_barlow_twins(z1, z2, lambda_)
    assert float(barlow_twins(z1, z2, lambda_=lambda_)) == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("n,d", [(4, 3), (16, 8), (64, 5)])
@pytest.mark.parametrize("scale", [0.1, 3.0])  # below and above the variance hinge at std 1
def test_vicreg_matches_numpy(rng, n, d, scale):
    z1 = rng.normal(0.5, scale, size=(n, d)).astype("float32")
    z2 = (z1 + 0.3 * rng.normal(size=(n, d))).astype("float32")
    assert float(vicreg(z1, z2)) == pytest.approx(numpy_vicreg(z1, z2), rel=1e-4, abs=1e-5)


def test_barlow_twins_is_zero_for_identical_decorrelated_views():
    z = np.linalg.qr(np.random.default_rng(1).normal(size=(64, 8)))[0].astype("float32")  # orthogonal columns
    z = (z - z.mean(0)) * 10
    assert float(barlow_twins(z, z)) == pytest.approx(0.0, abs=0.05)


def test_vicreg_terms_vanish_where_the_paper_says():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(4096, 4)).astype("float32") * 2.0  # std 2 > 1, nearly uncorrelated
    assert float(vicreg(z, z)) == pytest.approx(0.0, abs=0.05)
    assert float(vicreg(z, z + 1.0)) == pytest.approx(25.0, abs=0.1)  # MSE of a unit shift
