"""BYOL: the target network is an EMA of the online one, on every replica, never optimized."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digits, tiny_encoder, two_replicas

from kssl.models import BYOL
from kssl.models.momentum import cosine_momentum
from kssl.training.callbacks import TrainingProgress


def device_copies(variable):
    """Every device's copy of a (possibly mirrored) Keras variable, as NumPy arrays."""
    value = variable.value
    components = value.values if isinstance(value, tf.distribute.DistributedValues) else [value]
    return [np.array(component.numpy()) for component in components]


def pairs(model):
    online = model.encoder.trainable_variables + model.projector.trainable_variables
    target = model.target_encoder.trainable_variables + model.target_projector.trainable_variables
    return list(zip(online, target))


@pytest.mark.parametrize("strategy", [None, "two_replicas"])
def test_target_moves_towards_online_by_one_minus_momentum_on_every_replica(strategy, rng):
    strategy = two_replicas() if strategy else tf.distribute.get_strategy()
    views = tuple(rng.random((2, 8, 16, 16, 3)).astype("float32"))
    with strategy.scope():
        model = BYOL(tiny_encoder(), momentum=0.75, momentum_schedule=False)
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    before = [(np.array(o.numpy()), np.array(t.numpy())) for o, t in pairs(model)]
    np.testing.assert_array_equal(before[0][0], before[0][1])  # the target starts as a copy
    model.fit(tf.data.Dataset.from_tensors(views), verbose=0, shuffle=False)
    moved = 0
    for (online, target), (online_before, target_before) in zip(pairs(model), before):
        expected = 0.75 * target_before + 0.25 * online.numpy()
        for copy in device_copies(target):
            np.testing.assert_allclose(copy, expected, rtol=1e-5, atol=1e-7, err_msg=target.path)
        moved += not np.allclose(online.numpy(), online_before)
    assert moved > 10  # the online network did train


def test_target_network_is_not_optimized_and_not_saved_in_config():
    model = BYOL(tiny_encoder())
    model.compile(optimizer="sgd")
    optimized = {id(v) for v in model.optimized_variables}
    target = model.target_encoder.trainable_variables + model.target_projector.trainable_variables
    assert target and not optimized & {id(v) for v in target}
    assert len(model.optimized_variables) + len(target) == len(model.trainable_variables)
    assert "target_encoder" not in model.get_config()


def test_momentum_follows_the_cosine_over_training_progress():
    model = BYOL(tiny_encoder(), momentum=0.99)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    callback = TrainingProgress(total_steps=4)
    callback.set_model(model)
    callback.on_train_begin()
    taus = []
    for step in range(5):
        model.optimizer.iterations.assign(step + 1)  # as after_step sees it: this step counted
        taus.append(float(model.current_momentum()))
    expected = [1 - 0.01 * (np.cos(np.pi * k / 4) + 1) / 2 for k in range(5)]
    np.testing.assert_allclose(taus, expected, rtol=1e-6)
    assert float(cosine_momentum(0.9, 2.0)) == 1.0  # clipped past the end


def test_views_are_asymmetric_where_blur_is_on():
    small = BYOL.view_augmentations(32)
    large_1, large_2 = BYOL.view_augmentations(96)
    assert small[0].effective_blur_probability == small[1].effective_blur_probability == 0
    assert (large_1.effective_blur_probability, large_2.effective_blur_probability) == (1.0, 0.1)
    assert (large_1.solarize_probability, large_2.solarize_probability) == (0.0, 0.2)


def test_the_momentum_schedule_is_the_same_with_several_steps_per_execution():
    """The progress is read from the optimizer's step count inside each step, so running
    4 steps per call of the train function trains to the same weights."""
    from kssl.training import pretrain

    images = digits().subset(range(64))
    weights = []
    for steps_per_execution in (1, 4):
        keras.utils.set_random_seed(0)
        model, _ = pretrain(images, tiny_encoder(), epochs=2, batch_size=16, method="byol", verbose=0,
                            steps_per_execution=steps_per_execution)  # fmt: skip
        assert int(model.optimizer.iterations.numpy()) == 8  # two calls of 4 steps: the schedule spans both
        weights.append(model.target_encoder.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
