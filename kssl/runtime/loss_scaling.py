"""Dynamic loss scaling that decides once for all replicas (`mixed_float16`).

Keras' `LossScaleOptimizer` decides whether a step's gradients are finite from each
replica's *local* gradients, and under `MirroredStrategy` takes the first replica's
answer: an overflow on another replica only is then summed into the update, leaving
inf/NaN weights for good and the scale unchanged (reproduced on two logical CPU devices
in `tests/runtime/test_loss_scaling.py`). `GlobalLossScaleOptimizer` all-reduces the "all
finite" flag (a sum of the replicas that overflowed), so every replica skips the step and halves
the scale together. kssl's models use it for `mixed_float16` in `compile`.

Examples:
    >>> import keras
    >>> optimizer = GlobalLossScaleOptimizer(keras.optimizers.SGD(0.1))
    >>> isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    True
"""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kssl")
class GlobalLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """`keras.optimizers.LossScaleOptimizer` whose finiteness check is global across replicas."""

    def check_finite(self, grads):
        finite = super().check_finite(grads)
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # The number of replicas with a non-finite gradient (ReduceOp has no MIN).
            not_finite = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
            finite = not_finite < 0.5
        return finite


def loss_scaled(optimizer, dtype_policy):
    """`optimizer` wrapped in a `GlobalLossScaleOptimizer` when `dtype_policy` is
    `mixed_float16` (where Keras would wrap it in its own), else as it is."""
    optimizer = keras.optimizers.get(optimizer)
    name = getattr(dtype_policy, "name", dtype_policy)
    if name != "mixed_float16" or isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return optimizer
    return GlobalLossScaleOptimizer(optimizer, name="loss_scale_optimizer")
