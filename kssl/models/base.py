"""`SelfSupervisedModel`: what every pretraining method shares; a method writes only its parts."""

from __future__ import annotations

import copy
import dataclasses
import inspect

import keras
import tensorflow as tf

from kssl.data.device import finish_unfinished, is_unfinished
from kssl.models import multicrop
from kssl.runtime import distribute
from kssl.runtime.loss_scaling import loss_scaled


@dataclasses.dataclass
class ViewsLoss:
    """What a method's `views_loss` returns for one batch of views on one replica.

    Attributes:
        loss: this replica's share of the loss of the global batch: summed over the
            replicas, the shares (and so their gradients) are the global batch's loss.
            `kssl.runtime.distribute.global_mean(per_example)` gives it for per-example losses;
            a loss computed whole over the gathered global batch is divided by
            `kssl.runtime.distribute.num_replicas()`.
        metrics: `{name: value}` for `loss` and each of the method's `metric_names`:
            values for this replica's examples (means), reported as global means.
        features: `(V * n, D)` encoder features of this replica's V views of n images,
            views stacked in order, for the online probe (gradients are stopped there);
            with multi-crop, of the global crops only.
        state: anything the method's `after_step` needs from this step (e.g. MoCo's
            keys to enqueue), by name.
    """

    loss: tf.Tensor
    metrics: dict
    features: tf.Tensor
    state: dict = dataclasses.field(default_factory=dict)


class SelfSupervisedModel(keras.Model):
    """Base class of kssl's pretraining methods: a `keras.Model` trained with `fit` on views.

    It owns what every method shares: the encoder contract, the optional online linear
    probe on stop-gradient features, unpacking batches of views, `train_step` and
    `test_step`, metric trackers, exact multi-replica loss scaling (via `ViewsLoss.loss`),
    serialization of nested layers, and the build that Keras' multi-replica "symbolic
    build" cannot do. A method subclass writes only its own parts:

    - `__init__`: its heads (built), after `super().__init__(encoder, probe_classes, ...)`;
    - `views_loss(views, training)`: its loss on a tuple of view batches (`ViewsLoss`);
    - `after_step(result)`, if it has one: momentum updates, a queue (runs after every
      optimizer step, with the step's `ViewsLoss`);
    - `metric_names`: its metrics besides `loss`; `nested_layers`: its constructor
      arguments that are layers (serialized as nested objects); `momentum_layers`: its
      attributes holding layers that `after_step` updates and the optimizer must not
      (EMA copies: they stay `trainable` so their batch norm uses batch statistics);
    - `get_config()`: its plain constructor arguments, merged with `super().get_config()`;
    - optionally `global_views(image_size, **options)`: its two view transforms (default:
      SimCLR's, twice; BYOL's two differ), or `view_augmentations(image_size, **options)`
      for a list of any length and sizes; `options` are the method's constructor options;
    - for multi-crop (`kssl.models.multicrop`), `supports_local_crops = True`, a
      `local_crops` constructor option passed on to this class, and a `views_loss` that
      takes `2 + local_crops` views (`encode_crops` encodes them);
      `check_batch_size(batch_size)` and `check_encoder(encoder)`: refuse batch sizes or
      encoders it cannot use;
    - its entry in `kssl.methods.METHODS` (class, summary, options, recipe, encoder).

    `fit` takes datasets of `(views_1, views_2, ...)` or `((views_1, views_2, ...),
    labels)` (any number of views), as `kssl.data.view_pairs` builds them; labels feed
    the online probe only.
    `model(images)` returns the encoder's features.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        probe_classes: if set, an online linear probe with this many classes trains on
            stop-gradient features whenever the data carries labels, and reports
            `probe_loss` and `probe_accuracy`; it never changes the encoder.
        local_crops: small crops per image besides the two global ones (multi-crop), for
            methods with `supports_local_crops`; they need an encoder that takes any image
            size (kssl's ResNets and Conv-4, not a ViT).
        encoder_rate: the encoder's learning rate as a fraction of the heads' (1: one rate
            for all). Its gradients are scaled by it, which with SGD (every recipe for a
            pretrained start, `kssl.training.recipes.for_pretrained_start`) is exactly a lower
            rate for the encoder; LARS and AdamW normalise such a scale away.
        frozen_batch_norm: the encoder's batch-norm layers keep their statistics, scales
            and offsets (inference mode, Keras' `trainable=False`) while the rest trains:
            a pretrained start's statistics are not replaced by a few noisy batches'.
    """

    metric_names: tuple[str, ...] = ()
    nested_layers: tuple[str, ...] = ()
    momentum_layers: tuple[str, ...] = ()
    # True for methods with schedules over the whole training (BYOL's momentum): the
    # model then has `training_progress`, a variable in [0, 1] that `kssl.pretrain`'s
    # callbacks set before every step (`kssl.training.callbacks.TrainingProgress`, `TimeBudget`).
    uses_training_progress: bool = False
    # True for methods whose loss takes 2 global crops and any number of local ones.
    supports_local_crops: bool = False

    def __init__(self, encoder, probe_classes=None, local_crops=0, encoder_rate=1.0, frozen_batch_norm=False,
                 **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.check_encoder(encoder)
        if not 0 < encoder_rate <= 1:
            raise ValueError(f"encoder_rate must be in (0, 1]. Received: encoder_rate={encoder_rate!r}")
        self.encoder_rate, self.frozen_batch_norm = float(encoder_rate), bool(frozen_batch_norm)
        # Frozen before a method copies the encoder (momentum encoders); kept (not tracked by
        # Keras) for `release_batch_norm`.
        frozen = freeze_batch_norm(encoder) if self.frozen_batch_norm else []
        object.__setattr__(self, "_frozen_batch_norm_layers", frozen)
        if probe_classes is not None and (not isinstance(probe_classes, int) or probe_classes < 2):
            raise ValueError(f"probe_classes must be an integer >= 2 or None. Received: {probe_classes!r}")
        if self.supports_local_crops:
            local_crops = multicrop.resolve_local_crops(local_crops, encoder.input_shape[1], encoder)
        if multicrop.check_local_crops(local_crops) and not self.supports_local_crops:
            raise ValueError(
                f"{type(self).__name__} does not take local crops (multi-crop). Received: local_crops={local_crops!r}"
            )
        self.local_crops = local_crops
        # The encoder's own layers on any image size, for the local crops: not an attribute
        # Keras tracks (its weights are the encoder's, saved once, with it).
        object.__setattr__(self, "_local_encoder", multicrop.any_size(encoder) if local_crops else None)
        self.encoder = encoder
        self.feature_dim = int(encoder.output_shape[-1])
        self.probe_classes = probe_classes
        self.training_progress = None
        # Set by `kssl.training.callbacks.TrainingProgress`: the progress is then read in the step
        # from `optimizer.iterations`, exact with `steps_per_execution` > 1 and with no
        # host-to-device write per step.
        self.progress_total_steps = None
        if self.uses_training_progress:
            self.training_progress = self.add_weight(
                shape=(), initializer="zeros", trainable=False, dtype="float32", name="training_progress"
            )
        # Zero-initialised (a linear probe needs no random start), so adding a probe draws no
        # random numbers: the method's heads get the same initial weights with or without it.
        self.probe = (
            keras.layers.Dense(probe_classes, kernel_initializer="zeros", dtype="float32", name="online_probe")
            if probe_classes
            else None
        )
        if self.probe is not None:
            self.probe.build((None, self.feature_dim))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.method_trackers = [keras.metrics.Mean(name=name) for name in self.metric_names]
        self.probe_loss_tracker = keras.metrics.Mean(name="probe_loss")
        self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
        self.built = True

    # -- what a method writes ------------------------------------------------------------

    def views_loss(self, views, training) -> ViewsLoss:
        """The method's loss on `views`, a tuple of `(n, H, W, 3)` batches (this replica's)."""
        raise NotImplementedError(f"{type(self).__name__} must define views_loss(views, training).")

    def progress_before_step(self):
        """The fraction of training done before this step, in [0, 1], inside `after_step`.

        From `optimizer.iterations` (already counting this step) when the total number of
        steps is known, else the `training_progress` variable a `TimeBudget` sets.
        """
        if self.progress_total_steps is None:
            return self.training_progress
        done = tf.cast(self.optimizer.iterations - 1, tf.float32)
        return tf.minimum(done / float(self.progress_total_steps), 1.0)

    def after_step(self, result: ViewsLoss):
        """Runs after every optimizer step, inside the (replicated) train step.

        Variables it changes must change identically on every replica: update mirrored
        variables with `kssl.runtime.distribute.update_variables`.
        """

    @classmethod
    def check_encoder(cls, encoder) -> None:
        """Raises unless the method can train `encoder` (any image-to-vector `keras.Model`;
        MAE also needs a ViT). The `kssl` command asks before loading any data."""
        check_encoder(encoder)

    # The smallest global batch the method learns from: a contrastive loss needs another
    # image as a negative, and batch statistics (batch norm in the heads, Barlow Twins'
    # correlations, VICReg's variances) need two images; on one image the loss is
    # constant and nothing is learned. Batch norm is synchronised over the replicas, so
    # the global batch is what counts. MAE's loss is per image (1).
    min_batch = 2

    @classmethod
    def check_batch_size(cls, batch_size: int, **options) -> None:
        """Raises `kssl.errors.InputError` if the method, built with `options`, cannot train
        on global batches of `batch_size` images (fewer than `min_batch`; MoCo's queue
        must hold a step's keys). `kssl.pretrain` and the `kssl` command ask before training."""
        from kssl.errors import InputError

        if batch_size < cls.min_batch:
            raise InputError(
                f"A batch of {batch_size} image(s) is too small for {cls.__name__}: it learns nothing from fewer "
                f"than {cls.min_batch} images a step (the loss stays constant). Use a batch size of at least "
                f"{cls.min_batch} (--batch-size; 256 is typical), on a data set of at least as many images."
            )

    @classmethod
    def global_views(cls, image_size: int, **options) -> list:
        """The method's two view transforms at `image_size` (default: SimCLR's, twice)."""
        from kssl.data.augment import ViewAugmentation

        augmentation = ViewAugmentation(image_size)
        return [augmentation, augmentation]

    @classmethod
    def view_augmentations(cls, image_size: int, **options) -> list:
        """The method's view transforms at `image_size`, one per view, for the method built
        with `options` (its constructor options): its `global_views`, and its local crops
        after them if it takes any (`kssl.models.multicrop.with_local_crops`)."""
        local_crops = options.pop("local_crops", cls.default_local_crops())
        if cls.supports_local_crops:
            local_crops = multicrop.resolve_local_crops(local_crops, image_size)
        return multicrop.with_local_crops(cls.global_views(image_size, **options), image_size, local_crops)

    @classmethod
    def default_local_crops(cls) -> int:
        """The constructor's default `local_crops` (0 for a method without multi-crop; None
        for the size-dependent default, `kssl.models.multicrop.resolve_local_crops`)."""
        parameter = inspect.signature(cls.__init__).parameters.get("local_crops")
        return 0 if parameter is None or not cls.supports_local_crops else parameter.default

    def encode_crops(self, views, training):
        """`(V * n, D)` features of every view, stacked in order: the global crops encoded
        together by the encoder, the local crops together by its any-size twin (batch norm
        sees crops of one size at once, as DINO's `MultiCropWrapper`)."""
        features = encode_views(self.encoder, views[: multicrop.GLOBAL_CROPS], training)
        if len(views) > multicrop.GLOBAL_CROPS:
            local = encode_views(self._local_encoder, views[multicrop.GLOBAL_CROPS :], training)
            features = tf.concat([features, local], axis=0)
        return features

    # -- what every method shares ----------------------------------------------------------

    @property
    def optimized_variables(self):
        """The variables the optimizer trains: the trainable ones, less `momentum_layers`'."""
        excluded = {id(v) for name in self.momentum_layers for v in getattr(self, name).trainable_variables}
        return [v for v in self.trainable_variables if id(v) not in excluded]

    @property
    def metrics(self):
        trackers = [self.loss_tracker, *self.method_trackers]
        if self.probe is not None:
            trackers += [self.probe_loss_tracker, self.probe_accuracy]
        return trackers

    def release_batch_norm(self) -> None:
        """Makes trainable again the encoder's batch-norm layers that `frozen_batch_norm`
        froze (not those frozen before), so the encoder goes on as it came."""
        for layer in self._frozen_batch_norm_layers:
            layer.trainable = True

    def call(self, images, training=False):
        return self.encoder(images, training=training)

    def _forward(self, data, training):
        """`(loss, result)`: this replica's share of the loss, probe included, and the `ViewsLoss`."""
        # Unfinished views (`kssl.data.device`) are finished here, on this replica's
        # device; inside an XLA step every branch is computed (static shapes).
        views, labels = unpack_views(data, type(self).__name__, compute_all_branches=bool(self.jit_compile))
        expected = multicrop.GLOBAL_CROPS + self.local_crops
        if self.supports_local_crops and len(views) != expected:
            raise ValueError(
                f"{type(self).__name__} with local_crops={self.local_crops} takes {expected} views per image "
                f"({type(self).__name__}.view_augmentations(size, local_crops={self.local_crops})); "
                f"received {len(views)}."
            )
        result = self.views_loss(views, training)
        count = tf.cast(tf.shape(result.features)[0], tf.float32)
        self.loss_tracker.update_state(result.metrics["loss"], sample_weight=count)
        for tracker in self.method_trackers:
            tracker.update_state(result.metrics[tracker.name], sample_weight=count)
        loss = result.loss
        if self.probe is not None and labels is not None:
            all_labels = tf.tile(labels, [tf.shape(result.features)[0] // tf.shape(labels)[0]])
            logits = tf.cast(self.probe(tf.stop_gradient(result.features)), tf.float32)
            probe_losses = keras.losses.sparse_categorical_crossentropy(all_labels, logits, from_logits=True)
            loss += distribute.global_mean(probe_losses)
            self.probe_loss_tracker.update_state(tf.reduce_mean(probe_losses), sample_weight=count)
            self.probe_accuracy.update_state(all_labels, logits)
        return loss, result

    def compile(self, optimizer="rmsprop", **kwargs):
        """`keras.Model.compile`; under `mixed_float16` the optimizer's loss scaling
        decides for all replicas at once (`kssl.runtime.loss_scaling`)."""
        super().compile(optimizer=loss_scaled(optimizer, self.dtype_policy), **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it, and then drops the
        # saved optimizer state; ours only wraps the optimizer, so the saved compile
        # arguments are replayed as they are and the optimizer built, so that its saved
        # variables load and the restored model's next step equals the original's.
        self.compile(**keras.saving.deserialize_keras_object(config))
        with self.distribute_strategy.scope():
            self.optimizer.build(self.optimized_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer traces a "symbolic build" by averaging a real batch across
        # replicas, which fails under MultiWorkerMirroredStrategy and for batches split
        # unevenly. These models are fully built in __init__ and have no compiled loss
        # or metrics: only the optimizer's variables remain, created here in the scope.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimized_variables)

    def train_step(self, data):
        variables = self.optimized_variables
        with tf.GradientTape() as tape:
            loss, result = self._forward(data, training=True)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)
        if self.encoder_rate != 1.0:
            encoder_variables = {id(v) for v in self.encoder.trainable_variables}
            gradients = [g * self.encoder_rate if id(v) in encoder_variables and g is not None else g
                         for g, v in zip(gradients, variables)]  # fmt: skip
        self.optimizer.apply(gradients, variables)
        self.after_step(result)
        return distribute.step_logs(self.metrics)

    def test_step(self, data):
        self._forward(data, training=False)
        return distribute.step_logs(self.metrics)

    def get_config(self):
        nested = {name: keras.saving.serialize_keras_object(getattr(self, name)) for name in self.nested_layers}
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            **nested,
            "probe_classes": self.probe_classes,
            "encoder_rate": self.encoder_rate,
            "frozen_batch_norm": self.frozen_batch_norm,
            **({"local_crops": self.local_crops} if self.supports_local_crops else {}),
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing a functional model consumes parts of its config
        for name in ("encoder", *cls.nested_layers):
            if config.get(name) is not None:
                config[name] = keras.saving.deserialize_keras_object(config[name])
        return cls(**config)


def batch_norm_layers(model) -> list:
    """Every batch-normalization layer inside `model`, nested models included."""
    return [layer for layer in model._flatten_layers(include_self=False)
            if isinstance(layer, keras.layers.BatchNormalization)]  # fmt: skip


def freeze_batch_norm(model) -> list:
    """Puts `model`'s trainable batch-norm layers in inference mode (`trainable=False`:
    Keras then normalises with the moving statistics and trains neither scale nor offset);
    returns them (`SelfSupervisedModel.release_batch_norm` makes them trainable again)."""
    frozen = [layer for layer in batch_norm_layers(model) if layer.trainable]
    for layer in frozen:
        layer.trainable = False
    return frozen


def check_encoder(encoder) -> None:
    """Raises unless `encoder` is a `keras.Model` mapping images to one feature vector each."""
    if not isinstance(encoder, keras.Model):
        raise TypeError(f"encoder must be a keras.Model. Received: {type(encoder).__name__}")
    if len(encoder.output_shape) != 2:
        raise ValueError(
            "encoder must map images to one feature vector per image, shape (batch, features); "
            f"its output shape is {encoder.output_shape}. Add a pooling layer (e.g. "
            "keras.applications with pooling='avg')."
        )


def unpack_views(data, method="This method", compute_all_branches=False):
    """`(v1, v2, ...)` -> `((v1, v2, ...), None)`; `((v1, v2, ...), labels)` and
    `((v1, v2, ...),)` unpack as Keras does. Any number of views, two at least.

    A batch of `kssl.data.device.unfinished_views` (alone or with labels) is finished
    here (`finish_unfinished`), where the call runs.
    """
    if is_unfinished(data):
        return finish_unfinished(data, compute_all_branches), None
    if isinstance(data, (tuple, list)) and data and is_unfinished(data[0]):
        return finish_unfinished(data[0], compute_all_branches), data[1] if len(data) > 1 else None
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], (tuple, list)) and len(data[0]) >= 2:
        views, labels, _ = keras.utils.unpack_x_y_sample_weight(tuple(data))
        return tuple(views), labels
    images = isinstance(data, (tuple, list)) and all(len(getattr(view, "shape", ())) == 4 for view in data)
    if images and len(data) >= 2:
        return tuple(data), None
    raise ValueError(
        f"{method} expects batches of (views_1, views_2, ...) or ((views_1, views_2, ...), labels); "
        "build them with kssl.data.view_pairs. Received a batch with structure "
        f"{tf.nest.map_structure(lambda t: getattr(t, 'shape', t), data)}"
    )


def embedding_std(z):
    """A collapse gauge: the standard deviation over the batch of the L2-normalised
    embeddings, averaged over dimensions and scaled by sqrt(D): about 1 for embeddings
    spread over the sphere, 0 when they collapse to one point (SimSiam, section 4.1).
    Over the global batch of every replica."""
    z = distribute.all_gather(tf.math.l2_normalize(tf.cast(tf.stop_gradient(z), tf.float32), axis=1))
    _, variance = tf.nn.moments(z, axes=[0])
    return tf.reduce_mean(tf.sqrt(variance + 1e-12)) * tf.sqrt(tf.cast(tf.shape(z)[1], tf.float32))


def encode_views(encoder, views, training):
    """`encoder`'s features of the view batches stacked in order, encoded together (batch
    norm sees every view): the online encoder's, or a momentum copy's."""
    return encoder(tf.concat(list(views), axis=0), training=training)


def project_views(model, views, training):
    """`(features, z1, z2)`: both views' encoder features, and `model.projector`'s
    projections of each view."""
    batch = tf.shape(views[0])[0]
    features = encode_views(model.encoder, views, training)
    z = model.projector(features, training=training)
    return features, z[:batch], z[batch:]


def global_batch_loss(loss, features, z) -> ViewsLoss:
    """The `ViewsLoss` of a loss computed whole over the gathered global batch (the same
    value on every replica): each replica's share is `loss / replicas`."""
    return ViewsLoss(
        loss=loss / distribute.num_replicas(),
        metrics={"loss": loss, "embedding_std": embedding_std(z)},
        features=features,
    )
