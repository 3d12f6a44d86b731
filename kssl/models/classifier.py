"""A classifier that reuses a (pretrained) encoder: linear probe, partial or full fine-tuning."""

from __future__ import annotations

import copy
import re

import keras
import numpy as np  # noqa: F401  (used by the docstring example)
import tensorflow as tf

from kssl import distribute

MODES = ("linear", "partial", "full")


@keras.saving.register_keras_serializable(package="kssl")
class Classifier(keras.Model):
    """Encoder -> (dropout) -> Dense classification head.

    The classifier holds the *same* encoder object it is given (no copy), so a
    `SimCLR` model's `encoder` can be passed directly. The mode sets which encoder
    layers train, by setting their `trainable` flags (this changes the shared encoder):

    - `"linear"`: every encoder layer frozen; batch norm runs in inference mode (Keras
      does so for non-trainable BatchNormalization), so neither weights nor moving
      statistics change. Only the head trains: a linear probe.
    - `"partial"`: only the last `trainable_stages` residual stages train (layers named
      `stage{n}_...`, as in `kssl.encoders.resnet`, or `conv{n}_...`, as in
      `keras.applications` ResNets); the stem and earlier stages stay frozen.
    - `"full"`: every encoder layer trains.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        num_classes: number of classes, >= 2.
        mode: `"linear"`, `"partial"` or `"full"`.
        trainable_stages: with `mode="partial"`, how many of the last stages train.
        dropout: dropout rate before the head.
        l2_sp: strength lambda of the L2-SP penalty `lambda * ||theta - theta_0||^2`,
            pulling trainable encoder weights toward their values at construction
            (Li et al. 2018); 0 disables it.
        class_names: optional class names, kept with the model (and used by export).

    Example:
    >>> from kssl.encoders import resnet
    >>> classifier = Classifier(resnet(18, width=0.125, image_size=8), num_classes=3)
    >>> classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    >>> classifier.predict(np.zeros((2, 8, 8, 3)), verbose=0).shape
    (2, 3)

    Reference:
        L2-SP: Li, Grandvalet and Davoine 2018, https://arxiv.org/abs/1802.01483.
    """

    def __init__(
        self,
        encoder,
        num_classes,
        mode="linear",
        trainable_stages=1,
        dropout=0.0,
        l2_sp=0.0,
        class_names=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"encoder must be a keras.Model. Received: {type(encoder).__name__}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}. Received: mode={mode!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        if l2_sp < 0:
            raise ValueError(f"l2_sp must be >= 0. Received: l2_sp={l2_sp!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}.")
        self.encoder = encoder
        self.num_classes = num_classes
        self.mode = mode
        self.trainable_stages = trainable_stages
        self.dropout_rate = dropout
        self.l2_sp = float(l2_sp)
        self.class_names = list(class_names) if class_names is not None else None
        self.dropout = keras.layers.Dropout(dropout)
        # float32 logits under mixed precision, so the softmax and loss stay in float32.
        self.head = keras.layers.Dense(num_classes, dtype="float32", name="head")

        _set_trainable(encoder, mode, trainable_stages)
        feature_dim = encoder.output_shape[-1]
        self.head.build((None, feature_dim))
        self.anchors = []
        if self.l2_sp > 0 and mode != "linear":
            for weight in encoder.trainable_weights:
                anchor = self.add_weight(
                    shape=weight.shape, initializer="zeros", trainable=False, name=f"l2sp_anchor_{len(self.anchors)}"
                )
                anchor.assign(weight)
                self.anchors.append(anchor)
        self.built = True

    def call(self, images, training=False):
        features = self.encoder(images, training=training)
        return self.head(self.dropout(features, training=training))

    def l2_sp_penalty(self):
        """`l2_sp * sum ||theta - theta_0||^2` over the trainable encoder weights."""
        weights = self.encoder.trainable_weights
        if not self.anchors:
            return tf.constant(0.0)
        return self.l2_sp * tf.add_n(
            [tf.reduce_sum(tf.square(tf.cast(w, tf.float32) - a)) for w, a in zip(weights, self.anchors)]
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
        if self.anchors and training:
            # Keras scales the data loss by 1/replicas before summing gradients over
            # replicas; the penalty, computed whole on every replica, needs the same.
            loss = loss + self.l2_sp_penalty() / distribute.num_replicas()
        return loss

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer averages a real batch across replicas to learn the shapes it
        # builds the compiled loss and metrics with; under MultiWorkerMirroredStrategy that
        # reduction fails on the per-replica batch. Shapes are all it needs, so this
        # worker's first replica slice does.
        if self._distribute_strategy is None:
            return
        if data_batch is None and iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(distribute.first_local_value, next(batches))
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    def train_step(self, data):
        return distribute.reducible_logs(super().train_step(data))

    def test_step(self, data):
        return distribute.reducible_logs(super().test_step(data))

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`, with defaults for integer labels and logits."""
        loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = metrics if metrics is not None else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it; ours only adds
        # defaults, so the saved compile arguments can be replayed as they are.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "mode": self.mode,
            "trainable_stages": self.trainable_stages,
            "dropout": self.dropout_rate,
            "l2_sp": self.l2_sp,
            "class_names": self.class_names,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing a functional model consumes parts of its config
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


_STAGE_PATTERN = re.compile(r"^(?:stage|conv)(\d+)_")


def encoder_stages(encoder) -> list[int]:
    """The stage numbers found in the encoder's layer names, in order."""
    stages = {int(m.group(1)) for layer in encoder.layers if (m := _STAGE_PATTERN.match(layer.name))}
    return sorted(stages)


def _set_trainable(encoder, mode, trainable_stages):
    if mode == "linear":
        encoder.trainable = False
        return
    encoder.trainable = True
    if mode == "full":
        for layer in encoder.layers:
            layer.trainable = True
        return
    stages = encoder_stages(encoder)
    if not stages:
        raise ValueError(
            f"mode='partial' needs an encoder whose layers are named by stage (stage1_..., conv2_...); "
            f"{encoder.name!r} has none. Use mode='linear' or 'full', or set layer.trainable yourself."
        )
    if not isinstance(trainable_stages, int) or not 1 <= trainable_stages <= len(stages):
        raise ValueError(
            f"trainable_stages must be between 1 and {len(stages)} for this encoder. "
            f"Received: trainable_stages={trainable_stages!r}"
        )
    unfrozen = set(stages[-trainable_stages:])
    for layer in encoder.layers:
        match = _STAGE_PATTERN.match(layer.name)
        layer.trainable = bool(match) and int(match.group(1)) in unfrozen
