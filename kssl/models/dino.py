"""DINO: self-distillation with no labels, a student matching a momentum teacher across crops."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.layers.centre import Centre
from kssl.layers.heads import dino_head
from kssl.losses import dino
from kssl.models.base import ViewsLoss, embedding_std
from kssl.models.momentum import MomentumModel
from kssl.models.multicrop import GLOBAL_CROPS, split
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class DINO(MomentumModel):
    """Self-distillation with no labels (Caron et al. 2021).

    A student (the encoder and a `DINOHead`: an MLP, L2 normalisation and weight-normalised
    prototypes) sees every crop; a teacher, its EMA copy, sees the 2 global crops. The
    loss (`kssl.losses.dino`) is the cross-entropy between the teacher's centred and
    sharpened distribution over the prototypes for each global crop and the student's
    for every crop of another view. The centre (`kssl.layers.Centre`) is an EMA of the
    teacher's mean output over the global batch; the teacher's temperature warms from
    `warmup_teacher_temperature` to `teacher_temperature` over the first `teacher_warmup`
    of training; the teacher's momentum rises from `momentum` to 1 on a cosine.

    Views (`view_augmentations`): 2 global crops at the training size (BYOL's asymmetric
    blur and solarize) and `local_crops` small ones (`kssl.models.multicrop`: the
    settings of DINO's ResNet-50, 14-100% and 5-14% of the image). Crops of one size are
    encoded together. Local crops need an encoder that takes any image size (kssl's
    ResNets and Conv-4; not a ViT, whose position embeddings are sized).

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: default `kssl.layers.heads.dino_head(D, prototypes, head_batch_norm)`.
        prototypes: K, the number of prototypes (the head's output).
        student_temperature: tau_s (0.1).
        teacher_temperature: tau_t after the warm-up (0.07 in the paper's longer runs; 0.04 to
            0.07 all do).
        warmup_teacher_temperature: tau_t at the start (0.04).
        teacher_warmup: the fraction of training over which tau_t warms up linearly (0.3:
            the paper's 30 of 100 epochs).
        centre_momentum: m of the centre's EMA (0.9).
        local_crops: small crops per image (multi-crop), 0 for two global crops only.
        momentum: the teacher's EMA rate at the start (0.996 in the paper's long runs;
            0.99 suits short schedules); `momentum_schedule` raises it to 1 on a cosine.
        head_batch_norm: batch norm after the head's hidden layers (the reference code's
            `use_bn_in_head`, off by default there; lightly's CIFAR-10 ResNet sets it).
        probe_classes: see `SelfSupervisedModel`.

    Metrics: `loss`, `embedding_std` of the student's bottleneck-free outputs, `momentum`,
    `teacher_temperature` and `teacher_entropy` (of the teacher's sharpened distribution,
    in nats: near 0 means collapse to one prototype, near log K a uniform one).

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import conv4
        >>> model = DINO(conv4(width=0.125, image_size=16), prototypes=32, local_crops=2)
        >>> model.compile(optimizer="sgd")
        >>> views = [np.random.rand(4, 16, 16, 3).astype("float32")] * 2 + [np.random.rand(4, 7, 7, 3)] * 2
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))
        ['embedding_std', 'loss', 'momentum', 'teacher_entropy', 'teacher_temperature']

    Reference:
        Caron et al. 2021, https://arxiv.org/abs/2104.14294 (Algorithm 1; the reference
        implementation's `DINOLoss` and `MultiCropWrapper`).
    """

    metric_names = ("embedding_std", "momentum", "teacher_temperature", "teacher_entropy")
    nested_layers = ("projector",)
    momentum_layers = ("target_encoder", "target_projector")
    supports_local_crops = True

    def __init__(
        self,
        encoder,
        projector=None,
        prototypes=1024,
        student_temperature=0.1,
        teacher_temperature=0.07,
        warmup_teacher_temperature=0.04,
        teacher_warmup=0.3,
        centre_momentum=0.9,
        local_crops=6,
        momentum=0.99,
        momentum_schedule=True,
        head_batch_norm=False,
        probe_classes=None,
        **kwargs,
    ):
        super().__init__(
            encoder, momentum, momentum_schedule, probe_classes=probe_classes, local_crops=local_crops, **kwargs
        )
        for name, value in (("student_temperature", student_temperature), ("teacher_temperature", teacher_temperature),
                            ("warmup_teacher_temperature", warmup_teacher_temperature)):  # fmt: skip
            if not value > 0:
                raise ValueError(f"{name} must be > 0. Received: {name}={value!r}")
        if not 0 <= teacher_warmup <= 1:
            raise ValueError(f"teacher_warmup must be in [0, 1]. Received: teacher_warmup={teacher_warmup!r}")
        self.prototypes = int(prototypes)
        self.student_temperature = float(student_temperature)
        self.teacher_temperature = float(teacher_temperature)
        self.warmup_teacher_temperature = float(warmup_teacher_temperature)
        self.teacher_warmup = float(teacher_warmup)
        self.centre_momentum = float(centre_momentum)
        self.head_batch_norm = bool(head_batch_norm)
        self.projector = projector or dino_head(self.feature_dim, self.prototypes, self.head_batch_norm)
        self.projector.build((None, self.feature_dim))
        self.make_targets()
        self.centre = Centre(self.prototypes, centre_momentum, name="centre")

    @classmethod
    def global_views(cls, image_size: int, **options):
        """BYOL's asymmetric pair (blur 1.0 and 0.1, solarize 0 and 0.2, where blur is on)."""
        from kssl.models.byol import BYOL

        return BYOL.global_views(image_size)

    def current_teacher_temperature(self):
        """tau_t for this step: linear from the warm-up value to the final one over `teacher_warmup`."""
        if self.teacher_warmup == 0:
            return tf.constant(self.teacher_temperature, tf.float32)
        progress = tf.minimum(tf.cast(self.progress_before_step(), tf.float32) / self.teacher_warmup, 1.0)
        return self.warmup_teacher_temperature + progress * (self.teacher_temperature - self.warmup_teacher_temperature)

    def views_loss(self, views, training):
        batch = tf.shape(views[0])[0]
        features = self.encode_crops(views, training)
        students = split(self.projector(features, training=training), batch, len(views))
        teacher = tf.stop_gradient(self.target_projections(views[:GLOBAL_CROPS], training))
        teachers = split(teacher, batch, GLOBAL_CROPS)
        temperature = self.current_teacher_temperature()
        losses = dino(students, teachers, self.centre.value, self.student_temperature, temperature)
        sharpened = tf.nn.softmax(self.centre(teacher) / temperature, axis=-1)
        entropy = -tf.reduce_mean(tf.reduce_sum(sharpened * tf.math.log(sharpened + 1e-12), axis=-1))
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={
                "loss": tf.reduce_mean(losses),
                "embedding_std": embedding_std(students[0]),
                "momentum": self.current_momentum(),
                "teacher_temperature": temperature,
                "teacher_entropy": entropy,
            },
            features=features[: GLOBAL_CROPS * batch],
            state={"teacher": teachers},
        )

    def after_step(self, result):
        super().after_step(result)  # the teacher's EMA
        self.centre.update(result.state["teacher"])

    def get_config(self):
        return {
            **super().get_config(),
            "prototypes": self.prototypes,
            "student_temperature": self.student_temperature,
            "teacher_temperature": self.teacher_temperature,
            "warmup_teacher_temperature": self.warmup_teacher_temperature,
            "teacher_warmup": self.teacher_warmup,
            "centre_momentum": self.centre_momentum,
            "head_batch_norm": self.head_batch_norm,
        }
