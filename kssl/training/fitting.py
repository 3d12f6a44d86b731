"""Fitting a kssl model for a number of steps or a time budget: resumable from
checkpoints, stopped on divergence, with progress fit for a terminal or a log; and the
checks and copies that put a model in a strategy's scope.

Both `pretrain` and `finetune` run `model.fit` over one long epoch of a repeated dataset:
each epoch boundary cost about 0.45 s on a 2-core CPU even with kssl's in-memory pipelines
(epoch-end callbacks, a new iterator, prefetch warm-up; see BENCHMARKS.md), and the
progress bar of one long epoch still shows steps, loss and ETA.
"""

from __future__ import annotations

import sys

import keras

from kssl.runtime.quiet import quiet_keras_step_retracing
from kssl.runtime.terminal import live_display
from kssl.training.callbacks import StopOnDivergence, TrainingProgress
from kssl.training.checkpointing import StepCheckpoint
from kssl.training.progress import BudgetProgress, StepProgress

quiet_keras_step_retracing()  # each new model traces its own step once: not retracing


def check_steps_per_execution(value, strategy):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"steps_per_execution must be a positive integer. Received: {value!r}")
    if value > 1 and strategy.num_replicas_in_sync > 1:
        # Keras 3's multi-step loop feeds no value to a placeholder of its `tf.cond` under
        # MirroredStrategy ("You must feed a value for placeholder tensor 'while/cond/...'",
        # keras-team/keras#19246, open; reproduced with a plain Dense model, Keras 3.15).
        raise ValueError(
            f"steps_per_execution={value} does not run on {strategy.num_replicas_in_sync} replicas in Keras 3 "
            "(keras-team/keras#19246). Use steps_per_execution=1 with a multi-replica strategy."
        )
    return value


def check_split(batch_size, strategy):
    # Keras' standard train step (used by Classifier) averages per-replica mean losses,
    # which is the global mean only when every replica gets as many images.
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(
            f"batch_size={batch_size} is not divisible by the {replicas} replicas of the strategy; "
            f"use a multiple of {replicas} so every replica gets the same number of images."
        )


def copy_model(model):
    """A new model with the same architecture and weights (variables created in the current scope)."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def in_scope(encoder, strategy):
    """`encoder` itself if it was built under `strategy`, else a copy built in its scope.

    Call outside `strategy.scope()`: inside it, every model reports that strategy.
    """
    if encoder.distribute_strategy is strategy:
        return encoder
    with strategy.scope():
        return copy_model(encoder)


def copy_in_scope(encoder, strategy):
    """A copy of `encoder` built in `strategy`'s scope (the original stays as it is)."""
    with strategy.scope():
        return copy_model(encoder)


def fit_steps(model, data, total_steps, checkpoint_dir, every_steps, callbacks, verbose, budget=None, peak_rate=None,
         **fit_kwargs):  # fmt: skip
    """Fits for `total_steps` (or until `budget` stops it), resuming from `checkpoint_dir`;
    a loss that is no longer finite raises `DivergedError` before anything is saved
    (`StopOnDivergence`, first of the callbacks; `peak_rate` goes into its advice).

    Under a budget, Keras' progress bar (which has no total then) gives way to
    `BudgetProgress`: minutes elapsed and left, and an estimated number of steps.
    """
    done = 0
    if checkpoint_dir is not None:
        checkpoint = StepCheckpoint(checkpoint_dir, every_steps)
        done = checkpoint.restore(model)
        if budget is not None:
            budget.initial_elapsed = budget.agreed_elapsed = float(checkpoint.elapsed_seconds.numpy())
            checkpoint.budget = budget
        callbacks = [*callbacks, checkpoint]
    if budget is not None and budget.initial_elapsed >= budget.seconds:
        return None
    if total_steps is not None and done >= total_steps:
        return None
    if total_steps is not None and getattr(model, "training_progress", None) is not None:
        callbacks = [TrainingProgress(total_steps, initial_step=done), *callbacks]
    if budget is not None:
        callbacks = [budget, *callbacks]
        if verbose != 0:
            callbacks.append(BudgetProgress(budget, initial_step=done))
            verbose = 0
    elif verbose in (1, "auto") and total_steps is not None and not live_display(sys.stdout):
        # A log file or a pipe: whole lines instead of Keras' carriage-return bar.
        callbacks.append(StepProgress(total_steps, initial_step=done))
        verbose = 0
    advice = (
        "lower the learning rate"
        if peak_rate is None
        else (f"pass a smaller learning_rate (its peak was {peak_rate:.3g}; try {peak_rate / 3:.2g})")
    )
    callbacks = [StopOnDivergence(total_steps, advice), *callbacks]
    remaining = None if total_steps is None else total_steps - done
    return model.fit(
        data(done),
        epochs=1,
        steps_per_epoch=remaining,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,
        **fit_kwargs,
    )
