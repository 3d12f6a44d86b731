"""Distillation from a frozen teacher: a student encoder learns to reproduce the teacher's
features of the same views (LightlyTrain's default method), on `SelfSupervisedModel`."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl import distribute
from kssl.losses.distillation import teacher_regression
from kssl.models.base import SelfSupervisedModel, ViewsLoss, encode_views


@keras.saving.register_keras_serializable(package="kssl")
class Distillation(SelfSupervisedModel):
    """A student encoder regresses a frozen teacher's features of the same views.

    Each view goes through the student encoder and a linear head to the teacher's
    dimension, and through the teacher (inference mode, never trained, at its own input
    size: views are resampled to it with antialiasing); the loss is `teacher_regression`
    of the two, averaged over the views of the global batch. What is kept is the student:
    a small encoder to deploy (a quarter-width ResNet-18) that carries what a large
    ImageNet or foundation model sees in the user's own photos, or the teacher's own
    architecture adapted to them.

    Not SimCLRv2's semi-supervised distillation (`--semi-supervised distill`), which
    trains a classifier on a fine-tuned classifier's predictions.

    Args:
        encoder: the student, a `keras.Model` mapping images to `(B, D)` features.
        teacher: a `keras.Model` mapping `(S, S, 3)` images in [0, 1] to `(B, T)` features
            (`kssl.encoders.from_model.encoder_from_model` makes one of any Keras model).
            It is frozen here (`trainable = False`).
        projection_head: the student's map to the teacher's dimension; default a linear
            layer with truncated-normal weights (std 0.02), as LightlyTrain's.
        normalize: compare unit vectors (`2 - 2 cos`, the default: any teacher's scale), or
            the mean squared error of the raw features (LightlyTrain's DistillationV2).
        probe_classes: an online linear probe, as for every method.

    Metrics: `loss` and `teacher_cosine`, the mean cosine similarity of the student's
    predictions and the teacher's features (1 when it reproduces them).

    Example:
    >>> import numpy as np
    >>> from kssl.encoders import conv4
    >>> teacher = conv4(width=0.25, image_size=8)
    >>> model = Distillation(conv4(width=0.125, image_size=8), teacher)
    >>> model.compile(optimizer="adam")
    >>> views = np.random.rand(2, 4, 8, 8, 3).astype("float32")
    >>> sorted(model.train_on_batch(tuple(views), return_dict=True))
    ['loss', 'teacher_cosine']

    Reference:
        LightlyTrain's distillation (lightly-ai/lightly-train, `DistillationV2`); Hinton et
        al. 2015, https://arxiv.org/abs/1503.02531, for distillation itself.
    """

    metric_names = ("teacher_cosine",)
    nested_layers = ("teacher", "projection_head")

    def __init__(self, encoder, teacher, projection_head=None, normalize=True, probe_classes=None, **kwargs):
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        if not isinstance(teacher, keras.Model) or len(teacher.output_shape) != 2:
            raise ValueError(
                "teacher must be a keras.Model mapping images to (batch, features); use "
                "kssl.encoders.from_model.encoder_from_model for any image model. "
                f"Received: {getattr(teacher, 'output_shape', type(teacher).__name__)}"
            )
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be True or False. Received: normalize={normalize!r}")
        teacher.trainable = False
        self.teacher = teacher
        self.teacher_size = teacher.input_shape[1]
        self.normalize = normalize
        teacher_dim = int(teacher.output_shape[-1])
        self.projection_head = projection_head or keras.layers.Dense(
            teacher_dim,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="distillation_head",
        )
        if not self.projection_head.built:
            self.projection_head.build((None, self.feature_dim))

    def teacher_features(self, views):
        """The teacher's float32 features of a batch of views, in inference mode, no gradient."""
        views = tf.cast(views, tf.float32)
        if self.teacher_size is not None and self.teacher_size != views.shape[1]:
            views = tf.image.resize(views, (self.teacher_size, self.teacher_size), antialias=True)
        return tf.stop_gradient(tf.cast(self.teacher(views, training=False), tf.float32))

    def views_loss(self, views, training):
        features = encode_views(self.encoder, views, training)
        predictions = tf.cast(self.projection_head(features, training=training), tf.float32)
        targets = self.teacher_features(tf.concat(list(views), axis=0))
        losses = teacher_regression(predictions, targets, self.normalize)
        cosine = tf.reduce_sum(tf.math.l2_normalize(predictions, -1) * tf.math.l2_normalize(targets, -1), -1)
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={"loss": tf.reduce_mean(losses), "teacher_cosine": tf.reduce_mean(cosine)},
            features=features,
        )

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize}
