"""SimCLR: contrastive pretraining with the NT-Xent loss, on `SelfSupervisedModel`."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.layers.heads import simclr_projector
from kssl.losses import check_temperature, nt_xent_per_anchor
from kssl.models.base import SelfSupervisedModel, ViewsLoss
from kssl.models.multicrop import GLOBAL_CROPS, split, symmetric_pairs
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class SimCLR(SelfSupervisedModel):
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
        local_crops: small crops per image (multi-crop, `kssl.models.multicrop`); None
            (default): 4 from 64 px, 0 below (`multicrop.resolve_local_crops`). The
            loss is then NT-Xent's mean over the pairs of the two global crops and of
            each global crop with each local one (`symmetric_pairs`), each pair with the
            batch's other images of its two views as negatives.

    Metrics: `loss` (NT-Xent), `contrastive_accuracy` (how often an anchor's positive
    is the most similar of its 2N-1 candidates, between the global crops) and, with
    labels, `probe_loss` and `probe_accuracy`.

    `model(images)` and `model.predict(images)` return the encoder's features.

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = SimCLR(resnet(10, width=0.125, image_size=8), temperature=0.2)
        >>> model.compile(optimizer="adam")
        >>> views = np.random.rand(2, 4, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['contrastive_accuracy', 'loss']

    Reference:
        Chen et al. 2020, https://arxiv.org/abs/2002.05709.
    """

    metric_names = ("contrastive_accuracy",)
    nested_layers = ("projection_head",)
    supports_local_crops = True

    def __init__(self, encoder, projection_head=None, temperature=0.2, local_crops=None, probe_classes=None, **kwargs):
        super().__init__(encoder, probe_classes=probe_classes, local_crops=local_crops, **kwargs)
        self.projection_head = projection_head or simclr_projector(self.feature_dim)
        self.temperature = check_temperature(temperature)
        if not self.projection_head.built:
            self.projection_head.build((None, self.feature_dim))

    def project(self, images, training=False):
        """Projections `z` of a batch of images (what NT-Xent compares)."""
        return self.projection_head(self.encoder(images, training=training), training=training)

    def views_loss(self, views, training):
        # The global crops go through the encoder as one batch, so batch norm sees both.
        batch = tf.shape(views[0])[0]
        features = self.encode_crops(views, training)
        projections = split(self.projection_head(features, training=training), batch, len(views))
        pairs = [
            nt_xent_per_anchor(projections[i], projections[j], self.temperature, gather_distributed=True)
            for i, j in symmetric_pairs(len(views))
        ]
        losses = tf.concat([pair_losses for pair_losses, _ in pairs], axis=0)  # 2n anchors a pair
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={"loss": tf.reduce_mean(losses), "contrastive_accuracy": tf.reduce_mean(pairs[0][1])},
            features=features[: GLOBAL_CROPS * batch],
        )

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
