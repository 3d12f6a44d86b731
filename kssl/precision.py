"""Precision and compilation defaults, chosen per device type from measurements.

On this project's 2-core CPU (see BENCHMARKS.md) XLA made training slower and bfloat16
was not reliably faster for the small encoders used there, so CPUs default to float32
without XLA. GPUs default to `mixed_float16` with XLA, the usual fastest setting on
tensor-core GPUs (not measured here: no GPU was available).
"""

from __future__ import annotations

import keras

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def default_precision() -> str:
    return "mixed_float16" if has_gpu() else "float32"


def default_jit_compile() -> bool:
    return has_gpu()


def set_precision(precision: str | None = None) -> str:
    """Sets Keras' global dtype policy; call before building models. Returns the policy set.

    `mixed_float16` models get loss scaling automatically at `compile` (Keras wraps the
    optimizer in a `LossScaleOptimizer`); kssl computes losses and softmaxes in float32
    under every policy.

    Example:
    >>> set_precision("float32")
    'float32'
    """
    precision = precision or default_precision()
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}. Received: precision={precision!r}")
    keras.mixed_precision.set_global_policy(precision)
    return precision
