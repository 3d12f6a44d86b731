"""Progress on long work, as a user watches it: a fine-tuning's steps and ETA
(`StepProgress`), a time-budgeted pretraining's minutes (`BudgetProgress`), and the images
an embedding has gone through (`ImagesDone`); in place on a terminal or in a notebook,
whole lines in a log (`kssl.runtime.terminal`)."""

from __future__ import annotations

import math
import sys
import time

import keras
import numpy as np

from kssl.training.callbacks import TimeBudget


class BudgetProgress(keras.callbacks.Callback):
    """A progress line for training on a `TimeBudget`, where Keras' bar has no total.

    Shows the minutes elapsed and left, the step reached, and the steps the budget will
    give at the speed measured so far (updated as it is known), with the running means
    of the metrics. In a terminal it rewrites one line twice a second; elsewhere (a log
    file, a notebook's captured output) it prints a line at every tenth of the budget.

    Examples:
        >>> progress = BudgetProgress(TimeBudget(minutes=15))
        >>> progress.line(elapsed=270.0, steps=1287, steps_per_second=4.74, logs={"loss": 5.2134})
        '[######..............]  4:30 of 15:00, 10:30 left | step 1,287 of ~4,273 | 4.7 steps/s | loss 5.213'
    """

    def __init__(self, budget: TimeBudget, initial_step: int = 0, stream=None, width: int = 20):
        super().__init__()
        self.budget = budget
        self.initial_step = int(initial_step)
        self.stream = stream or sys.stdout
        self.width = width
        self.interactive = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.5 if self.interactive else budget.seconds / 10
        self._last_shown = None
        self._logs = {}
        self._raw_logs = {}

    def line(self, elapsed: float, steps: int, steps_per_second: float, logs: dict) -> str:
        seconds = self.budget.seconds
        done = int(self.width * min(elapsed / seconds, 1.0))
        bar = "#" * done + "." * (self.width - done)
        left = max(0.0, seconds - elapsed)
        text = f"[{bar}] {_minutes(elapsed):>5} of {_minutes(seconds)}, {_minutes(left)} left | step {steps:,}"
        if math.isfinite(steps_per_second) and steps_per_second > 0:
            text += f" of ~{int(steps + left * steps_per_second):,} | {steps_per_second:.1f} steps/s"
        return _with_metrics(text, logs)

    def _show(self, final=False):
        self._logs = {name: float(np.ravel(value)[0]) for name, value in self._raw_logs.items()}
        text = self.line(
            self.budget.elapsed,
            self.initial_step + self.budget.steps,
            self.budget.steady_steps_per_second(),
            self._logs,
        )
        if self.interactive:
            self.stream.write("\r" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self._last_shown = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        # Keep the logs as they are; read them (a wait for the device) only to show them.
        self._raw_logs = logs or {}
        if self._last_shown is None or time.perf_counter() - self._last_shown >= self.interval:
            self._show()

    def on_train_end(self, logs=None):
        self._show(final=True)


class StepProgress(keras.callbacks.Callback):
    """Progress as whole lines, for output that is not a terminal (a log file, a pipe).

    Prints a line each time another `every_fraction` of the steps is done or
    `every_seconds` have passed, whichever comes first, and one at the end: the step, the
    time elapsed and left (at the speed since the first step, which includes tracing), and
    the running means of the metrics (validation ones at the end). `kssl.pretrain` and
    `kssl.finetune` use it in place of Keras' bar when standard output is not a terminal.

    Examples:
        >>> progress = StepProgress(total_steps=586)
        >>> progress.line(step=120, elapsed=45.0, steps_per_second=2.7, logs={"loss": 1.2345})
        'step 120 of 586 (20%) | 0:45 elapsed, ~2:53 left | 2.7 steps/s | loss 1.234'
    """

    def __init__(self, total_steps: int, initial_step: int = 0, stream=None, every_fraction: float = 0.1,
                 every_seconds: float = 30.0):  # fmt: skip
        super().__init__()
        self.total_steps = int(total_steps)
        self.initial_step = int(initial_step)
        self.stream = stream or sys.stdout
        self.every_steps = max(1, int(every_fraction * total_steps))
        self.every_seconds = every_seconds
        self._raw_logs = {}

    def line(self, step: int, elapsed: float, steps_per_second: float, logs: dict) -> str:
        share = f"{100 * step // self.total_steps}%"
        text = f"step {step:,} of {self.total_steps:,} ({share}) | {_minutes(elapsed)} elapsed"
        if step < self.total_steps and math.isfinite(steps_per_second) and steps_per_second > 0:
            text += f", ~{_minutes((self.total_steps - step) / steps_per_second)} left"
        if math.isfinite(steps_per_second) and steps_per_second > 0:
            text += f" | {steps_per_second:.1f} steps/s"
        return _with_metrics(text, logs)

    def on_train_begin(self, logs=None):
        self._start = self._shown_time = time.perf_counter()
        self._first = None  # (step, time) at the end of the first step: the speed after tracing
        self._step = self._shown_step = self.initial_step

    def _rate(self, now):
        """Steps per second since the first step ended (tracing excluded), or since the start."""
        if self._first is not None and self._step > self._first[0]:
            return (self._step - self._first[0]) / max(now - self._first[1], 1e-9)
        return (self._step - self.initial_step) / max(now - self._start, 1e-9)

    def _show(self, logs):
        now = time.perf_counter()
        self.stream.write(self.line(self._step, now - self._start, self._rate(now), logs) + "\n")
        self.stream.flush()
        self._shown_time, self._shown_step = now, self._step

    def on_train_batch_end(self, batch, logs=None):
        # Keep the logs as they are; read them (a wait for the device) only to show them.
        self._raw_logs, self._step = logs or {}, self.initial_step + batch + 1
        if self._first is None:
            self._first = (self._step, time.perf_counter())
        due = self._step - self._shown_step >= self.every_steps
        if self._step < self.total_steps and (due or time.perf_counter() - self._shown_time >= self.every_seconds):
            self._show(self._raw_logs)

    def on_epoch_end(self, epoch, logs=None):
        self._raw_logs = logs or self._raw_logs  # with the validation metrics, if any

    def on_train_end(self, logs=None):
        if self._step > self.initial_step:
            self._show(self._raw_logs)


def _with_metrics(text: str, logs: dict) -> str:
    """A progress line's `text`, then the logs as `name 0.123` (scalars or one-element arrays)."""
    metrics = "  ".join(f"{name} {float(np.ravel(value)[0]):.3f}" for name, value in logs.items())
    return f"{text} | {metrics}" if metrics else text


def _minutes(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class ImagesDone(keras.callbacks.Callback):
    """A progress bar (tqdm, on stderr) of the images `predict` has gone through, `batch_size` a step."""

    def __init__(self, total: int, batch_size: int, description: str = "embedding"):
        super().__init__()
        self.total, self.batch_size, self.description = int(total), int(batch_size), description
        self.bar = None

    def on_predict_begin(self, logs=None):
        from kssl.runtime.terminal import progress_bar

        self.bar = progress_bar(self.total, self.description)

    def on_predict_batch_end(self, batch, logs=None):
        self.bar.update(min(self.batch_size, self.total - self.bar.n))

    def on_predict_end(self, logs=None):
        self.bar.close()
