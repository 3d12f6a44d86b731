"""Momentum (EMA) copies of networks, and `MomentumModel`, the base of BYOL and MoCo.

A momentum copy has the online network's architecture and starts from its weights;
after every optimizer step each of its weights moves towards the online one:
`target = m * target + (1 - m) * online`. kssl keeps the copies `trainable` (so their
batch norm normalises with batch statistics, as in both papers) and lists them in the
model's `momentum_layers`, which keeps them out of the optimizer.

Examples:
    >>> import keras, numpy as np
    >>> online = keras.layers.Dense(2, kernel_initializer="ones")
    >>> online.build((None, 3))
    >>> target = momentum_copy(online, (None, 3))
    >>> _ = online.kernel.assign(np.zeros((3, 2), "float32"))
    >>> ema_update([target], [online], 0.75)
    >>> float(target.kernel.numpy()[0, 0])
    0.75
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from kssl.models.base import SelfSupervisedModel, encode_views
from kssl.runtime import distribute


def momentum_copy(layer, input_shape=None):
    """A new layer with `layer`'s architecture and a copy of its current weights.

    Functional and sequential models are cloned with `keras.models.clone_model`; other
    layers are rebuilt from their config and built on `input_shape`.
    """
    if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
        copy = keras.models.clone_model(layer)
    else:
        copy = type(layer).from_config(layer.get_config())
        if not copy.built:
            copy.build(input_shape)
    copy.set_weights(layer.get_weights())
    return copy


def ema_update(targets, sources, momentum):
    """`t = momentum * t + (1 - momentum) * s` for every weight of each target/source pair.

    Trainable weights follow the EMA; non-trainable ones (batch-norm moving statistics)
    keep their own running averages, computed from the copy's own forward passes (as in
    BYOL's and MoCo's reference code). Safe inside a multi-replica train step.
    """
    target_variables, source_variables = [], []
    for target, source in zip(targets, sources):
        target_variables += target.trainable_variables
        source_variables += source.trainable_variables
    if len(target_variables) != len(source_variables):
        raise ValueError(
            f"A momentum copy has {len(target_variables)} trainable weights and its online network "
            f"{len(source_variables)}: they must have the same architecture."
        )
    momentum = tf.cast(momentum, tf.float32)

    def update(target, source):
        weight = tf.cast(momentum, target.dtype)
        return target.assign(weight * target + (1 - weight) * tf.cast(source, target.dtype))

    distribute.update_variables(target_variables, source_variables, update)


def cosine_momentum(base, progress):
    """BYOL's schedule: `1 - (1 - base) * (cos(pi * progress) + 1) / 2`, from `base` at
    progress 0 to 1 at progress 1 (Grill et al. 2020, section 3.2).

    Examples:
        >>> [round(float(cosine_momentum(0.99, p)), 4) for p in (0.0, 0.5, 1.0)]
        [0.99, 0.995, 1.0]
    """
    progress = tf.clip_by_value(tf.cast(progress, tf.float32), 0.0, 1.0)
    return 1.0 - (1.0 - base) * (tf.cos(math.pi * progress) + 1.0) / 2.0


class MomentumModel(SelfSupervisedModel):
    """A method with an EMA copy of its encoder and projector (BYOL's target, MoCo's keys).

    It owns the `momentum` and `momentum_schedule` arguments, the copies
    (`target_encoder`, `target_projector`, made from `encoder` and `projector`), the
    momentum of the current step, and the EMA update after every step. A subclass builds
    `self.projector` and calls `self.make_targets()`, then computes its loss.

    Args:
        momentum: m at the start of training, in [0, 1].
        momentum_schedule: raise m to 1 on a cosine over the training
            (`training_progress`, kept up to date by `kssl.pretrain` for epochs and for a
            time budget alike); False keeps it constant.
    """

    momentum_layers = ("target_encoder", "target_projector")
    uses_training_progress = True

    def __init__(self, encoder, momentum=0.99, momentum_schedule=True, probe_classes=None, **kwargs):
        super().__init__(encoder, probe_classes=probe_classes, **kwargs)
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum must be in [0, 1]. Received: momentum={momentum!r}")
        self.momentum = float(momentum)
        self.momentum_schedule = bool(momentum_schedule)

    def make_targets(self):
        """Creates the momentum copies of `encoder` and `projector` (call once both exist)."""
        self.target_encoder = momentum_copy(self.encoder)
        self.target_projector = momentum_copy(self.projector, (None, self.feature_dim))

    def current_momentum(self):
        """m for this step: `cosine_momentum(momentum, training_progress)`, or constant."""
        if not self.momentum_schedule:
            return tf.constant(self.momentum, tf.float32)
        return cosine_momentum(self.momentum, self.progress_before_step())

    def target_projections(self, views, training):
        """The target network's projections of the views stacked in order (no gradient)."""
        features = encode_views(self.target_encoder, views, training)
        return tf.stop_gradient(self.target_projector(features, training=training))

    def after_step(self, result):
        online, targets = [self.encoder, self.projector], [self.target_encoder, self.target_projector]
        ema_update(targets, online, self.current_momentum())

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "momentum_schedule": self.momentum_schedule}
