"""A classifier that reuses a (pretrained) encoder, trained by a fine-tuning mode."""

from __future__ import annotations

import copy

import keras
import numpy as np  # noqa: F401  (used by the docstring example)
import tensorflow as tf

from kssl.finetuning import MODES, mode_class
from kssl.finetuning.adversarial import AdversarialTraining
from kssl.finetuning.stages import encoder_stages  # noqa: F401  (re-exported)
from kssl.runtime import distribute
from kssl.runtime.loss_scaling import loss_scaled

MODE_NAMES = tuple(MODES)


@keras.saving.register_keras_serializable(package="kssl")
class Classifier(keras.Model):
    """Encoder -> (dropout) -> Dense classification head, trained by a fine-tuning mode.

    The classifier holds the *same* encoder object it is given (no copy; adapters wrap
    its layers in a new graph that shares them), so a `SimCLR` model's `encoder` can be
    passed directly. The mode (`kssl.finetuning.MODES`) sets which encoder weights
    train, by setting `trainable` flags (this changes the shared encoder):

    - `"linear"`: every encoder layer frozen; batch norm runs in inference mode, so
      neither weights nor moving statistics change. Only the head trains.
    - `"partial"`: only the last `trainable_stages` stages train (layer names
      `stage{n}_...` as in kssl's encoders, or those of `keras.applications` families;
      see `kssl.finetuning.stages`).
    - `"full"`: every encoder layer trains.
    - `"lora"`: low-rank updates of every convolution and dense kernel (options `rank`,
      `alpha`); `merged()` folds them into plain kernels.
    - `"adapter"`: residual bottleneck adapters after each stage of the frozen encoder
      (option `reduction`).
    - `"gradual"`: the head first, then one more stage every `every_epochs` epochs.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        num_classes: number of classes, >= 2.
        mode: one of `kssl.finetuning.MODES`.
        trainable_stages: shorthand for `mode_options={"trainable_stages": k}` of
            `mode="partial"` (how many of the last stages train; default 1).
        dropout: dropout rate before the head.
        l2_sp: strength lambda of the L2-SP penalty `lambda * ||theta - theta_0||^2`,
            pulling the encoder weights the mode trains toward their values at
            construction (Li et al. 2018); 0 disables it.
        class_names: optional class names, kept with the model (and used by export).
        mode_options: the mode's own options, e.g. `{"rank": 4}` for LoRA.
        adversarial: an `AdversarialTraining` (or its dict) to train on FGSM or PGD
            adversarial examples computed inside the train step; None trains on clean
            images.

    Examples:
        >>> from kssl.encoders import resnet
        >>> classifier = Classifier(resnet(10, width=0.125, image_size=8), num_classes=3,
        ...                         mode="lora", mode_options={"rank": 2})
        >>> classifier.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        >>> classifier.predict(np.zeros((2, 8, 8, 3)), verbose=0).shape
        (2, 3)
        >>> counts = classifier.parameter_counts()
        >>> counts["trainable"] < 0.1 * counts["total"]
        True

    Reference:
        L2-SP: Li, Grandvalet and Davoine 2018, https://arxiv.org/abs/1802.01483.
    """

    def __init__(
        self,
        encoder,
        num_classes,
        mode="linear",
        trainable_stages=None,
        dropout=0.0,
        l2_sp=0.0,
        class_names=None,
        mode_options=None,
        adversarial=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"encoder must be a keras.Model. Received: {type(encoder).__name__}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2. Received: num_classes={num_classes!r}")
        if str(mode).lower() not in MODES:
            raise ValueError(f"mode must be one of {MODE_NAMES}. Received: mode={mode!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1). Received: dropout={dropout!r}")
        if l2_sp < 0:
            raise ValueError(f"l2_sp must be >= 0. Received: l2_sp={l2_sp!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}.")
        self.mode = str(mode).lower()
        self.mode_options = dict(mode_options or {})
        if trainable_stages is not None:
            self.mode_options.setdefault("trainable_stages", trainable_stages)
        self.fine_tuning_mode = mode_class(self.mode)(**self.mode_options)
        if isinstance(adversarial, dict):
            adversarial = AdversarialTraining(**adversarial)
        self.adversarial = adversarial
        self.num_classes = num_classes
        self.dropout_rate = dropout
        self.l2_sp = float(l2_sp)
        self.class_names = list(class_names) if class_names is not None else None

        self.encoder = self.fine_tuning_mode.adapt(encoder)
        self.fine_tuning_mode.set_trainable(self.encoder)
        self._encoder_variables = self.fine_tuning_mode.trainable_at_some_point(self.encoder)
        self.dropout = keras.layers.Dropout(dropout)
        # float32 logits under mixed precision, so the softmax and loss stay in float32.
        self.head = keras.layers.Dense(num_classes, dtype="float32", name="head")
        self.head.build((None, self.encoder.output_shape[-1]))
        self.anchors = []
        if self.l2_sp > 0:
            for weight in self._encoder_variables:
                anchor = self.add_weight(
                    shape=weight.shape, initializer="zeros", trainable=False, name=f"l2sp_anchor_{len(self.anchors)}"
                )
                anchor.assign(weight)
                self.anchors.append(anchor)
        self.built = True

    @property
    def optimized_variables(self):
        """Every variable the mode trains at some point (the optimizer is built for all)."""
        return [*self._encoder_variables, *self.head.trainable_weights]

    def parameter_counts(self) -> dict:
        """`{"trainable", "total", "share"}`: parameters the mode trains (LoRA factors,
        adapters and the head included) against the parameters of the deployed model."""
        trainable = sum(int(np.prod(v.shape)) for v in self.optimized_variables)
        anchors = {id(a) for a in self.anchors}
        deployed = self.merged()
        total = sum(int(np.prod(v.shape)) for v in deployed.weights if id(v) not in anchors)
        return {"trainable": trainable, "total": total, "share": trainable / total}

    def merged(self):
        """The classifier to save and serve: `self`, or for LoRA a `mode="full"` copy
        whose kernels hold the merged low-rank updates (same outputs, plain layers)."""
        encoder = self.fine_tuning_mode.merged(self.encoder)
        if encoder is self.encoder:
            return self
        merged = Classifier(
            encoder,
            self.num_classes,
            mode="full",
            dropout=self.dropout_rate,
            class_names=self.class_names,
            name=self.name,
        )
        merged.head.set_weights(self.head.get_weights())
        return merged

    def call(self, images, training=False):
        features = self.encoder(images, training=training)
        return self.head(self.dropout(features, training=training))

    def l2_sp_penalty(self):
        """`l2_sp * sum ||theta - theta_0||^2` over the trainable encoder weights."""
        if not self.anchors:
            return tf.constant(0.0)
        return self.l2_sp * tf.add_n(
            [
                tf.reduce_sum(tf.square(tf.cast(w, tf.float32) - a))
                for w, a in zip(self._encoder_variables, self.anchors)
            ]
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
        if self.adversarial is not None:
            images, labels = data[0], data[1]
            adversarial = self.adversarial.perturb(self, images, labels, self.optimizer.iterations)
            if self.adversarial.mix:
                data = (tf.concat([images, adversarial], 0), tf.concat([labels, labels], 0))
            else:
                data = (adversarial, labels)
        return distribute.reducible_logs(super().train_step(data))

    def test_step(self, data):
        return distribute.reducible_logs(super().test_step(data))

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Like `keras.Model.compile`, with defaults for integer labels and logits."""
        loss = loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = metrics if metrics is not None else [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        optimizer = loss_scaled(optimizer, self.dtype_policy)  # float16: one decision for all replicas
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        if not self.optimizer.built:  # for every variable a schedule may unfreeze later
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimized_variables)

    def compile_from_config(self, config):
        # Keras skips compile() on load for models that override it; ours only adds
        # defaults, so the saved compile arguments can be replayed as they are.
        self.compile(**keras.saving.deserialize_keras_object(config))

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "num_classes": self.num_classes,
            "mode": self.mode,
            "dropout": self.dropout_rate,
            "l2_sp": self.l2_sp,
            "class_names": self.class_names,
            "mode_options": self.fine_tuning_mode.get_config(),
            "adversarial": self.adversarial.get_config() if self.adversarial else None,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing a functional model consumes parts of its config
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        # Files saved before 2026-12-01 carry `trainable_stages` for every mode; it is a
        # partial mode's option (in `mode_options`) now.
        stages = config.pop("trainable_stages", None)
        if config.get("mode") == "partial" and stages is not None:
            config.setdefault("mode_options", {}).setdefault("trainable_stages", stages)
        return cls(**config)
