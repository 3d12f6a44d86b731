"""Keras callbacks: training on a wall-clock budget, its progress, its curve, and a stop on divergence."""

from __future__ import annotations

import contextlib
import json
import math
import pathlib
import sys
import time

import keras
import numpy as np

from kssl.atomic import atomic_file
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
        from kssl.distribute import max_over_workers

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

    Example:
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

    Example:
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


class BudgetProgress(keras.callbacks.Callback):
    """A progress line for training on a `TimeBudget`, where Keras' bar has no total.

    Shows the minutes elapsed and left, the step reached, and the steps the budget will
    give at the speed measured so far (updated as it is known), with the running means
    of the metrics. In a terminal it rewrites one line twice a second; elsewhere (a log
    file, a notebook's captured output) it prints a line at every tenth of the budget.

    Example:
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

    Example:
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
        from kssl.terminal import progress_bar

        self.bar = progress_bar(self.total, self.description)

    def on_predict_batch_end(self, batch, logs=None):
        self.bar.update(min(self.batch_size, self.total - self.bar.n))

    def on_predict_end(self, logs=None):
        self.bar.close()


def saved_points(path, start: int) -> tuple[list, dict]:
    """`(steps, {name: values})` of a curve saved by `save_points`, up to step `start`
    (where a resumed run goes on)."""
    saved = json.loads(pathlib.Path(path).read_text())
    kept = [i for i, step in enumerate(saved["steps"]) if step <= start]
    return [saved["steps"][i] for i in kept], {
        name: [values[i] for i in kept] for name, values in saved["logs"].items()
    }


def save_points(path, steps: list, logs: dict) -> None:
    """Writes a curve's points to the JSON file `path`, atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps({"steps": steps, "logs": logs}))


class StepHistory(keras.callbacks.Callback):
    """Per-interval metric values within one long epoch, for training curves.

    Keras reports running means since the epoch began, so over one long epoch its logs
    flatten out and hide late progress. Every `every` steps this records the mean over
    just those steps, recovered exactly from consecutive running means
    (`(m_t * t - m_s * s) / (t - s)`): `steps` and `logs` (metric name -> values).
    Steps count from the optimizer's step at the start of `fit`, so a resumed run's
    curve goes on where its checkpoint was.

    Args:
        every: record every this many steps (and at the end of training).
        path: a JSON file the curve is saved to at every record (atomically) and read
            back from at the start of training, keeping the points up to the step the
            run resumes from: with a checkpoint folder's path, the curve of a run killed
            and resumed is the whole run's.
    """

    def __init__(self, every: int = 5, path=None):
        super().__init__()
        self.every = max(1, int(every))
        self.path = None if path is None else pathlib.Path(path)
        self.steps: list[int] = []
        self.logs: dict[str, list[float]] = {}
        self._start = 0
        self._step = 0
        self._previous = (0, {})

    @property
    def curves(self) -> dict[str, list[float]]:
        """`logs` under the name `kssl.monitor.KNNMonitor` gives its own (metric name -> values)."""
        return self.logs

    def on_train_begin(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None) if self._model_is_set() else None
        self._start = int(optimizer.iterations.numpy()) if optimizer is not None else 0
        if self.path is not None and self.path.exists():
            self.steps, self.logs = saved_points(self.path, self._start)
        self._step = 0
        self._previous = (0, {})
        self._latest = (0, {})

    def _model_is_set(self) -> bool:
        try:
            return self.model is not None
        except AttributeError:  # not attached to a model (called by hand)
            return False

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        # Read only at the end (no transfer per step); a copy, as later callbacks (a
        # `KNNMonitor`) may add to this step's logs.
        self._latest = (self._step, dict(logs or {}))
        if self._step % self.every == 0:
            self._record(logs or {})

    def on_train_end(self, logs=None):
        # The steps after the last full interval (all of them in a run of fewer than
        # `every` steps) are one more, shorter interval: the curve ends where training did.
        step, running = getattr(self, "_latest", (0, {}))
        if step > self._previous[0]:
            self._step = step
            self._record(running)

    def _record(self, logs):
        running = {name: float(np.ravel(value)[0]) for name, value in logs.items()}
        last_step, last = self._previous
        for name, mean in running.items():
            total = mean * self._step - last.get(name, 0.0) * last_step
            self.logs.setdefault(name, []).append(total / (self._step - last_step))
        self.steps.append(self._start + self._step)
        self._previous = (self._step, running)
        if self.path is not None:
            save_points(self.path, self.steps, self.logs)


class ValidationCurve(keras.callbacks.Callback):
    """The accuracy on held-out labeled images as a fine-tuning goes, for the curves that
    show whether it holds still: checked `points` times at even steps (and at the end), at
    the optimizer's step; `steps` and `curves` (`{"validation_accuracy": [...]}`), like
    `StepHistory`, so `kssl.tensorboard_logs.TensorBoardScalars` writes them too. The model
    scored is the fitted one's `classifier` (a `SemiSupervisedTraining`'s) or the model itself.

    Args:
        batches: the held-out images' labeled batches (`kssl.data.pipeline.labeled_batches`).
        points: how many checks over the run.
        path: a JSON file the points are saved to and read back from, as `StepHistory`'s,
            so a resumed run's curve is the whole run's.

    Example:
    >>> import kssl
    >>> from kssl.data.pipeline import labeled_batches
    >>> digits = kssl.load_digits(image_size=8)
    >>> curve = ValidationCurve(labeled_batches(digits.subset(range(40, 60)), 20), points=2)
    >>> _ = kssl.finetune(kssl.conv4(width=0.125, image_size=8), digits.subset(range(40)), epochs=4,
    ...                   batch_size=20, callbacks=[curve], verbose=0)
    >>> curve.steps, len(curve.curves["validation_accuracy"])
    ([4, 8], 2)
    """

    def __init__(self, batches, points: int = 10, path=None):
        super().__init__()
        self.batches, self.points = batches, max(1, int(points))
        self.path = None if path is None else pathlib.Path(path)
        self.steps: list[int] = []
        self.curves: dict[str, list[float]] = {"validation_accuracy": []}

    def on_train_begin(self, logs=None):
        self._start = int(self.model.optimizer.iterations.numpy())
        if self.path is not None and self.path.exists():
            self.steps, self.curves = saved_points(self.path, self._start)
        self._step, self._scored = 0, 0
        self.every = max(1, (self.params.get("steps") or 1) // self.points)

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step % self.every == 0:
            self._score()

    def on_train_end(self, logs=None):
        if self._step > self._scored:
            self._score()

    def _score(self):
        classifier = getattr(self.model, "classifier", self.model)
        accuracy = classifier.evaluate(self.batches, verbose=0, return_dict=True)["accuracy"]
        self.steps.append(self._start + self._step)
        self.curves["validation_accuracy"].append(float(accuracy))
        self._scored = self._step
        if self.path is not None:
            save_points(self.path, self.steps, self.curves)
