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


def nt_xent_logits(z1, z2, temperature: float = 0.5, gather_distributed: bool = False):
    """Logits and positive indices of the NT-Xent classification problem.

    Args:
        z1: `(n, D)` projections of the first views (this replica's).
        z2: `(n, D)` projections of the second views; row i is the positive of `z1[i]`.
        temperature: softmax temperature tau, > 0.
        gather_distributed: under a multi-replica `tf.distribute` strategy, compare this
            replica's anchors with the projections of *every* replica, so each anchor
            has all 2N-2 negatives of the global batch of N pairs. Without a strategy
            (or with one replica) it changes nothing.

    Returns:
        `(logits, positives)`: `logits` is `(2n, 2N)` float32 cosine similarities over
        tau for this replica's 2n anchors (rows: `z1` then `z2`) against all 2N
        candidates (columns: every replica's `z1`, then every replica's `z2`), with
        each anchor's similarity to itself pushed to -1e9; `positives` is `(2n,)`
        int32, the column of each anchor's positive.
    """
    from kssl.runtime import distribute

    temperature = check_temperature(temperature)
    z1 = tf.math.l2_normalize(tf.cast(z1, tf.float32), axis=1)
    z2 = tf.math.l2_normalize(tf.cast(z2, tf.float32), axis=1)
    n = tf.shape(z1)[0]
    if gather_distributed:
        all_1, all_2, offset = distribute.all_gather(z1), distribute.all_gather(z2), distribute.local_offset(n)
    else:
        all_1, all_2, offset = z1, z2, tf.constant(0, tf.int32)
    total = tf.shape(all_1)[0]
    anchors = tf.concat([z1, z2], axis=0)
    logits = tf.matmul(anchors, tf.concat([all_1, all_2], axis=0), transpose_b=True) / temperature
    rows = offset + tf.range(n)
    own = tf.concat([rows, total + rows], axis=0)
    logits -= _SELF_MASK * tf.one_hot(own, 2 * total, dtype=logits.dtype)
    positives = tf.concat([total + rows, rows], axis=0)
    return logits, positives


def nt_xent_per_anchor(z1, z2, temperature: float = 0.5, gather_distributed: bool = False):
    """NT-Xent's loss for each anchor, and whether its positive was the top candidate.

    The terms `nt_xent` averages; a model that trains on several replicas sums them and
    divides by the global number of anchors (`kssl.runtime.distribute.global_mean`).

    Args:
        z1, z2, temperature, gather_distributed: as in `nt_xent_logits`.

    Returns:
        `(losses, hits)`: `(2n,)` float32 cross-entropies of this replica's anchors (rows
        `z1` then `z2`), and `(2n,)` float32 1.0 where the positive had the largest logit.
    """
    logits, positives = nt_xent_logits(z1, z2, temperature, gather_distributed)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=positives, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), positives), tf.float32)
    return losses, hits


def nt_xent(z1, z2, temperature: float = 0.5, gather_distributed: bool = False):
    """SimCLR's NT-Xent loss: the mean over all 2N anchors of a batch of N pairs.

    Args:
        z1: `(N, D)` projections of the first views (any float dtype; computed in float32).
        z2: `(N, D)` projections of the second views; row i of `z1` and `z2` is a pair.
        temperature: softmax temperature tau, > 0.
        gather_distributed: under a multi-replica strategy, use every replica's
            projections as negatives (see `nt_xent_logits`); the value returned on
            each replica is then the mean over that replica's anchors.

    Returns:
        A float32 scalar.

    Examples:
        >>> import numpy as np
        >>> z = np.eye(4, dtype="float32")
        >>> round(float(nt_xent(z, z, temperature=0.1)), 4)  # perfect pairs, orthogonal negatives
        0.0003

    Reference:
        Chen et al. 2020, https://arxiv.org/abs/2002.05709, eq. (1).
    """
    losses, _ = nt_xent_per_anchor(z1, z2, temperature, gather_distributed)
    return tf.reduce_mean(losses)


def contrastive_accuracy(z1, z2, temperature: float = 0.5, gather_distributed: bool = False):
    """Fraction of the anchors whose positive is the most similar of their 2N-1 candidates."""
    _, hits = nt_xent_per_anchor(z1, z2, temperature, gather_distributed)
    return tf.reduce_mean(hits)


def info_nce_per_query(queries, keys, queue, temperature: float = 0.2):
    """MoCo's InfoNCE loss for each query: its key against a queue of negative keys.

    For query q with positive key k and the queue's K negative keys n_1..n_K (all
    L2-normalised), the loss is the cross entropy of `[q.k, q.n_1, ..., q.n_K] / tau`
    with the positive as the class: `-log exp(q.k/tau) / (exp(q.k/tau) + sum_j exp(q.n_j/tau))`.

    Args:
        queries: `(n, D)` query projections (the online network's).
        keys: `(n, D)` key projections; row i is the positive of `queries[i]` (no
            gradient flows to keys or queue).
        queue: `(K, D)` negative keys from earlier batches.
        temperature: tau, > 0 (MoCo v2: 0.2).

    Returns:
        `(losses, hits)`: `(n,)` float32 losses, and 1.0 where the positive key had the
        largest logit.

    Examples:
        >>> import numpy as np
        >>> q = np.eye(2, 4, dtype="float32")
        >>> losses, hits = info_nce_per_query(q, q, np.eye(4, dtype="float32")[2:], temperature=0.1)
        >>> [round(float(x), 4) for x in losses], hits.numpy().tolist()
        ([0.0001, 0.0001], [1.0, 1.0])

    Reference:
        He et al. 2020 (MoCo), eq. 1, https://arxiv.org/abs/1911.05722; Chen et al. 2020
        (MoCo v2), https://arxiv.org/abs/2003.04297.
    """
    temperature = check_temperature(temperature)
    q = tf.math.l2_normalize(tf.cast(queries, tf.float32), axis=1)
    k = tf.stop_gradient(tf.math.l2_normalize(tf.cast(keys, tf.float32), axis=1))
    negatives = tf.stop_gradient(tf.math.l2_normalize(tf.cast(queue, tf.float32), axis=1))
    positive = tf.reduce_sum(q * k, axis=1, keepdims=True)
    logits = tf.concat([positive, tf.matmul(q, negatives, transpose_b=True)], axis=1) / temperature
    labels = tf.zeros(tf.shape(q)[:1], tf.int32)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
    hits = tf.cast(tf.equal(tf.argmax(logits, axis=1, output_type=tf.int32), 0), tf.float32)
    return losses, hits


def info_nce(queries, keys, queue, temperature: float = 0.2):
    """The mean of `info_nce_per_query` over the queries (MoCo's loss)."""
    losses, _ = info_nce_per_query(queries, keys, queue, temperature)
    return tf.reduce_mean(losses)
