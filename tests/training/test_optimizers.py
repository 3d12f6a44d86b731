"""LARS against a NumPy re-derivation of SimCLR's update, step by step."""

import keras
import numpy as np
import pytest

from kssl.training.optimizers import LARS


def numpy_lars(weights, gradients, names, lr, momentum, weight_decay, eta, nesterov, steps):
    """You et al. 2017, as SimCLR's lars_optimizer.py applies it (classic momentum)."""
    weights = [np.array(w, np.float64) for w in weights]
    velocities = [np.zeros_like(w) for w in weights]
    for step in range(steps):
        for i, (w, name) in enumerate(zip(weights, names)):
            g = np.array(gradients[step][i], np.float64)
            rate = lr
            if name not in ("gamma", "beta", "bias"):
                g = g + weight_decay * w
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                rate = lr * (eta * w_norm / g_norm if w_norm > 0 and g_norm > 0 else 1.0)
            velocities[i] = momentum * velocities[i] + rate * g
            weights[i] = w - (momentum * velocities[i] + rate * g if nesterov else velocities[i])
    return weights


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_lars_matches_numpy_reference(rng, nesterov, weight_decay):
    names = ["kernel", "bias", "gamma", "kernel"]
    shapes = [(3, 4), (4,), (4,), (2, 2)]
    initial = [rng.normal(size=s).astype("float32") for s in shapes]
    initial[3][:] = 0  # a zero weight: trust ratio 1
    gradients = [[rng.normal(size=s).astype("float32") for s in shapes] for _ in range(3)]
    variables = [keras.Variable(w, name=n) for w, n in zip(initial, names)]
    optimizer = LARS(0.5, momentum=0.9, weight_decay=weight_decay, trust_coefficient=0.01, nesterov=nesterov)
    for step_gradients in gradients:
        optimizer.apply(step_gradients, variables)
    expected = numpy_lars(initial, gradients, names, 0.5, 0.9, weight_decay, 0.01, nesterov, 3)
    for variable, want in zip(variables, expected):
        np.testing.assert_allclose(variable.numpy(), want, rtol=1e-5, atol=1e-6, err_msg=variable.name)


def test_excluded_weights_take_plain_momentum_steps(rng):
    bias = keras.Variable(np.ones(3, "float32"), name="bias")
    optimizer = LARS(0.1, momentum=0.0, weight_decay=0.5, trust_coefficient=0.001)
    optimizer.apply([np.full(3, 2.0, "float32")], [bias])
    np.testing.assert_allclose(bias.numpy(), 1 - 0.1 * 2.0)  # no decay, no trust ratio


def test_lars_round_trips_its_config_and_rejects_bad_values():
    optimizer = LARS(0.2, momentum=0.8, weight_decay=1e-6, trust_coefficient=0.002, nesterov=True)
    clone = LARS.from_config(optimizer.get_config())
    assert clone.get_config() == optimizer.get_config()
    with pytest.raises(ValueError, match="momentum"):
        LARS(momentum=1.5)
    with pytest.raises(ValueError, match="trust_coefficient"):
        LARS(trust_coefficient=0)
