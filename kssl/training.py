"""One-call training over `ImageSet`s: self-supervised pretraining and fine-tuning.

Both run `model.fit` over one long epoch of a repeated dataset: each epoch boundary
cost about 0.45 s on a 2-core CPU even with kssl's in-memory pipelines (epoch-end
callbacks, a new iterator, prefetch warm-up; see BENCHMARKS.md), and the progress bar
of one long epoch still shows steps, loss and ETA.

Both take a `strategy` (models are built and compiled in its scope, and the dataset is
split by Keras with the strategy's own input pipeline), `jit_compile`, and a
`checkpoint_dir` to resume after a crash at the step reached.
"""

from __future__ import annotations

import dataclasses
import inspect
import pathlib
import sys

import keras
import tensorflow as tf

from kssl import defaults
from kssl.callbacks import StopOnDivergence, TimeBudget, TrainingProgress
from kssl.checkpointing import StepCheckpoint
from kssl.cpu import warn_if_onednn_off
from kssl.data.augment import ViewAugmentation
from kssl.data.device import to_device
from kssl.data.pipeline import labeled_batches, semi_supervised_batches, view_pairs
from kssl.data.sources import ImageSet
from kssl.distribute import distribute_batches
from kssl.errors import InputError
from kssl.finetuning import MODES, check_mode
from kssl.finetuning.adversarial import AdversarialTraining
from kssl.finetuning.discriminative import LayerwiseAdam, stage_learning_rates
from kssl.memory import check_training_memory
from kssl.methods import method_class, method_spec, recipe_for
from kssl.models import multicrop
from kssl.models.classifier import Classifier
from kssl.precision import has_gpu, resolve_jit_compile
from kssl.progress import BudgetProgress, StepProgress
from kssl.quiet import quiet_keras_step_retracing
from kssl.recipes import PretrainingRecipe
from kssl.schedules import warmup_cosine
from kssl.semi_supervised.base import SemiSupervisedTraining
from kssl.terminal import live_display

quiet_keras_step_retracing()  # each new model traces its own step once: not retracing


def _check_steps_per_execution(value, strategy):
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


def _check_split(batch_size, strategy):
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


def _in_scope(encoder, strategy):
    """`encoder` itself if it was built under `strategy`, else a copy built in its scope.

    Call outside `strategy.scope()`: inside it, every model reports that strategy.
    """
    if encoder.distribute_strategy is strategy:
        return encoder
    with strategy.scope():
        return copy_model(encoder)


def _copy_in_scope(encoder, strategy):
    """A copy of `encoder` built in `strategy`'s scope (the original stays as it is)."""
    with strategy.scope():
        return copy_model(encoder)


def _fit(model, data, total_steps, checkpoint_dir, every_steps, callbacks, verbose, budget=None, peak_rate=None,
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


def pretrain(
    image_set: ImageSet,
    encoder: keras.Model,
    epochs: float | None = None,
    budget_minutes: float | TimeBudget | None = None,
    batch_size: int = defaults.PRETRAIN_BATCH_SIZE,
    temperature: float | None = None,
    learning_rate: float | None = None,
    augmentation: ViewAugmentation | tuple | None = None,
    probe: bool = False,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool | None = None,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
    callbacks=(),
    verbose: int | str = "auto",
    projection_head: keras.layers.Layer | None = None,
    recipe: PretrainingRecipe | None = None,
    method: str = "simclr",
    method_options: dict | None = None,
    steps_per_execution: int = 1,
    augment_on_device: bool | None = None,
    data_service: str | None = None,
    data_service_timeout: float = 60.0,
    teacher: keras.Model | None = None,
):
    """Pretrains `encoder` with a self-supervised `method` on `image_set` (labels unused
    unless `probe`).

    The optimizer comes from the method's recipe (`kssl.recipes`; for SimCLR: SGD with
    Nesterov momentum 0.9, weight decay 5e-4 except on batch norm and biases, peak
    learning rate `0.3 * batch_size / 256` reached by a linear warmup over the first 5%
    and followed by a cosine decay to 0).

    Args:
        image_set: the images.
        encoder: the encoder to train (in place, unless a `strategy` is given that its
            variables do not belong to: then a copy is trained; use `model.encoder`).
        epochs: passes over the images; default `kssl.defaults.pretraining_epochs`, as the
            command's: 20, but at least `kssl.defaults.MIN_PRETRAIN_STEPS` steps for a
            small set; with a recipe for a pretrained start (`frozen_batch_norm`), 20 but
            at most `kssl.defaults.PRETRAINED_START_MAX_STEPS` steps. Ignored when
            `budget_minutes` is set.
        budget_minutes: train for this much wall-clock time instead (or pass a
            `TimeBudget`); the learning-rate schedule then runs on elapsed time.
        batch_size: images per global batch (2x views). It need not divide evenly over
            replicas: every method's loss is exact for uneven splits too.
        temperature: shorthand for `method_options={"temperature": t}` (the methods
            whose spec has that option: SimCLR and MoCo).
        learning_rate: peak learning rate (default: the recipe's, scaled to the batch).
        augmentation: view transform, or a list of them, one per view (default: the
            method's own, `method_class(method).view_augmentations(size, **method_options)`).
        probe: train an online linear probe on the labels and report its accuracy.
        seed: data order and augmentation seed.
        strategy: a `tf.distribute.Strategy` (default: the current one). Every method
            computes the same step on N replicas as on one device with the same global
            batch (negatives and batch statistics are gathered, batch norm synchronised).
        jit_compile: compile the train step with XLA; default (None): only on a GPU
            with one replica (`kssl.precision.default_jit_compile`).
        checkpoint_dir: checkpoint here every `checkpoint_every` steps, and resume from
            the latest checkpoint found there.
        projection_head: SimCLR's projection head (default `simclr_projector(D)`).
        recipe: optimizer and schedule (default `kssl.methods.recipe_for(method)`).
        method: `"simclr"`, `"moco"`, `"byol"`, `"simsiam"`, `"barlow"`, `"vicreg"` or `"mae"`
            (`kssl.methods.METHODS`; MAE needs a `kssl.encoders.vit` encoder).
        method_options: the method's own options (`kssl.methods.METHODS[method].options`,
            e.g. `{"lambda_": 0.01}` for Barlow Twins); an unknown key or a value of the
            wrong type is an `InputError` naming the accepted keys.
        steps_per_execution: train steps per call of the compiled train function (Keras'
            `compile` argument): fewer returns to Python, which matters most for small
            encoders and on GPUs. Checkpoints, the step count and BYOL's momentum schedule
            stay exact; a time budget and callbacks are checked once per call.
        augment_on_device: crop on the host and finish the views (flip, colour jitter,
            grayscale, blur, solarize) in the train step, on the accelerator
            (`kssl.data.device`): the same views as on the host. Default (None): when
            this machine has a GPU.
        data_service: a tf.data service dispatcher's `HOST:PORT`: its workers compute the
            batches (the same ones; `kssl.data.service`); the source must be in memory or
            files (not a TFDS stream), the workers able to read the files at their paths.
        data_service_timeout: seconds to wait for a step from the service before
            computing it here.
        teacher: the frozen teacher of `method="distillation"` (a `keras.Model` of images
            to features; `kssl.encoders.from_model.encoder_from_model` makes one of any
            image model); only that method takes one.

    Returns:
        `(model, history)`: the trained model (a `SelfSupervisedModel`) and Keras'
        `History` (None when a resumed run had nothing left to do).

    Example:
    >>> import kssl
    >>> images = kssl.load_digits(image_size=8).subset(range(64))
    >>> model, history = pretrain(images, kssl.resnet(10, width=0.125, image_size=8),
    ...                           epochs=1, batch_size=32, verbose=0, method="barlow")
    >>> type(model).__name__, model.optimizer.iterations.numpy(), sorted(history.history)
    ('BarlowTwins', np.int64(2), ['embedding_std', 'loss'])
    """
    warn_if_onednn_off()
    strategy = strategy or tf.distribute.get_strategy()
    jit_compile = resolve_jit_compile(jit_compile, strategy)
    model_class, spec = method_class(method), method_spec(method)
    options = spec.parse_options(method_options or {}, "method_options", model_class.__name__)
    if temperature is not None:
        options["temperature"] = spec.parse_options({"temperature": temperature}, "temperature")["temperature"]
    size = encoder.input_shape[1]
    image_set = image_set.at_size(size)
    recipe = recipe or recipe_for(method)
    if model_class.supports_local_crops:  # decided once, on the encoder: the views and the model agree
        default = model_class.default_local_crops() if recipe.local_crops is None else recipe.local_crops
        local_crops = options.get("local_crops", default)
        options["local_crops"] = multicrop.resolve_local_crops(local_crops, size, encoder)
    augmentation = augmentation or model_class.view_augmentations(size, **options)
    if projection_head is not None:
        options["projection_head"] = projection_head
    if learning_rate is not None:
        recipe = dataclasses.replace(recipe, learning_rate=learning_rate * 256 / batch_size)
    budget, steps = None, None
    if isinstance(budget_minutes, TimeBudget):
        budget = budget_minutes
    elif budget_minutes is not None:
        budget = TimeBudget(budget_minutes)
    else:
        if epochs is None:  # the command's default; a recipe for a pretrained start adapts briefly
            adapting = recipe.frozen_batch_norm
            epochs = defaults.pretraining_epochs(len(image_set), batch_size, pretrained_start=adapting)[0]
        steps = defaults.steps_for(epochs, len(image_set), batch_size)
    if budget is not None:  # the budget drives the schedule and stops the one open-ended epoch
        budget.peak_learning_rate = recipe.peak_learning_rate(batch_size)
        budget.warmup_fraction = recipe.warmup_fraction
    model_class.check_batch_size(batch_size, **options)
    views = list(augmentation) if isinstance(augmentation, (list, tuple)) else [augmentation] * 2
    check_training_memory(encoder, batch_size, views)  # on a CPU, before the kernel would kill the step
    encoder = _in_scope(encoder, strategy)
    if (teacher is not None) != ("teacher" in inspect.signature(model_class.__init__).parameters):
        raise InputError(
            f"--teacher goes with --method distillation (which needs one); {method!r} "
            + ("takes none." if teacher is not None else "needs one: pass --teacher MODEL (Python: teacher=).")
        )
    if teacher is not None:
        options["teacher"] = _in_scope(teacher, strategy)
    with strategy.scope():
        try:
            model = model_class(encoder, probe_classes=image_set.num_classes if probe else None,
                                encoder_rate=recipe.encoder_rate, frozen_batch_norm=recipe.frozen_batch_norm,
                                **options)  # fmt: skip
        except TypeError as error:
            raise InputError(f"{model_class.__name__} does not take these options: {error}") from None
        model.compile(
            optimizer=recipe.build_optimizer(batch_size, steps),
            jit_compile=jit_compile,
            steps_per_execution=_check_steps_per_execution(steps_per_execution, strategy),
        )

    on_device = has_gpu() if augment_on_device is None else bool(augment_on_device)
    if data_service is not None:
        from kssl.data.service import check_data_service

        service = check_data_service(data_service, image_set, timeout=min(10.0, data_service_timeout))

    def data(start_step):
        def rows_of(rows, start=start_step, stop=None, tag_steps=False):
            return view_pairs(image_set, batch_size, augmentation, seed=seed, with_labels=probe, start_step=start,
                              rows=rows, on_device=on_device, stop_step=stop, tag_steps=tag_steps)  # fmt: skip

        make = rows_of
        if data_service is not None:  # the same batches, computed by the service's workers
            from kssl.data.service import job_name, served_batches

            def make(rows):
                stop = steps if steps is not None else start_step + 2**40  # a budget stops it
                return served_batches(lambda a, b: rows_of(rows, a, b, tag_steps=True), start_step, stop, service,
                                      job_name(strategy), data_service_timeout)  # fmt: skip

        batches = distribute_batches(strategy, make, batch_size)
        return to_device(batches, strategy) if on_device else batches

    history = _fit(model, data, steps, checkpoint_dir, checkpoint_every, list(callbacks), verbose, budget,
                   peak_rate=recipe.peak_learning_rate(batch_size))  # fmt: skip
    model.release_batch_norm()  # the encoder goes on as it came (fine-tuning, saving)
    return model, history


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
    stage_decay: float = 1.0,
    adversarial: AdversarialTraining | dict | None = None,
    validation_set: ImageSet | None = None,
    semi_supervised: str | None = None,
    unlabeled_set: ImageSet | None = None,
    semi_supervised_options: dict | None = None,
    unlabeled_passes: float | None = None,
    teacher: keras.Model | None = None,
    ema_momentum: float | None = None,
    seed: int = 0,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool | None = None,
    checkpoint_dir=None,
    checkpoint_every: int = 100,
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

    Example:
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
    _check_split(batch_size, strategy)
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
                _copy_in_scope(encoder, strategy),
                labeled_set, mode=mode, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                trainable_stages=trainable_stages, l2_sp=l2_sp, mode_options=mode_options, stage_decay=stage_decay,
                seed=seed, strategy=strategy, jit_compile=jit_compile, verbose=verbose,
                checkpoint_dir=None if checkpoint_dir is None else pathlib.Path(checkpoint_dir) / "teacher",
                checkpoint_every=checkpoint_every, steps_per_execution=steps_per_execution,
            )  # fmt: skip
            teacher = teacher.merged()
    encoder = _in_scope(encoder, strategy)
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
                        steps_per_execution=_check_steps_per_execution(steps_per_execution, strategy))  # fmt: skip
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
    history = _fit(
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
