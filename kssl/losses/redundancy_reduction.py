"""Redundancy-reduction losses: statistics of a whole batch of embeddings.

Barlow Twins (Zbontar et al. 2021) drives the cross-correlation of the two views'
standardised embeddings to the identity; VICReg (Bardes et al. 2022) keeps the views
close (invariance), every dimension's standard deviation above 1 (variance), and the
dimensions decorrelated (covariance). Both are statistics over the batch, so with
`gather_distributed=True` they are computed over the *global* batch: every replica
returns the same value, the loss of the whole batch. (A model then divides it by the
number of replicas: the replicas' gradients, summed, are that loss's gradient.)
"""

from __future__ import annotations

import tensorflow as tf


def _gathered(z, gather_distributed):
    from kssl.runtime import distribute

    z = tf.cast(z, tf.float32)
    return distribute.all_gather(z) if gather_distributed else z


def cross_correlation(z1, z2, epsilon: float = 1e-5, gather_distributed: bool = False):
    """Barlow Twins' `(D, D)` cross-correlation matrix of two batches of embeddings.

    Each column is standardised with the batch mean and the *biased* standard deviation,
    `sqrt(var + epsilon)` (the official code's batch norm without affine parameters,
    epsilon 1e-5), and the product is divided by the batch size N.
    """
    z1, z2 = _gathered(z1, gather_distributed), _gathered(z2, gather_distributed)

    def standardise(z):
        mean, variance = tf.nn.moments(z, axes=[0])
        return (z - mean) / tf.sqrt(variance + epsilon)

    count = tf.cast(tf.shape(z1)[0], tf.float32)
    return tf.matmul(standardise(z1), standardise(z2), transpose_a=True) / count


def barlow_twins(z1, z2, lambda_: float = 5e-3, epsilon: float = 1e-5, gather_distributed: bool = False):
    """Barlow Twins: `sum_i (1 - C_ii)^2 + lambda_ * sum_{i != j} C_ij^2`.

    Args:
        z1, z2: `(N, D)` embeddings of the two views (the projector's outputs).
        lambda_: weight of the off-diagonal (redundancy) term; the paper's 5e-3.
        epsilon: added to each column's variance before the square root.
        gather_distributed: compute C over the global batch of every replica.

    Returns:
        A float32 scalar: the loss of the (global) batch.

    Examples:
        >>> import numpy as np
        >>> z = np.random.default_rng(0).normal(size=(256, 4)).astype("float32")
        >>> round(float(barlow_twins(z, z, lambda_=0.0)), 4)  # identical views: C_ii = 1
        0.0

    Reference:
        Zbontar et al. 2021, https://arxiv.org/abs/2103.03230, eq. 1-2.
    """
    c = cross_correlation(z1, z2, epsilon, gather_distributed)
    on_diagonal = tf.reduce_sum(tf.square(1.0 - tf.linalg.diag_part(c)))
    off_diagonal = tf.reduce_sum(tf.square(c)) - tf.reduce_sum(tf.square(tf.linalg.diag_part(c)))
    return on_diagonal + lambda_ * off_diagonal


def _variance_term(z, epsilon):
    std = tf.sqrt(_unbiased_variance(z) + epsilon)
    return tf.reduce_mean(tf.nn.relu(1.0 - std))


def _unbiased_variance(z):
    count = tf.cast(tf.shape(z)[0], tf.float32)
    _, variance = tf.nn.moments(z, axes=[0])
    return variance * count / (count - 1.0)


def _covariance_term(z):
    count = tf.cast(tf.shape(z)[0], tf.float32)
    dims = tf.cast(tf.shape(z)[1], tf.float32)
    centred = z - tf.reduce_mean(z, axis=0, keepdims=True)
    covariance = tf.matmul(centred, centred, transpose_a=True) / (count - 1.0)
    off_diagonal = tf.reduce_sum(tf.square(covariance)) - tf.reduce_sum(tf.square(tf.linalg.diag_part(covariance)))
    return off_diagonal / dims


def vicreg(
    z1,
    z2,
    invariance_weight: float = 25.0,
    variance_weight: float = 25.0,
    covariance_weight: float = 1.0,
    epsilon: float = 1e-4,
    gather_distributed: bool = False,
):
    """VICReg: `25 * MSE(z1, z2) + 25 * (v(z1) + v(z2)) + 1 * (c(z1) + c(z2))`.

    `v(z) = mean_d relu(1 - sqrt(var_unbiased(z_d) + epsilon))` and `c(z)` is the sum of
    the squared off-diagonal entries of the unbiased covariance of `z`, divided by D.
    MSE is the mean over examples and dimensions. (The paper's equation; the official
    code halves the variance term, which with these weights is another balance.)

    Args:
        z1, z2: `(N, D)` embeddings of the two views (the expander's outputs).
        invariance_weight, variance_weight, covariance_weight: the paper's 25, 25, 1.
        epsilon: added to the variance before the square root.
        gather_distributed: compute every term over the global batch of every replica.

    Returns:
        A float32 scalar: the loss of the (global) batch.

    Reference:
        Bardes, Ponce and LeCun 2022, https://arxiv.org/abs/2105.04906, eq. 1-6.
    """
    z1, z2 = _gathered(z1, gather_distributed), _gathered(z2, gather_distributed)
    invariance = tf.reduce_mean(tf.square(z1 - z2))
    variance = _variance_term(z1, epsilon) + _variance_term(z2, epsilon)
    covariance = _covariance_term(z1) + _covariance_term(z2)
    return invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
