"""Learning-rate schedules and optimizer defaults for pretraining."""

from __future__ import annotations

import keras


def warmup_cosine(peak_learning_rate: float, total_steps: int, warmup_steps: int = 0, final_fraction: float = 0.0):
    """Linear warmup from 0 to `peak_learning_rate`, then cosine decay to `final_fraction` of it.

    This is Keras' own `CosineDecay` with its `warmup_target`/`warmup_steps`.

    Example:
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


def pretraining_optimizer(total_steps: int, batch_size: int = 256, warmup_fraction: float = 0.05, name: str = "sgd"):
    """The optimizer kssl pretrains with by default.

    - `"sgd"`: SGD with Nesterov momentum 0.9, peak rate `0.3 * batch_size / 256`
      (SimCLR's linear scaling rule), weight decay 5e-4.
    - `"adamw"`: AdamW, peak rate `1e-3 * batch_size / 256`, weight decay 1e-4.

    Both warm up linearly over `warmup_fraction` of the steps and then decay on a
    cosine; batch norm and bias parameters are excluded from weight decay.
    """
    warmup = int(warmup_fraction * total_steps)
    if name == "sgd":
        schedule = warmup_cosine(0.3 * batch_size / 256, total_steps, warmup)
        optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True, weight_decay=5e-4)
    elif name == "adamw":
        schedule = warmup_cosine(1e-3 * batch_size / 256, total_steps, warmup)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adamw'. Received: {name!r}")
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    return optimizer
