"""Resume after a crash: step checkpoints of a model, its optimizer and its progress.

Keras' `BackupAndRestore` resumes at epoch boundaries only, and kssl trains in one long
epoch, so kssl checkpoints every `every_steps` steps with `tf.train.CheckpointManager`
(atomic writes, the last two kept) and resumes at the step it reached: the recipes skip
the batches already seen, so a resumed run sees the same data, augmentations and
learning rates as an uninterrupted one.
"""

from __future__ import annotations

import logging
import pathlib

import keras
import tensorflow as tf

from kssl.errors import DataError

logger = logging.getLogger("kssl")


class StepCheckpoint(keras.callbacks.Callback):
    """Checkpoints `model`, `model.optimizer` and the step count; restores them with `restore()`.

    Args:
        directory: where checkpoints go (created if missing).
        every_steps: save after every this many training steps (and at the end).

    Example: train 3 steps with checkpoints, then restore them into a new model.
    >>> import tempfile, keras, numpy as np
    >>> def make_model():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    ...     model.compile(optimizer="sgd", loss="mse")
    ...     return model
    >>> folder = tempfile.mkdtemp()
    >>> trained = make_model()
    >>> _ = trained.fit(np.ones((6, 2)), np.ones((6, 1)), batch_size=2, verbose=0,
    ...                 callbacks=[StepCheckpoint(folder, every_steps=2)])
    >>> fresh = make_model()
    >>> StepCheckpoint(folder).restore(fresh)  # the steps already done
    3
    >>> bool(np.array_equal(fresh.get_weights()[0], trained.get_weights()[0]))
    True
    """

    def __init__(self, directory, every_steps: int = 100):
        super().__init__()
        if not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"every_steps must be a positive integer. Received: {every_steps!r}")
        self.directory = pathlib.Path(directory)
        self.every_steps = every_steps
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.elapsed_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False)
        self._manager = None
        self.budget = None

    def _checkpoint_manager(self, model):
        if self._manager is None:
            if not model.optimizer.built:
                with model.distribute_strategy.scope():  # slot variables belong to the model's strategy
                    model.optimizer.build(getattr(model, "optimized_variables", model.trainable_variables))
            # Flat lists of every variable, in creation order: tf.train.Checkpoint's
            # object graph misses some Keras sublayer state (measured: the batch-norm
            # moving statistics of layers held in nested lists), while `model.weights`
            # and `optimizer.variables` list everything Keras itself saves.
            checkpoint = tf.train.Checkpoint(
                model_weights=list(model.weights),
                optimizer_variables=list(model.optimizer.variables),
                step=self.step,
                elapsed_seconds=self.elapsed_seconds,
            )
            self._manager = tf.train.CheckpointManager(checkpoint, str(self.directory), max_to_keep=2)
        return self._manager

    def restore(self, model) -> int:
        """Restores the latest checkpoint into `model` (compiled); returns the steps already done.

        A checkpoint that cannot be read (a truncated or damaged file) gives way to the one
        before it, with a warning: a step recomputed is cheaper than a run lost. None
        readable is a `DataError` naming the folder.
        """
        manager = self._checkpoint_manager(model)
        failures = []
        for path in reversed(manager.checkpoints):  # the newest first
            try:
                manager.checkpoint.restore(path).assert_existing_objects_matched()
            except Exception as error:  # noqa: BLE001 - TensorFlow's reader raises many types (IndexError too)
                reason = str(error).strip().splitlines()[0][:200]
                failures.append(reason)
                logger.warning("Cannot read the checkpoint %s (%s); trying the one before it", path, reason)
                continue
            if failures:
                print(f"kssl: resuming from {path}: the newer checkpoint could not be read", flush=True)
            return int(self.step.numpy())
        if failures:
            raise DataError(
                f"None of the checkpoints in {str(self.directory)!r} can be read ({failures[0]}): they are damaged. "
                f"Delete {str(self.directory)!r} to start this training over."
            )
        return int(self.step.numpy())

    def _save(self):
        if self.budget is not None:
            self.elapsed_seconds.assign(self.budget.agreed_elapsed)  # the same on every worker
        self.step.assign(self._steps_done)
        self._checkpoint_manager(self.model).save(checkpoint_number=self._steps_done)
        self._saved_at = self._steps_done

    def on_train_begin(self, logs=None):
        # Steps are counted on the host, from Keras' step index: reading a device
        # variable every step would make each step wait for the device (a GPU stall).
        self._first = int(self.step.numpy())
        self._steps_done = self._saved_at = self._first

    def on_train_batch_end(self, batch, logs=None):
        # `batch` is the index of the last step run: with `steps_per_execution=k`, Keras
        # calls this once per k steps. Save at the first call at or past each multiple.
        self._steps_done = self._first + batch + 1
        if self._steps_done // self.every_steps > self._saved_at // self.every_steps:
            self._save()

    def on_train_end(self, logs=None):
        self._save()
