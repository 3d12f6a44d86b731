"""DINO's teacher centre: an EMA of the teacher's mean output over the global batch."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class Centre(keras.layers.Layer):
    """The centre `c` subtracted from the teacher's logits before its softmax (DINO, eq. 4):
    after every step, `c = m * c + (1 - m) * mean of the teacher's outputs`, the mean over
    the **global** batch (every replica's rows, every global crop), so all replicas keep
    the same centre and a step on N replicas equals one on one device.

    Args:
        dim: the number of prototypes K.
        momentum: m (the paper's 0.9).

    Examples:
        >>> import numpy as np
        >>> centre = Centre(3, momentum=0.5)
        >>> centre.update([np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]], "float32")])
        >>> centre.value.numpy().tolist()
        [0.5, 0.0, 0.0]
    """

    def __init__(self, dim, momentum=0.9, **kwargs):
        kwargs.setdefault("dtype", "float32")  # statistics of logits: float32 under mixed precision too
        super().__init__(**kwargs)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer. Received: dim={dim!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]. Received: momentum={momentum!r}")
        self.dim, self.momentum = dim, float(momentum)
        self.centre = self.add_weight(shape=(dim,), initializer="zeros", trainable=False, dtype="float32",
                                      name="centre")  # fmt: skip
        self.built = True

    @property
    def value(self):
        return tf.convert_to_tensor(self.centre)

    def call(self, logits):
        return tf.cast(logits, tf.float32) - self.value

    def update(self, teacher_logits) -> None:
        """Moves the centre towards the global batch mean of `teacher_logits` (a list of `[n, K]`)."""
        rows = tf.concat([tf.cast(t, tf.float32) for t in teacher_logits], axis=0)
        total = distribute.global_sum(tf.reduce_sum(rows, axis=0))
        count = distribute.global_sum(tf.cast(tf.shape(rows)[0], tf.float32))
        new = self.momentum * self.value + (1.0 - self.momentum) * total / count
        distribute.update_variables([self.centre], [new], lambda variable, value: variable.assign(value))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "momentum": self.momentum}
