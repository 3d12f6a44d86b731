"""Loss scaling under mixed_float16 decides for all replicas at once."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_encoder, two_replicas

from kssl.runtime.loss_scaling import GlobalLossScaleOptimizer


def step_with_an_overflow_on_replica_1(optimizer_class):
    """One apply on 2 replicas whose gradient is finite on replica 0 and inf on replica 1."""
    strategy = two_replicas()
    with strategy.scope():
        weights = keras.Variable(np.ones((3,), "float32"))
        optimizer = optimizer_class(keras.optimizers.SGD(0.1), initial_scale=1024.0)
        optimizer.build([weights])

    @tf.function
    def step():
        def replica():
            replica_id = tf.distribute.get_replica_context().replica_id_in_sync_group
            gradient = tf.ones((3,)) * tf.where(replica_id > 0, np.float32(np.inf), 1.0)
            optimizer.apply([gradient], [weights])

        strategy.run(replica)

    step()
    return [w.numpy() for w in weights.value.values], [s.numpy() for s in optimizer.dynamic_scale.value.values]


def test_an_overflow_on_one_replica_skips_the_step_on_every_replica_and_halves_the_scale():
    weights, scales = step_with_an_overflow_on_replica_1(GlobalLossScaleOptimizer)
    for copy in weights:
        np.testing.assert_array_equal(copy, np.ones(3))  # no replica applied the step
    assert scales == [512.0, 512.0]


def test_keras_own_optimizer_decides_from_the_first_replica_and_applies_the_overflow():
    # What kssl's optimizer fixes (Keras 3.15): if this starts failing, Keras decides
    # globally itself, and kssl's subclass can go.
    weights, scales = step_with_an_overflow_on_replica_1(keras.optimizers.LossScaleOptimizer)
    assert not np.isfinite(weights[0]).all() and scales == [1024.0, 1024.0]


@pytest.fixture
def float16_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    yield
    keras.config.set_dtype_policy(previous)


def test_kssl_models_compile_with_the_global_optimizer_under_float16(float16_policy, tmp_path):
    import kssl

    classifier = kssl.Classifier(tiny_encoder(), num_classes=3)
    classifier.compile(optimizer="adam")
    assert isinstance(classifier.optimizer, GlobalLossScaleOptimizer)
    simclr = kssl.SimCLR(tiny_encoder())
    simclr.compile(optimizer=keras.optimizers.SGD(0.1))
    assert isinstance(simclr.optimizer, GlobalLossScaleOptimizer)
    classifier.save(tmp_path / "classifier.keras")
    loaded = keras.saving.load_model(tmp_path / "classifier.keras")
    assert isinstance(loaded.optimizer, GlobalLossScaleOptimizer)


def test_float32_keeps_the_optimizer_as_given():
    import kssl

    classifier = kssl.Classifier(tiny_encoder(), num_classes=3)
    classifier.compile(optimizer=keras.optimizers.Adam(1e-3))
    assert type(classifier.optimizer) is keras.optimizers.Adam
