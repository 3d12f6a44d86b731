"""Keras batch normalization whose training step runs TensorFlow's fused kernel."""

from __future__ import annotations

import keras
import tensorflow as tf

# tf.nn.fused_batch_norm raises smaller epsilons to this (cuDNN's lower bound).
_FUSED_MIN_EPSILON = 1.001e-5


@keras.saving.register_keras_serializable(package="kssl")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Keras 3 normalises with separate moments, subtract, scale and shift ops; TensorFlow's
    `FusedBatchNormV3` does the forward and backward pass in one kernel each. On this
    project's 2-core CPU the fused layer made a quarter-width ResNet-18 training step
    (forward + backward, 512 views of 24 px) 1.23-1.35x faster than Keras' layer
    (`benchmarks/batch_norm_speed.py`, BENCHMARKS.md), which is why kssl's encoders use it.

    Same arguments, weights and maths as the Keras layer; only the training-mode path on
    4D channels-last inputs changes. It falls back to the Keras implementation for
    inference, masks, batch renormalisation and other layouts. With `synchronized=True`
    under a strategy with several replicas, the statistics of the global batch are
    all-reduced in one collective per layer (`_synchronized_call`), where Keras' own
    synchronized layer issues several. The moving variance is updated with the biased batch variance,
    as Keras does. The fused kernel raises `epsilon` to at least 1.001e-5.

    Examples:
        >>> import numpy as np
        >>> layer = FusedBatchNormalization(momentum=0.9)
        >>> x = np.random.default_rng(0).normal(3.0, 2.0, (8, 4, 4, 2)).astype("float32")
        >>> y = layer(x, training=True)
        >>> bool(abs(float(np.mean(y))) < 1e-5), np.round(layer.moving_mean.numpy(), 1).shape
        (True, (2,))
    """

    def call(self, inputs, training=None, mask=None):
        if training and self.trainable and self._synchronizes(inputs, mask):
            return self._synchronized_call(inputs)
        if not (training and self.trainable) or not self._can_fuse(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        # float16/bfloat16 inputs go in as they are: the kernel accumulates statistics in
        # float32 (what Keras gets by casting), and skipping the casts made a
        # mixed_bfloat16 encoder step another ~1.15x faster on this CPU.
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, tf.float32)
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=max(self.epsilon, _FUSED_MIN_EPSILON), data_format="NHWC", is_training=True
        )
        # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)

    def _synchronizes(self, inputs, mask):
        """Whether the batch statistics must be all-reduced across replicas here."""
        if not self.synchronized or mask is not None or self.renorm or self.axis not in (-1, len(inputs.shape) - 1):
            return False
        replica_context = tf.distribute.get_replica_context()
        return replica_context is not None and replica_context.num_replicas_in_sync > 1

    def _synchronized_call(self, inputs):
        """Batch norm over the global batch with one all-reduce for the layer.

        Keras' synchronized layer all-reduces the sums, the sums of squares and a count
        of elements (from a `ones_like` the size of the activations) separately, after
        casting float16 to float32. Here each replica's per-channel sums and sums of
        squares and its element count (from the input's shape) are concatenated into one
        vector and summed across replicas by one collective; the normalisation is then
        one multiply-add per element in the input's dtype. The statistics are Keras'
        (mean = sum / count, biased variance = sum of squares / count - mean^2), and the
        gradient flows through the all-reduce to every replica's inputs.
        """
        from kssl.runtime.distribute import global_sum

        x32 = tf.cast(inputs, tf.float32)
        reduce_axes = list(range(len(inputs.shape) - 1))
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        local = tf.concat(
            [tf.reduce_sum(x32, reduce_axes), tf.reduce_sum(tf.square(x32), reduce_axes), count[None]], axis=0
        )
        channels = inputs.shape[-1]
        total = global_sum(local)
        sums, squares, global_count = total[:channels], total[channels : 2 * channels], total[-1]
        mean = sums / global_count
        variance = tf.maximum(squares / global_count - tf.square(mean), 0.0)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        scale = gamma * tf.math.rsqrt(variance + self.epsilon)
        offset = beta - mean * scale
        self.moving_mean.assign(self.moving_mean * self.momentum + tf.stop_gradient(mean) * (1.0 - self.momentum))
        self.moving_variance.assign(
            self.moving_variance * self.momentum + tf.stop_gradient(variance) * (1.0 - self.momentum)
        )
        outputs = inputs * tf.cast(scale, inputs.dtype) + tf.cast(offset, inputs.dtype)
        return tf.cast(outputs, self.compute_dtype)

    def _can_fuse(self, inputs, mask):
        if mask is not None or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return False
        if inputs.dtype not in (tf.float16, tf.bfloat16, tf.float32):
            return False
        if self.synchronized:
            replica_context = tf.distribute.get_replica_context()
            if replica_context is None or replica_context.num_replicas_in_sync > 1:
                return False
        return True
