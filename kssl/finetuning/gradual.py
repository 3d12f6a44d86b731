"""Gradual unfreezing: the head first, then one more stage every few epochs."""

from __future__ import annotations

import keras

from kssl.finetuning.base import FineTuningMode
from kssl.finetuning.stages import require_stages, set_unfrozen_stages


class GradualUnfreezing(FineTuningMode):
    """Trains the head alone, then unfreezes the last stage, then the one before it,
    one more every `every_epochs` epochs, and finally the layers outside the stages
    (the stem): after `len(stages) + 1` steps of the schedule the whole encoder trains.

    The optimizer is built for every variable the schedule will train, so unfreezing
    needs no new optimizer state; Keras retraces its train step when the set changes.
    Combine with `finetune(stage_decay=...)` for discriminative learning rates and with
    `l2_sp` as usual.

    Args:
        every_epochs: epochs between two unfreezings (default: the schedule ends at half
            of training, so the whole encoder trains for the second half).

    Reference:
        Howard & Ruder 2018, Universal Language Model Fine-tuning (ULMFiT),
        https://arxiv.org/abs/1801.06146.
    """

    def __init__(self, every_epochs: float | None = None):
        if every_epochs is not None and not every_epochs > 0:
            raise ValueError(f"every_epochs must be > 0. Received: every_epochs={every_epochs!r}")
        self.every_epochs = every_epochs

    def groups(self, encoder) -> list:
        """What trains after each unfreezing: [], {last}, {last, last-1}, ..., "all"."""
        stages = require_stages(encoder, "gradual")
        return [set(stages[len(stages) - count :]) for count in range(len(stages) + 1)] + ["all"]

    def unfreeze(self, encoder, count: int) -> None:
        """Applies the schedule's `count`-th step (0: the head only)."""
        groups = self.groups(encoder)
        group = groups[min(count, len(groups) - 1)]
        if group == set():
            encoder.trainable = False
        else:
            set_unfrozen_stages(encoder, group)

    def set_trainable(self, encoder):
        self.unfreeze(encoder, 0)

    def trainable_at_some_point(self, encoder):
        self.unfreeze(encoder, len(self.groups(encoder)))
        variables = list(encoder.trainable_weights)
        self.unfreeze(encoder, 0)
        return variables

    def every_steps(self, encoder, steps_per_epoch: int, total_steps: int) -> int:
        if self.every_epochs is not None:
            return max(1, round(self.every_epochs * steps_per_epoch))
        return max(1, total_steps // (2 * (len(self.groups(encoder)) - 1)))

    def callbacks(self, classifier, steps_per_epoch, total_steps):
        return [UnfreezingSchedule(self, self.every_steps(classifier.encoder, steps_per_epoch, total_steps))]

    def get_config(self):
        return {"every_epochs": self.every_epochs}


class UnfreezingSchedule(keras.callbacks.Callback):
    """Applies `GradualUnfreezing` at the training step reached (a resumed run too)."""

    def __init__(self, schedule: GradualUnfreezing, every_steps: int):
        super().__init__()
        self.schedule = schedule
        self.every_steps = every_steps
        self.applied = None

    def on_train_begin(self, logs=None):
        self.step = int(self.model.optimizer.iterations.numpy())  # read once, not every step
        self._apply()

    def on_train_batch_begin(self, batch, logs=None):
        self._apply()
        self.step += 1

    def _apply(self):
        count = self.step // self.every_steps
        if count != self.applied:
            self.schedule.unfreeze(self.model.encoder, count)
            self.model.make_train_function(force=True)  # the trainable set changed: retrace
            self.applied = count
