"""Learning-rate schedules (the recipes that use them are in `kssl.training.recipes`)."""

from __future__ import annotations

import keras


def warmup_cosine(peak_learning_rate: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0):
    """Linear warmup from 0 to `peak_learning_rate`, then cosine decay to `final_fraction` of it.

    This is Keras' own `CosineDecay` with its `warmup_target`/`warmup_steps`.

    Examples:
        >>> schedule = warmup_cosine(0.1, total_steps=100, warmup_steps=10)
        >>> [round(float(schedule(s)), 4) for s in (0, 5, 10, 55, 100)]
        [0.0, 0.05, 0.1, 0.05, 0.0]
    """
    if not peak_learning_rate > 0:
        raise ValueError(f"peak_learning_rate must be > 0. Received: {peak_learning_rate!r}")
    if not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer. Received: {total_steps!r}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"warmup_steps must be in [0, total_steps). Received: {warmup_steps!r}")
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup_steps else peak_learning_rate,
        decay_steps=total_steps - warmup_steps,
        alpha=final_fraction,
        warmup_target=peak_learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
