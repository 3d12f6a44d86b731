"""FusedBatchNormalization against Keras' own BatchNormalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import two_replicas

from kssl.layers import FusedBatchNormalization

CONFIG = dict(momentum=0.9, epsilon=1e-3)  # >= the fused kernel's minimum, so both compute the same


def _pair(**config):
    fused, reference = FusedBatchNormalization(**config), keras.layers.BatchNormalization(**config)
    for layer in (fused, reference):
        layer.build((None, 5, 5, 3))
    gamma = np.array([0.5, 1.0, 2.0], "float32")
    for layer in (fused, reference):
        if layer.scale:
            layer.gamma.assign(gamma)
        if layer.center:
            layer.beta.assign(-gamma)
    return fused, reference


def _train_step(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y**3)  # a non-linear loss so gradients depend on the normalisation
    variables = layer.trainable_variables
    grads = tape.gradient(loss, [x, *variables])
    return y, grads


@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False)])
def test_training_step_matches_keras_batch_norm(rng, center, scale):
    fused, reference = _pair(center=center, scale=scale, **CONFIG)
    for _ in range(3):  # moving statistics accumulate over several steps
        x = tf.constant(rng.normal(2.0, 3.0, (8, 5, 5, 3)).astype("float32"))
        y_fused, grads_fused = _train_step(fused, x)
        y_reference, grads_reference = _train_step(reference, x)
        np.testing.assert_allclose(y_fused, y_reference, rtol=1e-4, atol=1e-4)
        for g_fused, g_reference in zip(grads_fused, grads_reference):
            np.testing.assert_allclose(g_fused, g_reference, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-5, atol=1e-6)


def test_moving_variance_uses_the_biased_batch_variance(rng):
    layer = FusedBatchNormalization(momentum=0.0, epsilon=1e-3)
    x = rng.normal(0.0, 2.0, (4, 3, 3, 2)).astype("float32")
    layer(x, training=True)
    np.testing.assert_allclose(layer.moving_mean, x.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=(0, 1, 2)), rtol=1e-5)


def test_inference_and_frozen_layers_use_moving_statistics(rng):
    fused, reference = _pair(**CONFIG)
    x = rng.normal(1.0, 2.0, (4, 5, 5, 3)).astype("float32")
    fused(x, training=True)
    reference(x, training=True)
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False), rtol=1e-5, atol=1e-5)
    fused.trainable = False
    before = fused.moving_mean.numpy().copy()
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=False), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(fused.moving_mean, before)


def test_bfloat16_policy_keeps_float32_statistics(rng):
    fused = FusedBatchNormalization(dtype="mixed_bfloat16", **CONFIG)
    reference = keras.layers.BatchNormalization(dtype="mixed_bfloat16", **CONFIG)
    x = tf.constant(rng.normal(2.0, 3.0, size=(4, 3, 3, 2)), tf.bfloat16)
    y = fused(x, training=True)
    assert y.dtype == tf.bfloat16
    assert fused.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y, tf.float32), tf.cast(reference(x, training=True), tf.float32), atol=0.05)
    np.testing.assert_allclose(fused.moving_mean, reference.moving_mean, rtol=1e-3)
    np.testing.assert_allclose(fused.moving_variance, reference.moving_variance, rtol=1e-3)


def test_float64_inputs_fall_back_to_keras(rng):
    layer = FusedBatchNormalization(dtype="float64", momentum=0.0, epsilon=1e-3)
    x = rng.normal(1.0, 2.0, (4, 3, 3, 2))
    y = layer(x, training=True)
    assert y.dtype == tf.float64
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=(0, 1, 2)), rtol=1e-10)


def test_synchronized_layer_on_two_replicas_uses_global_statistics(rng):
    strategy = two_replicas()
    x = rng.normal(0.0, 1.0, (8, 3, 3, 2)).astype("float32")
    x[4:] += 5.0  # the second replica's half has a different mean
    with strategy.scope():
        layer = FusedBatchNormalization(momentum=0.0, epsilon=1e-3, synchronized=True)
        layer.build(x.shape)
    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
    strategy.run(tf.function(lambda batch: layer(batch, training=True)), args=(next(iter(dataset)),))
    # Per-replica variances would average to about 1; the global one includes the mean shift.
    np.testing.assert_allclose(layer.moving_variance, x.var(axis=(0, 1, 2)), rtol=1e-4)
    assert np.all(layer.moving_variance.numpy() > 5.0)


def test_saves_and_loads_as_keras_file(tmp_path, rng):
    inputs = keras.Input((5, 5, 3))
    model = keras.Model(inputs, FusedBatchNormalization(**CONFIG)(inputs))
    x = rng.normal(size=(2, 5, 5, 3)).astype("float32")
    model(x, training=True)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert isinstance(loaded.layers[-1], FusedBatchNormalization)
    np.testing.assert_allclose(loaded(x), model(x), rtol=1e-6, atol=1e-6)


def _synchronized_step(layer_class, x, strategy, count_ops=False):
    """One training step of a synchronized layer on 2 replicas: outputs, gradients, statistics."""
    with strategy.scope():
        layer = layer_class(momentum=0.5, epsilon=1e-3, synchronized=True)
        layer.build(x.shape)
        layer.gamma.assign([0.5, 2.0])
        layer.beta.assign([0.1, -0.3])

    def replica_step(batch):
        with tf.GradientTape() as tape:
            tape.watch(batch)
            y = layer(batch, training=True)
            loss = tf.reduce_sum(y**3)
        return (y, *tape.gradient(loss, [batch, layer.gamma, layer.beta]))

    @tf.function
    def step(batch):
        return strategy.run(replica_step, args=(batch,))

    dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(len(x)))
    batch = next(iter(dataset))
    collectives = _count_all_reduces(step.get_concrete_function(batch).graph) if count_ops else None
    results = [np.concatenate([t.numpy() for t in strategy.experimental_local_results(r)]) for r in step(batch)]
    return results, layer.moving_mean.numpy(), layer.moving_variance.numpy(), collectives


def _count_all_reduces(graph):
    """The all-reduce ops of a traced step (MirroredStrategy on two CPUs: CollectiveReduceV2)."""
    return sum(op.type in ("CollectiveReduceV2", "NcclAllReduce") for op in graph.get_operations())


def test_the_one_collective_synchronized_path_equals_keras_synchronized_layer(rng):
    strategy = two_replicas()
    x = rng.normal(0.0, 1.0, (8, 3, 3, 2)).astype("float32")
    x[4:] = x[4:] * 3.0 + 5.0  # the replicas' halves differ in mean and scale
    ours, mean, variance, collectives = _synchronized_step(FusedBatchNormalization, x, strategy, count_ops=True)
    keras_own, keras_mean, keras_variance, keras_collectives = _synchronized_step(
        keras.layers.BatchNormalization, x, strategy, count_ops=True
    )
    # Per replica and training step: one all-reduce forward, and its gradient's backward;
    # Keras' layer issued three forward and two backward (measured: 10 for both replicas).
    assert collectives == 2 * 2 and keras_collectives == 2 * 5
    for a, b in zip(ours, keras_own):  # outputs, input gradients, gamma and beta gradients
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(mean, keras_mean, rtol=1e-6)
    np.testing.assert_allclose(variance, keras_variance, rtol=1e-5)
    np.testing.assert_allclose(variance, 0.5 + 0.5 * x.var(axis=(0, 1, 2)), rtol=1e-5)  # global statistics
