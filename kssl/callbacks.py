"""Keras callbacks for training on a wall-clock budget."""

from __future__ import annotations

import math
import time

import keras
import numpy as np


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after `minutes` of wall-clock time and, optionally, drives the learning rate.

    With `peak_learning_rate`, the rate follows a linear warmup and a cosine decay over
    the *fraction of the budget elapsed*, not over a step count, so the schedule ends
    at the end of the budget whatever speed the machine runs at. The optimizer must
    then be compiled with a plain float learning rate (a variable), not a schedule.

    Use it with one long epoch over a repeated dataset (`steps_per_epoch` large):
    `fit` stops at the first batch after the budget.

    Example:
    >>> budget = TimeBudget(minutes=0.5, peak_learning_rate=0.3)
    >>> round(budget.learning_rate_at(0.5), 4)
    0.1624
    """

    def __init__(
        self,
        minutes: float,
        peak_learning_rate: float | None = None,
        warmup_fraction: float = 0.05,
        initial_elapsed: float = 0.0,
    ):
        super().__init__()
        if not minutes > 0:
            raise ValueError(f"minutes must be > 0. Received: minutes={minutes!r}")
        if not 0 <= warmup_fraction < 1:
            raise ValueError(f"warmup_fraction must be in [0, 1). Received: {warmup_fraction!r}")
        self.seconds = 60.0 * minutes
        self.peak_learning_rate = peak_learning_rate
        self.warmup_fraction = warmup_fraction
        self.start = None
        self.steps = 0
        self.first_step_end = None
        self.initial_elapsed = float(initial_elapsed)  # seconds already spent, when resuming

    def learning_rate_at(self, fraction: float) -> float:
        if fraction < self.warmup_fraction:
            return self.peak_learning_rate * fraction / self.warmup_fraction
        progress = min(1.0, (fraction - self.warmup_fraction) / (1.0 - self.warmup_fraction))
        return self.peak_learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    @property
    def elapsed(self) -> float:
        return self.initial_elapsed + (0.0 if self.start is None else time.perf_counter() - self.start)

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.steps = 0
        self.first_step_end = None

    def on_train_batch_begin(self, batch, logs=None):
        fraction = self.elapsed / self.seconds
        if fraction >= 1.0:
            self.model.stop_training = True
        if self.peak_learning_rate is not None:
            self.model.optimizer.learning_rate.assign(self.learning_rate_at(min(fraction, 1.0)))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.first_step_end = time.perf_counter()

    def steady_steps_per_second(self) -> float:
        """Steps per second after the first step (which includes tracing the graph)."""
        if self.first_step_end is None or self.steps < 2:
            return float("nan")
        return (self.steps - 1) / (time.perf_counter() - self.first_step_end)


class StepHistory(keras.callbacks.Callback):
    """Per-interval metric values within one long epoch, for training curves.

    Keras reports running means since the epoch began, so over one long epoch its logs
    flatten out and hide late progress. Every `every` steps this records the mean over
    just those steps, recovered exactly from consecutive running means
    (`(m_t * t - m_s * s) / (t - s)`): `steps` and `logs` (metric name -> values).
    """

    def __init__(self, every: int = 5):
        super().__init__()
        self.every = max(1, int(every))
        self.steps: list[int] = []
        self.logs: dict[str, list[float]] = {}
        self._step = 0
        self._previous = (0, {})

    def on_train_begin(self, logs=None):
        self._step = 0
        self._previous = (0, {})

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every:
            return
        running = {name: float(np.ravel(value)[0]) for name, value in (logs or {}).items()}
        last_step, last = self._previous
        for name, mean in running.items():
            total = mean * self._step - last.get(name, 0.0) * last_step
            self.logs.setdefault(name, []).append(total / (self._step - last_step))
        self.steps.append(self._step)
        self._previous = (self._step, running)
