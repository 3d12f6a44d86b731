"""VICReg: variance, invariance and covariance regularisation of the two views' embeddings."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.layers.heads import barlow_twins_projector
from kssl.losses import vicreg
from kssl.models.base import SelfSupervisedModel, global_batch_loss
from kssl.models.multicrop import GLOBAL_CROPS, split, symmetric_pairs


@keras.saving.register_keras_serializable(package="kssl")
class VICReg(SelfSupervisedModel):
    """Variance-Invariance-Covariance Regularization.

    The variance and covariance terms are computed over the **global** batch (every
    replica's embeddings), so several replicas compute what one device computes.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: the "expander"; default `kssl.layers.heads.barlow_twins_projector(D)`
            (3 layers, 4D wide), the paper's shape.
        invariance_weight: the weight of the invariance (mean squared distance) term; the paper's 25.
        variance_weight: the weight of the variance (hinge on each dimension's spread) term; 25.
        covariance_weight: the weight of the covariance (off-diagonal) term; 1.
        local_crops: small crops per image (multi-crop, `kssl.models.multicrop`); the
            loss is then VICReg's mean over the pairs of the two global crops and of each
            global crop with each local one (`symmetric_pairs`).
        probe_classes: see `SelfSupervisedModel`.

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = VICReg(resnet(10, width=0.125, image_size=8))
        >>> model.compile(optimizer="sgd")
        >>> views = np.random.rand(2, 8, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['embedding_std', 'loss']

    Reference:
        Bardes, Ponce and LeCun 2022, https://arxiv.org/abs/2105.04906.
    """

    metric_names = ("embedding_std",)
    nested_layers = ("projector",)
    supports_local_crops = True

    def __init__(
        self,
        encoder,
        projector=None,
        invariance_weight=25.0,
        variance_weight=25.0,
        covariance_weight=1.0,
        local_crops=0,
        probe_classes=None,
        **kwargs,
    ):
        super().__init__(encoder, probe_classes=probe_classes, local_crops=local_crops, **kwargs)
        self.weights_ = {
            "invariance_weight": float(invariance_weight),
            "variance_weight": float(variance_weight),
            "covariance_weight": float(covariance_weight),
        }
        for name, value in self.weights_.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0. Received: {name}={value!r}")
        self.projector = projector or barlow_twins_projector(self.feature_dim)
        self.projector.build((None, self.feature_dim))

    def views_loss(self, views, training):
        batch = tf.shape(views[0])[0]
        features = self.encode_crops(views, training)
        z = split(self.projector(features, training=training), batch, len(views))
        pairs = [vicreg(z[i], z[j], gather_distributed=True, **self.weights_) for i, j in symmetric_pairs(len(views))]
        return global_batch_loss(tf.add_n(pairs) / len(pairs), features[: GLOBAL_CROPS * batch], z[0])

    def get_config(self):
        return {**super().get_config(), **self.weights_}
