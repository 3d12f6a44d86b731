"""Contrastive losses.

NT-Xent (normalized temperature-scaled cross entropy) is the SimCLR objective
(Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations", eq. 1). For a batch of N pairs there are 2N anchors; each anchor
has one positive (the other view of its image) and 2N-2 negatives (every other view
in the batch). The loss is the mean over the 2N anchors.
"""

from __future__ import annotations

import tensorflow as tf

# Added to the self-similarity logits so an anchor never counts itself as a candidate.
# A finite number (not -inf) keeps float16 softmax free of NaNs.
_SELF_MASK = 1e9


def check_temperature(temperature: float) -> float:
    """Returns `temperature` as a float, or raises a ValueError naming it."""
    try:
        value = float(temperature)
    except (TypeError, ValueError):
        raise ValueError(f"temperature must be a positive number. Received: temperature={temperature!r}") from None
    if not value > 0:
        raise ValueError(f"temperature must be > 0 (SimCLR uses 0.1-0.5). Received: temperature={temperature!r}")
    return value


def nt_xent_logits(z1, z2, temperature: float = 0.5):
    """Logits and positive indices of the NT-Xent classification problem.

    Args:
        z1: `(N, D)` projections of the first views.
        z2: `(N, D)` projections of the second views; row i is the positive of `z1[i]`.
        temperature: softmax temperature tau, > 0.

    Returns:
        `(logits, positives)`: `logits` is `(2N, 2N)` float32 cosine similarities over
        tau, with each anchor's similarity to itself pushed to -1e9; `positives` is
        `(2N,)` int32, the column of each anchor's positive (i <-> i + N).
    """
    temperature = check_temperature(temperature)
    z = tf.concat([tf.cast(z1, tf.float32), tf.cast(z2, tf.float32)], axis=0)
    z = tf.math.l2_normalize(z, axis=1)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= _SELF_MASK * tf.eye(2 * n, dtype=logits.dtype)
    positives = tf.concat([tf.range(n, 2 * n), tf.range(0, n)], axis=0)
    return logits, positives


def nt_xent(z1, z2, temperature: float = 0.5):
    """SimCLR's NT-Xent loss: the mean over all 2N anchors of a batch of N pairs.

    Args:
        z1: `(N, D)` projections of the first views (any float dtype; computed in float32).
        z2: `(N, D)` projections of the second views; row i of `z1` and `z2` is a pair.
        temperature: softmax temperature tau, > 0.

    Returns:
        A float32 scalar.

    Example:
    >>> import numpy as np
    >>> z = np.eye(4, dtype="float32")
    >>> round(float(nt_xent(z, z, temperature=0.1)), 4)  # perfect pairs, orthogonal negatives
    0.0003

    Reference:
        Chen et al. 2020, https://arxiv.org/abs/2002.05709, eq. (1).
    """
    logits, positives = nt_xent_logits(z1, z2, temperature)
    per_anchor = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits)
    return tf.reduce_mean(per_anchor)


def contrastive_accuracy(z1, z2, temperature: float = 0.5):
    """Fraction of the 2N anchors whose positive is the most similar of 2N-1 candidates."""
    logits, positives = nt_xent_logits(z1, z2, temperature)
    hits = tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), positives)
    return tf.reduce_mean(tf.cast(hits, tf.float32))
