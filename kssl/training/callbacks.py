"""Keras callbacks: training on a wall-clock budget, its progress, its curve, and a stop on divergence."""

from __future__ import annotations

import contextlib
import math
import time

import keras

from kssl.errors import DivergedError


class TimeBudget(keras.callbacks.Callback):
    """Stops `fit` after `minutes` of wall-clock time and, optionally, drives the learning rate.

    With `peak_learning_rate`, the rate follows a linear warmup and a cosine decay over
    the *fraction of the budget elapsed*, not over a step count, so the schedule ends
    at the end of the budget whatever speed the machine runs at. The optimizer must
    then be compiled with a plain float learning rate (a variable), not a schedule.

    Use it with one long epoch over a repeated dataset (`steps_per_epoch` large):
    `fit` stops at the first batch after the budget.

    A model with a `training_progress` variable (BYOL's momentum schedule) gets the
    fraction of the budget elapsed there before every step.

    Several workers (`MultiWorkerMirroredStrategy`) decide from one clock: before every
    step they agree on the largest elapsed time any of them measured, so all of them
    apply the same learning rate and stop after the same step.

    Examples:
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
        self.agreed_elapsed = self.initial_elapsed  # the elapsed time all workers agreed on last

    def learning_rate_at(self, fraction: float) -> float:
        if fraction < self.warmup_fraction:
            return self.peak_learning_rate * fraction / self.warmup_fraction
        progress = min(1.0, (fraction - self.warmup_fraction) / (1.0 - self.warmup_fraction))
        return self.peak_learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))

    @property
    def elapsed(self) -> float:
        """Seconds of the budget spent, by this process's clock."""
        return self.initial_elapsed + (0.0 if self.start is None else time.perf_counter() - self.start)

    @contextlib.contextmanager
    def paused(self):
        """Time spent inside this block is not charged to the budget (e.g. a benchmark's probes)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.start is not None:
                self.start += time.perf_counter() - began

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()
        self.steps = 0
        self.first_step_end = None

    def on_train_batch_begin(self, batch, logs=None):
        from kssl.runtime.distribute import max_over_workers

        self.agreed_elapsed = max_over_workers(self.model.distribute_strategy, self.elapsed)
        fraction = self.agreed_elapsed / self.seconds
        if fraction >= 1.0:
            self.model.stop_training = True
        if self.peak_learning_rate is not None:
            self.model.optimizer.learning_rate.assign(self.learning_rate_at(min(fraction, 1.0)))
        if getattr(self.model, "training_progress", None) is not None:
            self.model.training_progress.assign(min(fraction, 1.0))

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps == 1:
            self.first_step_end = time.perf_counter()

    def steady_steps_per_second(self) -> float:
        """Steps per second after the first step (which includes tracing the graph)."""
        if self.first_step_end is None or self.steps < 2:
            return float("nan")
        return (self.steps - 1) / (time.perf_counter() - self.first_step_end)


class StopOnDivergence(keras.callbacks.Callback):
    """Raises `kssl.errors.DivergedError` at the first step whose loss is not finite.

    Keras' `TerminateOnNaN` only sets `stop_training`: the step's later callbacks (a
    checkpoint) still run on the broken weights and `fit` returns as if it had ended. This
    one raises at once, naming the step, the learning rate then and `advice` (what to
    change), so no checkpoint or model of the diverged weights is written. `kssl.pretrain`
    and `kssl.finetune` put it first in their callbacks. It reads the loss the step
    already returned (one host read per execution of `steps_per_execution` steps).

    Examples:
        >>> import keras, numpy as np
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> model.compile(keras.optimizers.SGD(0.1), "mse")
        >>> x = np.full((8, 1), np.nan, "float32")
        >>> try:
        ...     model.fit(x, x, epochs=3, verbose=0, callbacks=[StopOnDivergence(total_steps=3)])
        ... except DivergedError as error:
        ...     print(str(error).split(";")[0])
        Training diverged: the loss was nan at step 1 of 3 (learning rate 0.1 then)
    """

    def __init__(self, total_steps: int | None = None, advice: str = "lower the learning rate"):
        super().__init__()
        self.total_steps = total_steps
        self.advice = advice

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        step = int(self.model.optimizer.iterations.numpy())
        of = "" if self.total_steps is None else f" of {self.total_steps}"
        rate = self.model.optimizer.learning_rate
        rate = float(rate(step) if callable(rate) else rate)  # a schedule or a variable
        raise DivergedError(
            f"Training diverged: the loss was {float(loss)} at step {step}{of} (learning rate {rate:.3g} then); "
            f"nothing of it is saved. To train, {self.advice}."
        )


class TrainingProgress(keras.callbacks.Callback):
    """Tells a model with schedules over the whole training how many steps it has.

    For methods whose schedules run over the whole training (BYOL's target momentum
    rises from 0.99 to 1): the model then reads the fraction done from
    `optimizer.iterations` inside each step (`SelfSupervisedModel.progress_before_step`),
    which stays exact with `steps_per_execution` and writes nothing to the device per
    step. `kssl.pretrain` adds it for step-counted training, and `TimeBudget` sets the
    progress from elapsed time instead. Without either, the progress stays where it is
    (0 for a new model), so the momentum stays at its base value. Pass it to your own
    `model.fit` (it does nothing for methods without such schedules); a resumed run's
    restored optimizer continues the count.

    Examples:
        >>> import kssl
        >>> model = kssl.BYOL(kssl.resnet(10, width=0.125, image_size=8))
        >>> callback = TrainingProgress(total_steps=8)
        >>> callback.set_model(model)
        >>> callback.on_train_begin()
        >>> model.progress_total_steps
        8
    """

    def __init__(self, total_steps: int, initial_step: int = 0):
        super().__init__()
        if not total_steps > 0:
            raise ValueError(f"total_steps must be > 0. Received: total_steps={total_steps!r}")
        self.total_steps = int(total_steps)
        self.initial_step = int(initial_step)  # kept for callers; the optimizer's count is used

    def on_train_begin(self, logs=None):
        if getattr(self.model, "training_progress", None) is None:
            return  # a method without schedules over the whole training
        if self.model.progress_total_steps != self.total_steps:
            self.model.progress_total_steps = self.total_steps
            self.model.make_train_function(force=True)  # a step traced with another total is dropped
