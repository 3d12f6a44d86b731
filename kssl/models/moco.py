"""MoCo v2: contrast each query with its key from a momentum encoder and a queue of old keys."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.errors import InputError
from kssl.layers.heads import moco_projector
from kssl.losses import check_temperature, info_nce_per_query
from kssl.models.base import ViewsLoss, encode_views
from kssl.models.momentum import MomentumModel
from kssl.runtime import distribute


@keras.saving.register_keras_serializable(package="kssl")
class MoCo(MomentumModel):
    """Momentum Contrast, v2.

    Queries come from the online encoder and projector, keys from their momentum copies
    (`target_encoder`, `target_projector`: an EMA with momentum m after every step). Each
    query is contrasted with the key of the other view of its image (positive) and with
    the `queue_size` keys of earlier batches (negatives), by InfoNCE at `temperature`
    (`kssl.losses.info_nce_per_query`). After every step the keys of the global batch, of
    every replica in replica order, enter the front of the queue and the oldest leave.

    By default the loss is symmetrised (each view is a query once), as in MoCo v3 and in
    SimSiam's comparison of MoCo v2 (Chen & He 2021, table 4), and both views' keys are
    enqueued; `symmetric=False` is MoCo v2 as published (queries of view 1 against keys
    of view 2, which alone are enqueued). Batch norm is not shuffled across devices (as
    in lightly); on several replicas kssl's encoders synchronise it instead.

    Args:
        encoder: a `keras.Model` mapping images to `(B, D)` features.
        projector: default `kssl.layers.heads.moco_projector(D)` (D -> D -> 128, no batch norm).
        temperature: InfoNCE temperature (MoCo v2: 0.2).
        queue_size: number of negative keys kept (4096 suits CIFAR-sized sets), at least
            one step's keys: the global batch size (twice it when `symmetric`). The queue
            shifts by a step's keys every step, so it need not be a multiple of them.
        momentum: key-encoder momentum m (paper: 0.999 for 200 ImageNet epochs; 0.99 suits
            short schedules).
        momentum_schedule: raise m to 1 on a cosine over the training (off by default, as
            in the paper).
        symmetric: symmetrised loss (default) or MoCo v2's one direction.
        probe_classes: see `SelfSupervisedModel`.

    Metrics: `loss`, `contrastive_accuracy` (how often the positive key beats every
    queued key) and `momentum`.

    Examples:
        >>> import numpy as np
        >>> from kssl.encoders import resnet
        >>> model = MoCo(resnet(10, width=0.125, image_size=8), queue_size=32)
        >>> model.compile(optimizer="sgd")
        >>> views = np.random.rand(2, 8, 8, 8, 3).astype("float32")
        >>> sorted(model.train_on_batch(tuple(views), return_dict=True))  # one step: its metrics
        ['contrastive_accuracy', 'loss', 'momentum']

    Reference:
        He et al. 2020, https://arxiv.org/abs/1911.05722; Chen et al. 2020 ("Improved
        baselines with momentum contrastive learning"), https://arxiv.org/abs/2003.04297.
    """

    metric_names = ("contrastive_accuracy", "momentum")
    nested_layers = ("projector",)

    def __init__(
        self,
        encoder,
        projector=None,
        temperature=0.2,
        queue_size=4096,
        momentum=0.99,
        momentum_schedule=False,
        symmetric=True,
        probe_classes=None,
        **kwargs,
    ):
        super().__init__(encoder, momentum, momentum_schedule, probe_classes=probe_classes, **kwargs)
        if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
            raise ValueError(f"queue_size must be a positive integer. Received: queue_size={queue_size!r}")
        self.temperature = check_temperature(temperature)
        self.queue_size = queue_size
        self.symmetric = bool(symmetric)
        self.projector = projector or moco_projector(self.feature_dim)
        self.projector.build((None, self.feature_dim))
        self.make_targets()
        # Random unit keys to start with, as MoCo's code; they leave the queue after
        # queue_size / keys-per-step steps.
        self.queue = self.add_weight(
            shape=(queue_size, self.projector.output_dim),
            initializer="random_normal",
            trainable=False,
            dtype="float32",
            name="queue",
        )

    @classmethod
    def check_batch_size(cls, batch_size: int, queue_size: int = 4096, symmetric: bool = True, **options) -> None:
        super().check_batch_size(batch_size)
        keys = batch_size * (2 if symmetric else 1)
        if queue_size < keys:
            raise InputError(
                f"MoCo's queue_size={queue_size} cannot hold one step's keys: each step enqueues {keys} keys "
                f"(batch size {batch_size}{' x 2 views' if symmetric else ''}). Use a queue_size of at least "
                f"{keys} (e.g. {max(4096, 2 * keys)}), or a batch size of at most "
                f"{queue_size // (2 if symmetric else 1)}."
            )

    def views_loss(self, views, training):
        batch = tf.shape(views[0])[0]
        features = encode_views(self.encoder, views, training)
        queries = self.projector(features, training=training)
        keys = self.target_projections(views, training)
        queue = tf.convert_to_tensor(self.queue)
        if self.symmetric:
            losses_1, hits_1 = info_nce_per_query(queries[:batch], keys[batch:], queue, self.temperature)
            losses_2, hits_2 = info_nce_per_query(queries[batch:], keys[:batch], queue, self.temperature)
            losses, hits = tf.concat([losses_1, losses_2], 0), tf.concat([hits_1, hits_2], 0)
            enqueued = [keys[batch:], keys[:batch]]
        else:
            losses, hits = info_nce_per_query(queries[:batch], keys[batch:], queue, self.temperature)
            enqueued = [keys[batch:]]
        return ViewsLoss(
            loss=distribute.global_mean(losses),
            metrics={
                "loss": tf.reduce_mean(losses),
                "contrastive_accuracy": tf.reduce_mean(hits),
                "momentum": self.current_momentum(),
            },
            features=features,
            state={"keys": enqueued},
        )

    def after_step(self, result):
        super().after_step(result)
        # Every replica's keys, view by view in replica order: the same on every replica.
        keys = tf.concat([distribute.all_gather(tf.cast(k, tf.float32)) for k in result.state["keys"]], axis=0)
        keys = tf.math.l2_normalize(keys, axis=1)
        count = tf.shape(keys)[0]
        tf.debugging.assert_less_equal(
            count, self.queue_size, message=f"MoCo's queue_size={self.queue_size} cannot hold one step's keys"
        )
        queue = tf.convert_to_tensor(self.queue)
        updated = tf.concat([keys, queue[: self.queue_size - count]], axis=0)
        distribute.update_variables([self.queue], [updated], lambda variable, value: variable.assign(value))

    def get_config(self):
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "queue_size": self.queue_size,
            "symmetric": self.symmetric,
        }
