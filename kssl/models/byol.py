"""BYOL: an online network predicts a slowly moving (EMA) target network's projections."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.layers.heads import byol_predictor, byol_projector
from kssl.losses import byol_crops
from kssl.models.base import ViewsLoss, embedding_std
from kssl.models.momentum import MomentumModel
from kssl.models.multicrop import GLOBAL_CROPS, split
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class BYOL(MomentumModel):
    """Bootstrap Your Own Latent.

    The online network (encoder, projector, predictor) predicts, for each view, the
    target network's projection of the other view; the loss is BYOL's symmetric
    normalized MSE (`kssl.losses.byol`), averaged over the global batch. The target
    network (a copy of the encoder and projector) is not trained: after every step it
    moves towards the online network, `target = tau * target + (1 - tau) * online`, with
    tau rising from `momentum` to 1 on a cosine over the training
    (`training_progress`, which `kssl.pretrain` keeps up to date for epochs and for a
    time budget alike). Views use BYOL's asymmetric augmentations
    (`view_augmentations`).

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: default `kssl.layers.heads.byol_projector(D)` (D -> 2D -> 256).
        predictor: default `kssl.layers.heads.byol_predictor()` (256 -> 1024 -> 256).
        momentum: tau at the start of training (the paper's 0.996 is for 1000 epochs;
            0.99 suits short schedules). `momentum_schedule=False` keeps it constant.
        momentum_schedule: raise tau to 1 on a cosine over the training.
        local_crops: small crops per image (multi-crop, `kssl.models.multicrop`): the
            online network sees every crop, the target the global ones; the loss is
            `kssl.losses.byol_crops`, each global crop's target against every other
            crop's prediction.
        probe_classes: see `SelfSupervisedModel`.

    Metrics: `loss` (in [0, 8]), `embedding_std` (spread of the normalised projections;
    it drops towards 0 if the representation collapses) and `momentum` (the current tau).

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = BYOL(resnet(10, width=0.125, image_size=8))
        >>> model.compile(optimizer="sgd")
        >>> views = np.random.rand(2, 8, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['embedding_std', 'loss', 'momentum']

    Reference:
        Grill et al. 2020, https://arxiv.org/abs/2006.07733.
    """

    metric_names = ("embedding_std", "momentum")
    nested_layers = ("projector", "predictor")
    supports_local_crops = True

    def __init__(
        self,
        encoder,
        projector=None,
        predictor=None,
        momentum=0.99,
        momentum_schedule=True,
        local_crops=0,
        probe_classes=None,
        **kwargs,
    ):
        super().__init__(
            encoder, momentum, momentum_schedule, probe_classes=probe_classes, local_crops=local_crops, **kwargs
        )
        self.projector = projector or byol_projector(self.feature_dim)
        self.projector.build((None, self.feature_dim))
        self.predictor = predictor or byol_predictor()
        self.predictor.build((None, self.projector.output_dim))
        self.make_targets()

    @classmethod
    def global_views(cls, image_size: int, **options):
        """BYOL's asymmetric pair (Grill et al. 2020, table 6): blur with probability 1.0
        on the first view and 0.1 on the second, solarize 0 and 0.2, where blur is on
        (images of 64 px or more; at CIFAR sizes, as SimCLR, neither)."""
        from kssl.data.augment import LARGE_IMAGE_SIZE, ViewAugmentation

        large = image_size >= LARGE_IMAGE_SIZE
        return [
            ViewAugmentation(image_size, blur_probability=1.0 if large else 0.0),
            ViewAugmentation(
                image_size, blur_probability=0.1 if large else 0.0, solarize_probability=0.2 if large else 0.0
            ),
        ]

    def views_loss(self, views, training):
        batch = tf.shape(views[0])[0]
        features = self.encode_crops(views, training)
        z = self.projector(features, training=training)
        p = split(self.predictor(z, training=training), batch, len(views))
        targets = split(self.target_projections(views[:GLOBAL_CROPS], training), batch, GLOBAL_CROPS)
        losses = byol_crops(p, targets)
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={
                "loss": tf.reduce_mean(losses),
                "embedding_std": embedding_std(z[:batch]),
                "momentum": self.current_momentum(),
            },
            features=features[: GLOBAL_CROPS * batch],
        )
