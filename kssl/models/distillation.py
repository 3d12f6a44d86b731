"""Distillation from a frozen teacher: a student encoder learns to reproduce the teacher's
features of the same views, position by position on their feature maps (LightlyTrain's
default method), on `SelfSupervisedModel`."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.losses.distillation import teacher_regression
from kssl.models.base import SelfSupervisedModel, ViewsLoss, encode_views
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class Distillation(SelfSupervisedModel):
    """A student encoder regresses a frozen teacher's features of the same views.

    Each view goes through the student encoder and a linear head to the teacher's
    dimension, and through the teacher (inference mode, never trained, at its own input
    size: views are resampled to it with antialiasing). With `feature_map` (the default)
    and two encoders that end in a global average pooling of a feature map (kssl's
    ResNets and Conv-4, keras.applications and keras-hub CNNs, `.keras` CNNs), the head
    maps every position of the student's feature map, resized bilinearly to the
    teacher's, and the loss is `teacher_regression` at each position, averaged over the
    positions (LightlyTrain's DistillationV2 regresses a ViT teacher's patch tokens so);
    otherwise it compares the pooled features. Either way it is averaged over the views
    of the global batch. What is kept is the student:
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
        feature_map: regress the teacher's feature map position by position where both
            encoders have one (the default: on the flowers it gave 1.5 kNN points more in
            5 minutes, BENCHMARKS.md); False: the pooled features only.
        views: how many of each image's two views are distilled: 1 (the default, as
            LightlyTrain: a step's forward passes go to as many different images; on
            the flowers 3 kNN points more than 2 views of half as many images, at equal
            wall clock) or 2. The pipeline makes both; the unused one costs the host its
            augmentation only.
        probe_classes: an online linear probe, as for every method.

    Metrics: `loss` and `teacher_cosine`, the mean cosine similarity of the student's
    predictions and the teacher's features (1 when it reproduces them).

    Examples:
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

    def __init__(self, encoder, teacher, projection_head=None, normalize=True, feature_map=True, views=1,
                 probe_classes=None, **kwargs):  # fmt: skip
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        if not isinstance(teacher, keras.Model) or len(teacher.output_shape) != 2:
            raise ValueError(
                "teacher must be a keras.Model mapping images to (batch, features); use "
                "kssl.encoders.from_model.encoder_from_model for any image model. "
                f"Received: {getattr(teacher, 'output_shape', type(teacher).__name__)}"
            )
        for name, value in (("normalize", normalize), ("feature_map", feature_map)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")
        if views not in (1, 2):
            raise ValueError(f"views must be 1 or 2. Received: views={views!r}")
        self.views = views
        teacher.trainable = False
        self.teacher = teacher
        self.teacher_size = teacher.input_shape[1]
        self.normalize = normalize
        self.feature_map = feature_map
        maps = (feature_map_model(encoder), feature_map_model(teacher)) if feature_map else (None, None)
        # Views of the two encoders' own layers (no variables of their own), kept out of
        # Keras' tracking so that the weights are saved once, under the encoders.
        object.__setattr__(self, "_feature_maps", maps if None not in maps else None)
        teacher_dim = int(teacher.output_shape[-1])
        self.projection_head = projection_head or keras.layers.Dense(
            teacher_dim,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
            name="distillation_head",
        )
        if not self.projection_head.built:
            self.projection_head.build((None, self.feature_dim))

    @property
    def regresses_feature_maps(self) -> bool:
        """Whether the loss compares feature maps position by position (`feature_map` and
        both encoders end in a global average pooling of one)."""
        return self._feature_maps is not None

    def teacher_features(self, views, teacher=None):
        """The teacher's float32 features of a batch of views, in inference mode, no gradient
        (`teacher`: a model of the teacher's layers, such as its feature map)."""
        views = tf.cast(views, tf.float32)
        if self.teacher_size is not None and self.teacher_size != views.shape[1]:
            views = tf.image.resize(views, (self.teacher_size, self.teacher_size), antialias=True)
        return tf.stop_gradient(tf.cast((teacher or self.teacher)(views, training=False), tf.float32))

    def views_loss(self, views, training):
        views = list(views)[: self.views]
        images = tf.concat(views, axis=0)
        if self.regresses_feature_maps:
            student_map, teacher_map = self._feature_maps
            maps = student_map(images, training=training)
            features = tf.reduce_mean(maps, axis=(1, 2))  # the encoder's own output
            predictions = tf.cast(self.projection_head(maps, training=training), tf.float32)
            targets = self.teacher_features(images, teacher_map)
            if predictions.shape[1:3] != targets.shape[1:3]:  # bilinear, as LightlyTrain's F.interpolate
                # (a 12 x 12 map to 3 x 3 reads 4 of each 16 positions; an antialiased resize, untried, reads all)
                predictions = tf.image.resize(predictions, targets.shape[1:3], method="bilinear")
            dim = targets.shape[-1]
            positions = teacher_regression(tf.reshape(predictions, (-1, dim)), tf.reshape(targets, (-1, dim)),
                                           self.normalize)  # fmt: skip
            losses = tf.reduce_mean(tf.reshape(positions, (tf.shape(images)[0], -1)), axis=-1)
            predictions, targets = tf.reduce_mean(predictions, axis=(1, 2)), tf.reduce_mean(targets, axis=(1, 2))
        else:
            features = encode_views(self.encoder, views, training)
            predictions = tf.cast(self.projection_head(features, training=training), tf.float32)
            targets = self.teacher_features(images)
            losses = teacher_regression(predictions, targets, self.normalize)
        cosine = tf.reduce_sum(tf.math.l2_normalize(predictions, -1) * tf.math.l2_normalize(targets, -1), -1)
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={"loss": tf.reduce_mean(losses), "teacher_cosine": tf.reduce_mean(cosine)},
            features=features,
        )

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize, "feature_map": self.feature_map,
                "views": self.views}  # fmt: skip


def feature_map_model(encoder) -> keras.Model | None:
    """A model of `encoder`'s own layers giving the feature map its output pools, when it
    ends in a `GlobalAveragePooling2D` of one (else None: a ViT, a pooled head).

    Examples:
        >>> from kssl.encoders import resnet
        >>> feature_map_model(resnet(18, width=0.125, image_size=32)).output_shape
        (None, 4, 4, 64)
    """
    last = encoder.layers[-1] if getattr(encoder, "layers", None) else None
    if not isinstance(last, keras.layers.GlobalAveragePooling2D) or len(encoder.outputs) != 1:
        return None
    try:
        feature_map = last.input
    except (AttributeError, ValueError):  # a layer called more than once
        return None
    if encoder.outputs[0] is not last.output or len(feature_map.shape) != 4:
        return None
    return keras.Model(encoder.inputs, feature_map, name=f"{encoder.name}_feature_map")
