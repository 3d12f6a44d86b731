"""DINO's self-distillation loss (Caron et al. 2021, https://arxiv.org/abs/2104.14294):
a student matches a momentum teacher's centred, sharpened distribution over K
prototypes, across views (every teacher global crop against every student crop of
another view)."""

from __future__ import annotations

import tensorflow as tf


def dino(student_logits, teacher_logits, center, student_temperature: float = 0.1, teacher_temperature: float = 0.04):
    """DINO's loss per image (Algorithm 1 and the reference `DINOLoss`, averaged over pairs).

    For every teacher global crop `i` and every student crop `j != i`:
    `H(P_t(i), P_s(j)) = -sum_k softmax((t_i - center) / tau_t)_k * log softmax(s_j / tau_s)_k`,
    with no gradient to the teacher; the terms are averaged over the pairs.

    Args:
        student_logits: a list of `[N, K]` tensors, one per crop, the global crops first.
        teacher_logits: a list of `[N, K]` tensors, one per global crop (the teacher sees
            only those), in the same order as the student's first ones.
        center: `[K]` the teacher's centre (an EMA of its batch means; no gradient).
        student_temperature: tau_s (0.1).
        teacher_temperature: tau_t (0.04 warmed to 0.07 in the paper's schedule).

    Returns:
        `(N,)` float32: each image's loss; the paper's loss is its mean over the batch.

    Examples:
        >>> import numpy as np
        >>> logits = [np.eye(3, dtype="float32")[[0, 1]] * 10] * 2
        >>> terms = dino(logits, logits, np.zeros(3, "float32"))
        >>> terms.shape, bool(terms.numpy().max() < 1e-3)  # confident and in agreement: near 0
        (TensorShape([2]), True)
    """
    if len(teacher_logits) < 1 or len(student_logits) < 2:
        raise ValueError(
            f"dino needs at least 1 teacher crop and 2 student crops. Received: {len(teacher_logits)} teacher and "
            f"{len(student_logits)} student crops."
        )
    center = tf.stop_gradient(tf.cast(center, tf.float32))
    teachers = [
        tf.stop_gradient(tf.nn.softmax((tf.cast(t, tf.float32) - center) / teacher_temperature, axis=-1))
        for t in teacher_logits
    ]
    students = [tf.nn.log_softmax(tf.cast(s, tf.float32) / student_temperature, axis=-1) for s in student_logits]
    terms = [
        -tf.reduce_sum(teacher * student, axis=-1)
        for i, teacher in enumerate(teachers)
        for j, student in enumerate(students)
        if i != j
    ]
    return tf.add_n(terms) / float(len(terms))
