"""Barlow Twins: the two views' embeddings' cross-correlation driven to the identity."""

from __future__ import annotations

import keras

from kssl.layers.heads import barlow_twins_projector
from kssl.losses import barlow_twins
from kssl.models.base import SelfSupervisedModel, global_batch_loss, project_views


@keras.saving.register_keras_serializable(package="kssl")
class BarlowTwins(SelfSupervisedModel):
    """Self-supervised learning by redundancy reduction.

    The cross-correlation matrix of the two views' standardised embeddings is computed
    over the **global** batch (every replica's embeddings), as the paper's code does,
    so several replicas compute what one device computes.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: default `kssl.layers.heads.barlow_twins_projector(D)` (3 layers, 4D wide).
        lambda_: weight of the redundancy (off-diagonal) term; the paper's 5e-3.
        probe_classes: see `SelfSupervisedModel`.

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = BarlowTwins(resnet(10, width=0.125, image_size=8))
        >>> model.compile(optimizer="sgd")
        >>> views = np.random.rand(2, 8, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['embedding_std', 'loss']

    Reference:
        Zbontar et al. 2021, https://arxiv.org/abs/2103.03230.
    """

    metric_names = ("embedding_std",)
    nested_layers = ("projector",)

    def __init__(self, encoder, projector=None, lambda_=5e-3, probe_classes=None, **kwargs):
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        if not lambda_ >= 0:
            raise ValueError(f"lambda_ must be >= 0. Received: lambda_={lambda_!r}")
        self.lambda_ = float(lambda_)
        self.projector = projector or barlow_twins_projector(self.feature_dim)
        self.projector.build((None, self.feature_dim))

    def views_loss(self, views, training):
        features, z1, z2 = project_views(self, views, training)
        return global_batch_loss(barlow_twins(z1, z2, lambda_=self.lambda_, gather_distributed=True), features, z1)

    def get_config(self):
        return {**super().get_config(), "lambda_": self.lambda_}
