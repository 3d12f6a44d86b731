"""Self-supervised pretraining in one call: `pretrain`."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import tensorflow as tf

from kssl import defaults
from kssl.data.augment import ViewAugmentation
from kssl.data.device import to_device
from kssl.data.pipeline import view_pairs
from kssl.data.sources import ImageSet
from kssl.errors import InputError
from kssl.methods import method_class, method_spec, recipe_for
from kssl.models import multicrop
from kssl.runtime.cpu import warn_if_onednn_off
from kssl.runtime.distribute import distribute_batches
from kssl.runtime.memory import check_training_memory
from kssl.runtime.precision import has_gpu, resolve_jit_compile
from kssl.training.callbacks import TimeBudget
from kssl.training.fitting import check_steps_per_execution, fit_steps, in_scope
from kssl.training.recipes import PretrainingRecipe


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
    seed: int = defaults.SEED,
    strategy: tf.distribute.Strategy | None = None,
    jit_compile: bool | None = None,
    checkpoint_dir=None,
    checkpoint_every: int = defaults.CHECKPOINT_EVERY,
    callbacks=(),
    verbose: int | str = "auto",
    projection_head: keras.layers.Layer | None = None,
    recipe: PretrainingRecipe | None = None,
    method: str = defaults.METHOD,
    method_options: dict | None = None,
    steps_per_execution: int = 1,
    augment_on_device: bool | None = None,
    data_service: str | None = None,
    data_service_timeout: float = defaults.DATA_SERVICE_TIMEOUT,
    teacher: keras.Model | None = None,
):
    """Pretrains `encoder` with a self-supervised `method` on `image_set` (labels unused
    unless `probe`).

    The optimizer comes from the method's recipe (`kssl.training.recipes`; for SimCLR: SGD with
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
            with one replica (`kssl.runtime.precision.default_jit_compile`).
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

    Examples:
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
    encoder = in_scope(encoder, strategy)
    if (teacher is not None) != ("teacher" in inspect.signature(model_class.__init__).parameters):
        raise InputError(
            f"--teacher goes with --method distillation (which needs one); {method!r} "
            + ("takes none." if teacher is not None else "needs one: pass --teacher MODEL (Python: teacher=).")
        )
    if teacher is not None:
        options["teacher"] = in_scope(teacher, strategy)
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
            steps_per_execution=check_steps_per_execution(steps_per_execution, strategy),
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

    history = fit_steps(model, data, steps, checkpoint_dir, checkpoint_every, list(callbacks), verbose, budget,
                   peak_rate=recipe.peak_learning_rate(batch_size))  # fmt: skip
    model.release_batch_norm()  # the encoder goes on as it came (fine-tuning, saving)
    return model, history
