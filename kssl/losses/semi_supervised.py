"""Semi-supervised fine-tuning losses: the unlabeled images train the classifier too.

- FixMatch (Sohn et al. 2020): the prediction on a weakly augmented view of an
  unlabeled image is its pseudo-label where its confidence reaches a threshold; the
  prediction on a strongly augmented view of the same image is trained towards it.
- Distillation (SimCLRv2, Chen et al. 2020b, section 2.3): a student matches a teacher's
  predictions softened by a temperature, on unlabeled images.

Each returns per-image terms, so that a model averages them over the global batch
(`kssl.runtime.distribute.global_mean`); both take logits and compute in float32.
"""

from __future__ import annotations

import tensorflow as tf


def fixmatch(weak_logits, strong_logits, threshold: float = 0.95):
    """FixMatch's unlabeled terms, eq. 4: `1(max q >= threshold) * H(argmax q, p_strong)`
    with `q = softmax(weak_logits)` (no gradient flows through the weak view).

    Args:
        weak_logits: `(N, C)` logits of the weakly augmented unlabeled images.
        strong_logits: `(N, C)` logits of the strongly augmented views of the same images.
        threshold: the confidence a pseudo-label needs (the paper's tau, 0.95).

    Returns:
        `(terms, mask)`: `(N,)` float32 cross-entropies, zero where masked out, and the
        `(N,)` float32 mask (1 where the pseudo-label is kept). The paper's loss is the
        mean of `terms` over all `N` unlabeled images (not over the kept ones).

    Examples:
        >>> import numpy as np
        >>> terms, mask = fixmatch(np.array([[9.0, 0.0], [0.1, 0.0]]), np.array([[0.0, 0.0], [0.0, 0.0]]))
        >>> mask.numpy().tolist(), [round(float(term), 4) for term in terms.numpy()]
        ([1.0, 0.0], [0.6931, 0.0])
    """
    weak = tf.stop_gradient(tf.nn.softmax(tf.cast(weak_logits, tf.float32), axis=-1))
    mask = tf.cast(tf.reduce_max(weak, axis=-1) >= threshold, tf.float32)
    pseudo_labels = tf.argmax(weak, axis=-1)
    cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=pseudo_labels, logits=tf.cast(strong_logits, tf.float32)
    )
    return mask * cross_entropy, mask


def distillation(student_logits, teacher_logits, temperature: float = 1.0):
    """SimCLRv2's distillation terms, eq. 3:
    `-sum_y P_T(y | x; tau) log P_S(y | x; tau)`, both softmaxes at `temperature`,
    with no gradient to the teacher.

    Args:
        student_logits: `(N, C)` the student's logits.
        teacher_logits: `(N, C)` the teacher's logits on the same images.
        temperature: tau (SimCLRv2 found 1 best when the unlabeled images are all used).

    Returns:
        `(N,)` float32: each image's cross-entropy against the teacher's soft labels.

    Examples:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 0.0, -1.0]])
        >>> float(distillation(logits, logits).numpy()[0]) > 0  # the teacher's entropy: not 0
        True
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: {temperature!r}")
    teacher = tf.stop_gradient(tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / temperature, axis=-1))
    log_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / temperature, axis=-1)
    return -tf.reduce_sum(teacher * log_student, axis=-1)


def freematch_mask(weak_logits, time_p, p_model):
    """FreeMatch's self-adaptive mask (Wang et al. 2023, eq. 6-8): an unlabeled image keeps
    its pseudo-label where its confidence reaches its class's threshold
    `tau_t(c) = MaxNorm(p_model)(c) * time_p`.

    Args:
        weak_logits: `(N, C)` logits of the weakly augmented unlabeled images.
        time_p: the global threshold tau_t (an EMA of the mean confidence).
        p_model: `(C,)` the local thresholds' EMA of the mean class probabilities.

    Returns:
        `(N,)` float32: 1 where the pseudo-label is kept.

    Examples:
        >>> import numpy as np
        >>> freematch_mask(np.log([[0.7, 0.3], [0.4, 0.6]]), 0.8, np.array([1.0, 0.5])).numpy().tolist()
        [0.0, 1.0]
    """
    probabilities = tf.nn.softmax(tf.cast(weak_logits, tf.float32), axis=-1)
    p_model = tf.cast(p_model, tf.float32)
    thresholds = tf.cast(time_p, tf.float32) * p_model / tf.reduce_max(p_model)
    confidence, label = tf.reduce_max(probabilities, axis=-1), tf.argmax(probabilities, axis=-1)
    return tf.cast(confidence >= tf.gather(thresholds, label), tf.float32)


def freematch_fairness(mean_probability, strong_histogram, p_model, label_hist):
    """FreeMatch's self-adaptive fairness term (eq. 9-10), as USB computes it:
    `sum_c SumNorm(p_model / label_hist)(c) * log SumNorm(mean_probability / strong_histogram)(c)`,
    i.e. minus the cross-entropy of the two normalised distributions; classes missing from
    a histogram weigh 0 (USB's `replace_inf_to_zero`). Added to the loss with a small
    weight (USB: 0.01).

    Args:
        mean_probability: `(C,)` the mean softmax of the strong views of the kept images.
        strong_histogram: `(C,)` the share of each class among their arg-maxes.
        p_model: `(C,)` the EMA of the mean class probabilities of the weak views.
        label_hist: `(C,)` the EMA of the weak views' arg-max histogram.

    Returns:
        A float32 scalar.
    """

    def sum_normalised(values, histogram):
        histogram = tf.cast(histogram, tf.float32)
        scaled = tf.cast(values, tf.float32) * tf.math.divide_no_nan(tf.ones_like(histogram), histogram)
        return scaled / tf.reduce_sum(scaled)

    target = tf.stop_gradient(sum_normalised(p_model, label_hist))
    return tf.reduce_sum(target * tf.math.log(sum_normalised(mean_probability, strong_histogram) + 1e-12))


def flexmatch_thresholds(selected, num_classes: int, threshold: float = 0.95):
    """FlexMatch's class-wise thresholds (Zhang et al. 2021, eq. 6-7, with the threshold
    warm-up and the convex mapping): each class's learning effect `sigma(c)`, the number of
    unlabeled images whose latest confident prediction was `c`, normalised by the largest
    count among the classes and the images not predicted confidently yet (`-1`), mapped to
    `threshold * beta / (2 - beta)`.

    Args:
        selected: `(N,)` int, each unlabeled image's latest confident prediction, or -1.
        num_classes: C.
        threshold: the fixed threshold tau (0.95).

    Returns:
        `(C,)` float32 thresholds: 0 for every class before any image was confident.

    Examples:
        >>> [round(float(t), 3) for t in flexmatch_thresholds([0, 0, 1, -1], 2, threshold=0.9)]
        [0.9, 0.3]
    """
    counts = tf.math.bincount(tf.cast(selected, tf.int32) + 1, minlength=num_classes + 1, maxlength=num_classes + 1)
    counts = tf.cast(counts, tf.float32)
    beta = counts[1:] / tf.reduce_max(counts)
    return threshold * beta / (2.0 - beta)
