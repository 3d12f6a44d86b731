"""LARS, the layer-wise adaptive optimizer SimCLR and BYOL train with at large batches.

Keras ships no LARS. This one follows SimCLR's `tf2/lars_optimizer.py` (You et al. 2017
with the classic-momentum formulation): for each weight w with gradient g,

    g <- g + weight_decay * w                          (not for excluded weights)
    lr_w = lr * trust_coefficient * ||w|| / ||g||      (lr for excluded weights, or
                                                        when either norm is 0)
    v <- momentum * v + lr_w * g
    w <- w - v                                         (w - (momentum * v + lr_w * g)
                                                        with Nesterov)

Batch-norm scales and offsets and biases (`exclude`) get neither weight decay nor the
trust ratio, as in SimCLR and BYOL.

Examples:
    >>> import keras, numpy as np
    >>> w = keras.Variable(np.array([3.0, 4.0], "float32"), name="kernel")
    >>> optimizer = LARS(learning_rate=1.0, momentum=0.0, trust_coefficient=0.1)
    >>> optimizer.apply([np.array([0.0, 10.0], "float32")], [w])
    >>> w.numpy().tolist()  # lr_w = 0.1 * 5 / 10 = 0.05
    [3.0, 3.5]
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kssl")
class LARS(keras.optimizers.Optimizer):
    """Layer-wise Adaptive Rate Scaling with momentum (You et al. 2017).

    Args:
        learning_rate: a float or a `LearningRateSchedule` (SimCLR: 0.3 x B/256).
        momentum: momentum of the velocity, in [0, 1).
        weight_decay: L2 penalty added to the gradient before the trust ratio (SimCLR:
            1e-6, BYOL: 1.5e-6), not applied to `exclude`d weights.
        trust_coefficient: eta, the scale of the trust ratio (SimCLR: 0.001).
        nesterov: Nesterov momentum.
        exclude: substrings of variable names that get neither weight decay nor the
            trust ratio (default: batch-norm `gamma`/`beta` and `bias`).
        **kwargs: the arguments every Keras optimizer takes (`clipnorm`, `name`, ...).

    Reference:
        You et al. 2017, https://arxiv.org/abs/1708.03888; Chen et al. 2020 (SimCLR),
        appendix B.1.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum=0.9,
        weight_decay=0.0,
        trust_coefficient=0.001,
        nesterov=False,
        exclude=("gamma", "beta", "bias"),
        name="lars",
        **kwargs,
    ):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)  # decay is LARS's own, below
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum!r}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0. Received: weight_decay={weight_decay!r}")
        if not trust_coefficient > 0:
            raise ValueError(f"trust_coefficient must be > 0. Received: trust_coefficient={trust_coefficient!r}")
        self.momentum = float(momentum)
        self.lars_weight_decay = float(weight_decay)
        self.trust_coefficient = float(trust_coefficient)
        self.nesterov = bool(nesterov)
        self.exclude = tuple(exclude)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def adapts(self, variable) -> bool:
        """Whether `variable` gets weight decay and the trust ratio (not an excluded name)."""
        return not any(part in variable.name for part in self.exclude)

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self.velocities[self._get_variable_index(variable)]
        rate = learning_rate
        if self.adapts(variable):
            if self.lars_weight_decay:
                gradient = gradient + ops.cast(self.lars_weight_decay, variable.dtype) * variable
            weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
            gradient_norm = ops.sqrt(ops.sum(ops.square(gradient)))
            trust = ops.where(
                (weight_norm > 0) & (gradient_norm > 0),
                self.trust_coefficient * weight_norm / ops.maximum(gradient_norm, 1e-30),
                ops.ones_like(weight_norm),
            )
            rate = learning_rate * trust
        momentum = ops.cast(self.momentum, variable.dtype)
        new_velocity = momentum * velocity + rate * gradient
        self.assign(velocity, new_velocity)
        self.assign_sub(variable, momentum * new_velocity + rate * gradient if self.nesterov else new_velocity)

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "weight_decay": self.lars_weight_decay,
            "trust_coefficient": self.trust_coefficient,
            "nesterov": self.nesterov,
            "exclude": list(self.exclude),
        }
