"""Fine-tuning in one call, supervised or semi-supervised: `finetune`."""

from __future__ import annotations

import pathlib

import keras
import tensorflow as tf

from kssl import defaults
from kssl.data.pipeline import labeled_batches, semi_supervised_batches
from kssl.data.sources import ImageSet
from kssl.errors import InputError
from kssl.finetuning import MODES, check_mode
from kssl.finetuning.adversarial import AdversarialTraining
from kssl.finetuning.discriminative import LayerwiseAdam, stage_learning_rates
from kssl.models.classifier import Classifier
from kssl.runtime.cpu import warn_if_onednn_off
from kssl.runtime.distribute import distribute_batches
from kssl.runtime.precision import resolve_jit_compile
from kssl.semi_supervised.base import SemiSupervisedTraining
from kssl.training.fitting import check_split, check_steps_per_execution, copy_in_scope, fit_steps, in_scope
from kssl.training.schedules import warmup_cosine


def finetune(
    encoder: keras.Model,
    labeled_set: ImageSet,
    mode: str = "full",
    epochs: float = defaults.FINETUNE_EPOCHS,
    batch_size: int = defaults.FINETUNE_BATCH_SIZE,
    learning_rate: float | None = None,
    trainable_stages: int | None = None,
    l2_sp: float = 0.0,
    mode_options: dict | None = None,
    stage_decay: float = defaults.STAGE_DECAY,
    adversarial: AdversarialTraining | dict | None = None,
    validation_set: ImageSet | None = None,
    semi_supervised: str | None = None,
    unlabeled_set: ImageSet | None = None,
    semi_supervised_options: dict | None = None,
    unlabeled_passes: float | None = None,
    teacher: keras.Model | None = None,
    ema_momentum: float | None = None,
    seed: int = defaults.SEED,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool | None = None,
    checkpoint_dir=None,
    checkpoint_every: int = defaults.CHECKPOINT_EVERY,
    callbacks=(),
    verbose: int | str = "auto",
    steps_per_execution: int = 1,
):
    """Trains a `Classifier` on `encoder` with a (small) labeled set.

    Adam with a cosine-decayed learning rate; training batches are lightly augmented
    (random resized crop of 25-100% and flips). A small set gives few steps per epoch,
    so `epochs` counts passes over the labeled images, run as one long `fit` epoch.
    `strategy`, `jit_compile`, `checkpoint_dir` and `steps_per_execution` work as in
    `pretrain`.

    Args:
        mode: a fine-tuning mode of `kssl.finetuning.MODES` ("linear", "partial",
            "full", "lora", "adapter", "gradual").
        learning_rate: Adam's peak learning rate (default: the mode's
            `default_learning_rate`: 1e-3; 1e-2 for the linear probe, 3e-3 for LoRA).
        mode_options: the mode's options (`kssl.finetuning.MODES[mode].options`), e.g.
            `{"rank": 4, "alpha": 8}` for LoRA or `{"every_epochs": 5}` for gradual
            unfreezing; an unknown key or a value of the wrong type is an `InputError`.
        stage_decay: discriminative learning rates: each earlier stage trains at this
            factor of the next one's rate (`kssl.finetuning.discriminative`); 1 is off.
        adversarial: train on adversarial examples (`kssl.finetuning.adversarial.
            AdversarialTraining`, or its arguments as a dict, e.g. `{"attack": "fgsm"}`).
        semi_supervised: `"fixmatch"` or `"distill"` (`kssl.semi_supervised.SEMI_SUPERVISED`):
            the images of `unlabeled_set` train the classifier too. Every step then
            takes `ratio` (an option, default 7) unlabeled images per labeled one.
            `"distill"` first fine-tunes a teacher on the labels (from a copy of
            `encoder`, the same mode and settings), unless `teacher` is given, then
            trains the classifier (the student) on the labels and on the teacher's
            softened predictions.
        unlabeled_set: the unlabeled images (labels, if any, unused): e.g. the whole
            training split, the labeled images included; never the test split.
        semi_supervised_options: the method's options, e.g. `{"threshold": 0.9}`.
        unlabeled_passes: the semi-supervised length in passes over `unlabeled_set`
            (default `kssl.defaults.SEMI_SUPERVISED_PASSES`, but at least the steps of
            `epochs` passes over the labels; `kssl.defaults.semi_supervised_steps`),
            printed with its reason; `epochs` still sets a distillation teacher's.
        teacher: distillation's teacher, a trained classifier of the same classes.
        ema_momentum: keep an exponential moving average of the trained weights at this
            rate (Keras' `use_ema`, as FixMatch evaluates), and end with it in place of the
            last step's weights; None (the default) keeps the last step's.

    Returns:
        `(classifier, history)`. For LoRA, `classifier.merged()` is the plain model to
        save and serve. With `semi_supervised`, the history's logs also hold
        `labeled_loss`, `unlabeled_loss` (and FixMatch's `mask_rate`: the share of
        unlabeled images whose pseudo-label was kept).

    Examples:
        >>> import kssl
        >>> labeled = kssl.load_digits(image_size=8).subset(range(40))
        >>> classifier, _ = finetune(kssl.resnet(10, width=0.125, image_size=8), labeled, mode="lora",
        ...                          mode_options={"rank": 2}, epochs=1, batch_size=20, verbose=0)
        >>> classifier.optimizer.iterations.numpy(), classifier.mode
        (np.int64(2), 'lora')
    """
    warn_if_onednn_off()
    strategy = strategy or tf.distribute.get_strategy()
    jit_compile = resolve_jit_compile(jit_compile, strategy)
    check_split(batch_size, strategy)
    batch_size = min(batch_size, len(labeled_set) - len(labeled_set) % strategy.num_replicas_in_sync)
    steps = defaults.steps_for(epochs, len(labeled_set), batch_size)
    size = encoder.input_shape[1]
    labeled_set = labeled_set.at_size(size)
    validation_set = validation_set.at_size(size) if validation_set is not None else None
    method = _semi_supervised_method(semi_supervised, semi_supervised_options, unlabeled_set, adversarial)
    if ema_momentum is not None and not 0 <= ema_momentum < 1:
        raise InputError(f"ema_momentum must be in [0, 1) (e.g. 0.99), or None. Received: {ema_momentum!r}")
    if method is None and unlabeled_passes is not None:
        raise InputError("unlabeled_passes counts passes over unlabeled_set: it needs semi_supervised.")
    if method is not None:
        unlabeled_set = unlabeled_set.at_size(size)
        _check_unlabeled_batch(unlabeled_set, batch_size * method.ratio, method.ratio)
        try:
            steps, reason = defaults.semi_supervised_steps(len(unlabeled_set), batch_size * method.ratio, steps,
                                                           unlabeled_passes)  # fmt: skip
        except ValueError as error:
            raise InputError(f"unlabeled_passes: {error}") from None
        method.set_run_length(steps)
        if verbose != 0:
            print(f"{type(method).__name__}: {reason}", flush=True)
        if method.needs_teacher and teacher is None:  # the teacher trains a copy: the student starts pretrained
            teacher, _ = finetune(
                copy_in_scope(encoder, strategy),
                labeled_set, mode=mode, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                trainable_stages=trainable_stages, l2_sp=l2_sp, mode_options=mode_options, stage_decay=stage_decay,
                seed=seed, strategy=strategy, jit_compile=jit_compile, verbose=verbose,
                checkpoint_dir=None if checkpoint_dir is None else pathlib.Path(checkpoint_dir) / "teacher",
                checkpoint_every=checkpoint_every, steps_per_execution=steps_per_execution,
            )  # fmt: skip
            teacher = teacher.merged()
    encoder = in_scope(encoder, strategy)
    mode_options = MODES[check_mode(mode)].parse_options(mode_options or {}, "mode_options", mode)
    with strategy.scope():
        classifier = Classifier(
            encoder,
            num_classes=labeled_set.num_classes,
            mode=mode,
            trainable_stages=trainable_stages,
            l2_sp=l2_sp,
            class_names=labeled_set.class_names,
            mode_options=mode_options,
            adversarial=adversarial,
        )
        if learning_rate is None:
            learning_rate = classifier.fine_tuning_mode.default_learning_rate
        schedule = warmup_cosine(learning_rate, steps)
        averaged = {} if ema_momentum is None else {"use_ema": True, "ema_momentum": ema_momentum}
        if stage_decay != 1.0:
            rates = stage_learning_rates(classifier.encoder, stage_decay)
            optimizer = LayerwiseAdam(learning_rate=schedule, layer_multipliers=rates, **averaged)
        else:
            optimizer = keras.optimizers.Adam(schedule, **averaged)
        compiled = dict(jit_compile=jit_compile,
                        steps_per_execution=check_steps_per_execution(steps_per_execution, strategy))  # fmt: skip
        classifier.compile(optimizer=optimizer, **compiled)
        trained = classifier
        if method is not None:  # the same optimizer: the classifier's step count is the training's
            trained = SemiSupervisedTraining(classifier, method, teacher, unlabeled_images=len(unlabeled_set))
            trained.compile(optimizer=classifier.optimizer, **compiled)
    steps_per_epoch = max(1, len(labeled_set) // batch_size)
    callbacks = [*classifier.fine_tuning_mode.callbacks(classifier, steps_per_epoch, steps), *callbacks]

    def batches(rows, start_step):
        if method is None:
            return labeled_batches(
                labeled_set, batch_size, training=True, seed=seed, repeat=True, start_step=start_step, rows=rows
            )
        views = method.unlabeled_views(size)
        return semi_supervised_batches(labeled_set, unlabeled_set, batch_size, method.ratio, views, seed, start_step,
                                       rows, with_rows=method.needs_rows)  # fmt: skip

    def data(start_step):
        return distribute_batches(strategy, lambda rows: batches(rows, start_step), batch_size)

    validation = labeled_batches(validation_set, 256) if validation_set is not None else None
    history = fit_steps(
        trained,
        data,
        steps,
        checkpoint_dir,
        checkpoint_every,
        list(callbacks),
        verbose,
        validation_data=validation,
        peak_rate=learning_rate,
    )
    return classifier, history


def _semi_supervised_method(name, options, unlabeled_set, adversarial):
    """The `SemiSupervisedMethod` asked for (None for plain fine-tuning), or an `InputError`."""
    if name is None:
        if unlabeled_set is not None or options:
            raise InputError("unlabeled_set and semi_supervised_options need semi_supervised='fixmatch' or 'distill'.")
        return None
    from kssl.semi_supervised import SEMI_SUPERVISED, check_semi_supervised, semi_supervised_class

    name = check_semi_supervised(name)
    if unlabeled_set is None:
        raise InputError(f"semi_supervised={name!r} needs unlabeled_set: the images without labels (or all of them).")
    if adversarial is not None:
        raise InputError("Adversarial fine-tuning does not combine with semi_supervised: choose one of them.")
    parsed = SEMI_SUPERVISED[name].parse_options(options or {}, "semi_supervised_options", name)
    try:
        return semi_supervised_class(name)(**parsed)
    except ValueError as error:
        raise InputError(f"semi_supervised_options of {name}: {error}") from None


def _check_unlabeled_batch(unlabeled_set, unlabeled_batch, ratio):
    if len(unlabeled_set) < unlabeled_batch:
        raise InputError(
            f"A step takes {unlabeled_batch} unlabeled images ({ratio} per labeled image), and the unlabeled set has "
            f"{len(unlabeled_set)}: lower the ratio option or the batch size, or add unlabeled images."
        )
