"""SimCLR pretraining as a `keras.Model` with its own `train_step`."""

from __future__ import annotations

import copy

import keras
import tensorflow as tf

from kssl import distribute
from kssl.layers.heads import ProjectionHead
from kssl.losses import check_temperature, nt_xent_per_anchor


@keras.saving.register_keras_serializable(package="kssl")
class SimCLR(keras.Model):
    """Contrastive pretraining of an encoder with the NT-Xent loss.

    `fit` takes a dataset of view pairs, as built by `kssl.data.view_pairs`: each
    element is `(views_1, views_2)`, or `((views_1, views_2), labels)` to also train
    an online linear probe. Both views go through the encoder as one batch of 2N
    images (so batch norm sees both), then through the projection head, and the loss
    is NT-Xent over the 2N projections.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features, e.g.
            `kssl.encoders.resnet(18, width=0.25)`.
        projection_head: a layer mapping features to projections; defaults to
            `ProjectionHead(hidden_dim=D, output_dim=128, depth=2)`.
        temperature: NT-Xent temperature tau, > 0.
        probe_classes: if set, an online linear probe with this many classes trains
            on stop-gradient features whenever the data carries labels, and reports
            `probe_accuracy`; it never changes the encoder.

    Metrics: `loss` (NT-Xent), `contrastive_accuracy` (how often an anchor's positive
    is the most similar of its 2N-1 candidates) and, with labels, `probe_loss` and
    `probe_accuracy`.

    `model(images)` and `model.predict(images)` return the encoder's features.

    Example:
    >>> import numpy as np
    >>> from kssl.encoders import resnet
    >>> model = SimCLR(resnet(18, width=0.125, image_size=8), temperature=0.2)
    >>> model.compile(optimizer="adam")
    >>> views = np.random.rand(2, 4, 8, 8, 3).astype("float32")
    >>> history = model.fit(tuple(views), epochs=1, batch_size=4, verbose=0)
    >>> sorted(history.history)
    ['contrastive_accuracy', 'loss']

    Reference:
        Chen et al. 2020, https://arxiv.org/abs/2002.05709.
    """

    def __init__(self, encoder, projection_head=None, temperature=0.2, probe_classes=None, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model):
            raise TypeError(f"encoder must be a keras.Model. Received: {type(encoder).__name__}")
        if len(encoder.output_shape) != 2:
            raise ValueError(
                "encoder must map images to one feature vector per image, shape (batch, features); "
                f"its output shape is {encoder.output_shape}. Add a pooling layer (e.g. "
                "keras.applications with pooling='avg')."
            )
        if probe_classes is not None and (not isinstance(probe_classes, int) or probe_classes < 2):
            raise ValueError(f"probe_classes must be an integer >= 2 or None. Received: {probe_classes!r}")
        self.encoder = encoder
        feature_dim = encoder.output_shape[-1]
        self.projection_head = projection_head or ProjectionHead(hidden_dim=feature_dim, output_dim=128, depth=2)
        self.temperature = check_temperature(temperature)
        self.probe_classes = probe_classes
        self.probe = keras.layers.Dense(probe_classes, dtype="float32", name="online_probe") if probe_classes else None

        if not self.projection_head.built:
            self.projection_head.build((None, feature_dim))
        if self.probe is not None:
            self.probe.build((None, feature_dim))
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="contrastive_accuracy")
        self.probe_loss_tracker = keras.metrics.Mean(name="probe_loss")
        self.probe_accuracy = keras.metrics.SparseCategoricalAccuracy(name="probe_accuracy")
        self.built = True

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.accuracy_tracker]
        if self.probe is not None:
            trackers += [self.probe_loss_tracker, self.probe_accuracy]
        return trackers

    def call(self, images, training=False):
        return self.encoder(images, training=training)

    def project(self, images, training=False):
        """Projections `z` of a batch of images (what NT-Xent compares)."""
        return self.projection_head(self.encoder(images, training=training), training=training)

    def _forward(self, data, training):
        """Returns the loss to differentiate, scaled for exact multi-replica training.

        Each replica's loss is the sum of its anchors' losses over the number of
        anchors in the *global* batch, so the sum of the replicas' gradients (what
        Keras applies) is the gradient of the global mean, even for uneven splits.
        """
        (view_1, view_2), labels = _unpack(data)
        batch = tf.shape(view_1)[0]
        features = self.encoder(tf.concat([view_1, view_2], axis=0), training=training)
        projections = self.projection_head(features, training=training)
        losses, hits = nt_xent_per_anchor(
            projections[:batch], projections[batch:], self.temperature, gather_distributed=True
        )
        loss = distribute.global_mean(losses)
        anchors = tf.cast(2 * batch, tf.float32)
        self.loss_tracker.update_state(tf.reduce_mean(losses), sample_weight=anchors)
        self.accuracy_tracker.update_state(tf.reduce_mean(hits), sample_weight=anchors)
        if self.probe is not None and labels is not None:
            both_labels = tf.concat([labels, labels], axis=0)
            probe_logits = tf.cast(self.probe(tf.stop_gradient(features)), tf.float32)
            probe_losses = keras.losses.sparse_categorical_crossentropy(both_labels, probe_logits, from_logits=True)
            loss += distribute.global_mean(probe_losses)
            self.probe_loss_tracker.update_state(tf.reduce_mean(probe_losses), sample_weight=anchors)
            self.probe_accuracy.update_state(both_labels, probe_logits)
        return loss

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras' TF trainer traces a "symbolic build" by averaging a real batch across
        # replicas, which fails under MultiWorkerMirroredStrategy and for batches split
        # unevenly. SimCLR is fully built in __init__ and has no compiled loss or
        # metrics: only the optimizer's variables remain, created here in the scope.
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def train_step(self, data):
        with tf.GradientTape() as tape:
            loss = self._forward(data, training=True)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return distribute.step_logs(self.metrics)

    def test_step(self, data):
        self._forward(data, training=False)
        return distribute.step_logs(self.metrics)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "projection_head": keras.saving.serialize_keras_object(self.projection_head),
            "temperature": self.temperature,
            "probe_classes": self.probe_classes,
        }

    @classmethod
    def from_config(cls, config):
        config = copy.deepcopy(config)  # deserializing a functional model consumes parts of its config
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        config["projection_head"] = keras.saving.deserialize_keras_object(config["projection_head"])
        return cls(**config)


def _unpack(data):
    """`(v1, v2)` -> `((v1, v2), None)`; `((v1, v2), labels)` and `((v1, v2),)` unpack as Keras does."""
    if isinstance(data, (tuple, list)) and data and isinstance(data[0], (tuple, list)) and len(data[0]) == 2:
        views, labels, _ = keras.utils.unpack_x_y_sample_weight(tuple(data))
        return tuple(views), labels
    if isinstance(data, (tuple, list)) and len(data) == 2:
        return tuple(data), None
    raise ValueError(
        "SimCLR expects batches of (views_1, views_2) or ((views_1, views_2), labels); "
        "build them with kssl.data.view_pairs. Received a batch with structure "
        f"{tf.nest.map_structure(lambda t: getattr(t, 'shape', t), data)}"
    )
