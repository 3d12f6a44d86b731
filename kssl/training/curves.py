"""A run's curves as it trains, saved beside its checkpoints so a resumed run goes on from
them: the training metrics every few steps (`StepHistory`) and the accuracy on held-out
labels (`ValidationCurve`)."""

from __future__ import annotations

import json
import pathlib

import keras
import numpy as np

from kssl.outputs.atomic import atomic_file


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
        """`logs` under the name `kssl.evaluation.monitor.KNNMonitor` gives its own (metric name -> values)."""
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
    `StepHistory`, so `kssl.outputs.tensorboard_logs.TensorBoardScalars` writes them too. The model
    scored is the fitted one's `classifier` (a `SemiSupervisedTraining`'s) or the model itself.

    Args:
        batches: the held-out images' labeled batches (`kssl.data.pipeline.labeled_batches`).
        points: how many checks over the run.
        path: a JSON file the points are saved to and read back from, as `StepHistory`'s,
            so a resumed run's curve is the whole run's.

    Examples:
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
