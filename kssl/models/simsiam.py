"""SimSiam: a predictor and a stop-gradient, no negatives and no momentum encoder."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.layers.heads import simsiam_predictor, simsiam_projector
from kssl.losses import simsiam
from kssl.models.base import SelfSupervisedModel, ViewsLoss, embedding_std, encode_views
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class SimSiam(SelfSupervisedModel):
    """Simple Siamese representation learning.

    Both views go through the encoder and projector; a predictor maps one view's
    projection to the other's, which is held fixed (stop-gradient). The loss is the
    symmetric negative cosine, in [-1, 1].

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: default `kssl.layers.heads.simsiam_projector(D)` (3 layers, batch norm
            on each, D wide).
        predictor: default `kssl.layers.heads.simsiam_predictor(D)` (bottleneck D/4).
        probe_classes: see `SelfSupervisedModel`.

    Metrics: `loss`, and `embedding_std`: the spread of the normalised projections
    (about 1 when healthy; it drops to 0 if the representation collapses).

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = SimSiam(resnet(10, width=0.125, image_size=8))
        >>> model.compile(optimizer="sgd")
        >>> views = np.random.rand(2, 8, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['embedding_std', 'loss']

    Reference:
        Chen and He 2021, https://arxiv.org/abs/2011.10566.
    """

    metric_names = ("embedding_std",)
    nested_layers = ("projector", "predictor")

    def __init__(self, encoder, projector=None, predictor=None, probe_classes=None, **kwargs):
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        self.projector = projector or simsiam_projector(self.feature_dim)
        self.predictor = predictor or simsiam_predictor(self.projector.output_dim)
        self.projector.build((None, self.feature_dim))
        self.predictor.build((None, self.projector.output_dim))

    def views_loss(self, views, training):
        batch = tf.shape(views[0])[0]
        features = encode_views(self.encoder, views, training)
        z = self.projector(features, training=training)
        p = self.predictor(z, training=training)
        losses = simsiam(p[:batch], p[batch:], z[:batch], z[batch:])
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={"loss": tf.reduce_mean(losses), "embedding_std": embedding_std(z[:batch])},
            features=features,
        )
