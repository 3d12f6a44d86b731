import keras
import numpy as np
import pytest
from helpers import digits, tiny_encoder

from kssl.finetuning.discriminative import LayerwiseAdam, stage_learning_rates
from kssl.training import finetune


def numpy_adam(weights, gradients, learning_rates, steps, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
    """Kingma & Ba 2015, Algorithm 1 (Keras' epsilon placement), one learning rate per weight."""
    weights = [w.copy() for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t in range(1, steps + 1):
        for i, (g, lr) in enumerate(zip(gradients, learning_rates)):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g**2
            alpha = lr * np.sqrt(1 - beta_2**t) / (1 - beta_1**t)
            weights[i] = weights[i] - alpha * m[i] / (np.sqrt(v[i]) + epsilon)
    return weights


def test_layerwise_adam_matches_adam_with_a_learning_rate_per_layer(rng):
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(2, name="early"), keras.layers.Dense(2, name="head")]
    )
    weights = [w.numpy() for w in model.trainable_weights]
    gradients = [rng.normal(size=w.shape).astype("float32") for w in weights]
    optimizer = LayerwiseAdam(learning_rate=0.01, layer_multipliers={"early": 0.25})
    for _ in range(3):
        optimizer.apply(gradients, model.trainable_weights)
    expected = numpy_adam(weights, gradients, [0.0025, 0.0025, 0.01, 0.01], steps=3)
    for variable, value in zip(model.trainable_weights, expected):
        np.testing.assert_allclose(variable.numpy(), value, rtol=1e-5, atol=1e-7)
    restored = LayerwiseAdam.from_config(optimizer.get_config())
    assert restored.layer_multipliers == {"early": 0.25}


def test_stage_rates_decay_from_the_last_stage_to_the_stem():
    rates = stage_learning_rates(tiny_encoder(), 0.5)
    assert rates["stage4_block1_1_conv"] == 0.5 and rates["stage3_block1_1_conv"] == 0.25
    assert rates["stage1_block1_1_bn"] == 0.0625 and rates["stem_conv"] == 0.03125
    with pytest.raises(ValueError, match="stage_decay"):
        stage_learning_rates(tiny_encoder(), 1.5)


def test_gradual_unfreezing_with_discriminative_rates_and_l2_sp_trains_every_stage():
    labeled = digits().subset(range(64))
    encoder = tiny_encoder()
    start = {v.path: v.numpy() for v in encoder.weights}
    classifier, _ = finetune(
        encoder,
        labeled,
        mode="gradual",
        mode_options={"every_epochs": 1},
        stage_decay=0.5,
        l2_sp=0.01,
        epochs=6,
        batch_size=32,
        verbose=0,
    )
    assert isinstance(classifier.optimizer, LayerwiseAdam)
    assert len(classifier.anchors) == len(classifier.optimized_variables) - 2  # every encoder weight, not the head
    assert float(classifier.l2_sp_penalty()) > 0
    now = {v.path: v.numpy() for v in classifier.encoder.weights}
    assert not np.array_equal(now["stem_conv/kernel"], start["stem_conv/kernel"])  # unfrozen last, in epoch 6
