"""Views finished on the device: the same views as on the host, by the strategy's prefetch, under XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_encoder, two_replicas

import kssl
import kssl.data.device
import kssl.runtime.precision
import kssl.training.pretraining
from kssl.data.augment import ViewAugmentation, finish_views
from kssl.data.device import finish_unfinished, is_unfinished, to_device
from kssl.data.pipeline import reader_for, view_pairs
from kssl.data.sources import from_arrays
from kssl.models.simclr import SimCLR


def _images(rng, count=16, size=24):
    return from_arrays(rng.integers(0, 256, (count, size, size, 3), dtype=np.uint8), np.arange(count) % 2)


def _all_on(size=16):
    # Every branch on, with probabilities that give a mix of taken and skipped images.
    return ViewAugmentation(size, blur_probability=0.5, solarize_probability=0.3)


def test_the_device_path_finishes_the_same_views_as_the_host_path(rng):
    images = _images(rng)
    augmentation = _all_on()
    host = next(iter(view_pairs(images, 8, augmentation, seed=3)))
    unfinished = next(iter(view_pairs(images, 8, augmentation, seed=3, on_device=True)))
    assert is_unfinished(unfinished)
    assert all(crops.dtype == tf.uint8 for crops in unfinished["crops"])
    with tf.device("/cpu:1"):  # the device path run on another device than the pipeline's
        finished = tf.function(finish_unfinished)(unfinished)
    for on_host, on_device in zip(host, finished):
        assert on_device.device.endswith("CPU:1")
        # The same views to float rounding (graph rewrites may turn /255 into *1/255).
        np.testing.assert_allclose(on_host.numpy(), on_device.numpy(), atol=2e-6)


def test_under_xla_every_branch_is_computed_and_gives_the_same_views(rng):
    augmentation = _all_on()
    drawn = augmentation.finishing_parameters(augmentation.draw([4, 5], 12))
    crops = tf.constant(rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8))
    reference = finish_views(crops, drawn).numpy()
    compiled = tf.function(lambda c, p: finish_views(c, p, compute_all_branches=True), jit_compile=True)
    np.testing.assert_allclose(compiled(crops, drawn).numpy(), reference, atol=2e-6)
    # Why: gathering the images that take a branch has a data-dependent shape.
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.function(lambda c, p: finish_views(c, p), jit_compile=True)(crops, drawn)


def _trained_weights(images, on_device, strategy=None, jit_compile=False, steps=2, steps_per_execution=1):
    keras.utils.set_random_seed(0)
    with (strategy or tf.distribute.get_strategy()).scope():  # no copy, so the heads draw the same weights
        encoder = tiny_encoder(16)
    model, _ = kssl.pretrain(
        images,
        encoder,
        epochs=steps * 8 / len(images),
        batch_size=8,
        augmentation=_all_on(),
        strategy=strategy,
        jit_compile=jit_compile,
        verbose=0,
        augment_on_device=on_device,
        probe=True,  # batches carry labels too
        steps_per_execution=steps_per_execution,
    )
    assert model.optimizer.iterations.numpy() == steps
    return model.encoder.get_weights()


_HOST_REFERENCE = []


def _host_reference(images):
    """The host path's weights after 2 steps, computed once for the tests that compare with it."""
    if not _HOST_REFERENCE:
        _HOST_REFERENCE.append((images, _trained_weights(images, on_device=False, steps=2)))
    reference_images, weights = _HOST_REFERENCE[0]
    np.testing.assert_array_equal(reference_images.images, images.images)
    return weights


def test_one_gpus_defaults_simulated_on_a_cpu_device_train_as_the_cpu_path(rng, monkeypatch):
    # What `pretrain` does on one GPU, with /cpu:1 as the GPU: views finished in the step,
    # batches prefetched to the device by a OneDeviceStrategy, the step compiled by XLA
    # (so every branch is computed), and several steps per call.
    images = _images(rng)
    host = _host_reference(images)
    monkeypatch.setattr(kssl.runtime.precision, "gpu_devices", lambda: ["/device:CPU:1"])
    monkeypatch.setattr(kssl.training.pretraining, "has_gpu", lambda: True)
    device = _trained_weights(images, on_device=None, jit_compile=True, steps=2, steps_per_execution=2)
    for a, b in zip(host, device):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # XLA's fusions round differently


def test_two_replicas_finish_their_own_rows_as_one_device_does(rng):
    images = _images(rng)
    one = _host_reference(images)
    two = _trained_weights(images, on_device=True, strategy=two_replicas())
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_without_a_strategy_batches_are_prefetched_to_the_device(rng):
    images = _images(rng)

    def pairs(on_device):  # a new dataset per iterator: a second one would shuffle anew
        return view_pairs(images, 8, _all_on(), seed=1, on_device=on_device)

    def prefetched():
        return to_device(pairs(on_device=True), tf.distribute.get_strategy(), device="/cpu:1")

    batch = next(iter(prefetched()))
    assert batch["crops"][0].device.endswith("CPU:1")

    def trained(dataset):  # fit takes the prefetched dataset, and trains on the same batches
        keras.utils.set_random_seed(0)
        model = SimCLR(tiny_encoder(16))
        model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
        model.fit(dataset, steps_per_epoch=2, verbose=0)
        return model.get_weights()

    for a, b in zip(trained(prefetched()), trained(pairs(on_device=False))):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # float rounding; other batches move ~1e-1
    # Under a strategy, fit distributes (and prefetches) the dataset itself.
    dataset = pairs(on_device=True)
    assert to_device(dataset, two_replicas(), device="/cpu:1") is dataset


def test_whole_dataset_constants_stay_on_the_host(rng):
    images = _images(rng)
    with tf.device("/cpu:1"):  # stands in for the first GPU, where an eager constant would land
        reader = reader_for(images)
        labels = reader.labels()
    assert reader.images.device.endswith("CPU:0") and labels.device.endswith("CPU:0")
