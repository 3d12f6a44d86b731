"""Self-distillation losses: an online prediction regresses a stop-gradient target.

BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021) both compare the prediction of
one view with the projection of the other view, symmetrically. They differ in the
target (an EMA network in BYOL, the same network in SimSiam) and in how they write the
same cosine distance: BYOL's normalized MSE `2 - 2 cos`, SimSiam's `-cos`.

Each function returns the per-example terms (both directions added), so that a model
can average them over the global batch (`kssl.runtime.distribute.global_mean`).
"""

from __future__ import annotations

import tensorflow as tf


def _cosine(a, b):
    a = tf.math.l2_normalize(tf.cast(a, tf.float32), axis=-1)
    b = tf.math.l2_normalize(tf.cast(b, tf.float32), axis=-1)
    return tf.reduce_sum(a * b, axis=-1)


def normalized_mse(prediction, target):
    """`||p/||p|| - z/||z|| ||^2 = 2 - 2 cos(p, z)` per example, with no gradient to `target`.

    Examples:
        >>> import numpy as np
        >>> normalized_mse(np.array([[1.0, 0.0]]), np.array([[0.0, 3.0]])).numpy()
        array([2.], dtype=float32)
    """
    return 2.0 - 2.0 * _cosine(prediction, tf.stop_gradient(target))


def negative_cosine(prediction, target):
    """`-cos(p, z)` per example, with no gradient to `target` (SimSiam's D, eq. 1)."""
    return -_cosine(prediction, tf.stop_gradient(target))


def byol(p1, p2, z1, z2):
    """BYOL's symmetric loss per example: `(2 - 2 cos(p1, z2)) + (2 - 2 cos(p2, z1))`.

    Args:
        p1, p2: `(N, D)` online predictions of the first and second views.
        z1, z2: `(N, D)` target projections of the first and second views (the target
            network's outputs; no gradient flows to them).

    Returns:
        `(N,)` float32: each image's loss, in [0, 8]. The paper's loss is its mean.

    Reference:
        Grill et al. 2020, https://arxiv.org/abs/2006.07733, eq. 2 and the symmetrised
        loss of section 3.1.
    """
    return normalized_mse(p1, z2) + normalized_mse(p2, z1)


def byol_crops(predictions, targets):
    """BYOL's loss per example over multi-crop views: for every target crop `g` and every
    prediction of another crop `v != g`, `2 - 2 cos(p_v, z_g)`, averaged over the pairs
    and doubled, so that two crops give exactly `byol(p1, p2, z1, z2)`.

    Args:
        predictions: a list of `(N, D)` online predictions, one per crop, global crops first.
        targets: a list of `(N, D)` target projections of the global crops (the target
            network sees only those), in the same order.

    Returns:
        `(N,)` float32, in [0, 8].

    Examples:
        >>> import numpy as np
        >>> p = [np.eye(2, dtype="float32")] * 3
        >>> byol_crops(p, p[:2]).numpy()  # every crop agrees with every target
        array([0., 0.], dtype=float32)
    """
    terms = [
        normalized_mse(prediction, target)
        for g, target in enumerate(targets)
        for v, prediction in enumerate(predictions)
        if v != g
    ]
    if not terms:
        raise ValueError(f"byol_crops needs 2 crops or more. Received: {len(predictions)} predictions.")
    return 2.0 * tf.add_n(terms) / len(terms)


def simsiam(p1, p2, z1, z2):
    """SimSiam's symmetric loss per example: `D(p1, z2) / 2 + D(p2, z1) / 2`, `D = -cos`.

    Args:
        p1, p2: `(N, D)` predictions of the first and second views.
        z1, z2: `(N, D)` projections of the first and second views (stop-gradient).

    Returns:
        `(N,)` float32 in [-1, 1]; -1 when every prediction points at its target.

    Reference:
        Chen and He 2021, https://arxiv.org/abs/2011.10566, eq. 2 and 3.
    """
    return 0.5 * negative_cosine(p1, z2) + 0.5 * negative_cosine(p2, z1)


def teacher_regression(predictions, teacher_features, normalize: bool = True):
    """Per-example regression of a frozen teacher's features: what the `distillation`
    method trains a student on (the loss family of LightlyTrain's distillation).

    Args:
        predictions: `(N, D)` the student's features mapped to the teacher's dimension.
        teacher_features: `(N, D)` the teacher's features of the same images (no gradient).
        normalize: compare unit vectors, `2 - 2 cos(p, t)` (whatever the teacher's scale);
            False: the mean squared error over the dimensions, `mean((p - t)^2)`, as
            LightlyTrain's DistillationV2 computes it.

    Returns:
        `(N,)` float32 per-example losses (the method averages them over the global batch).

    Examples:
        >>> import numpy as np
        >>> p, t = np.array([[1.0, 0.0]]), np.array([[0.0, 3.0]])
        >>> teacher_regression(p, t).numpy(), teacher_regression(p, t, normalize=False).numpy()
        (array([2.], dtype=float32), array([5.], dtype=float32))
    """
    if normalize:
        return normalized_mse(predictions, teacher_features)
    difference = tf.cast(predictions, tf.float32) - tf.stop_gradient(tf.cast(teacher_features, tf.float32))
    return tf.reduce_mean(tf.square(difference), axis=-1)
