"""A training step that cannot fit in memory is refused before any work, on a CPU."""

import warnings

import numpy as np
import pytest

import kssl.runtime.memory
from kssl.data.augment import ViewAugmentation
from kssl.encoders import conv4, resnet
from kssl.errors import InputError
from kssl.runtime.memory import activation_bytes, check_training_memory


def test_activation_bytes_count_every_layer_output_in_its_compute_dtype():
    import keras

    encoder = resnet(10, width=0.125, image_size=16)
    expected = sum(int(np.prod(layer.output.shape[1:])) * 4 for layer in encoder.layers)
    assert activation_bytes(encoder) == expected
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # conftest restores float32
    half = activation_bytes(resnet(10, width=0.125, image_size=16))
    assert expected / 2 < half < expected  # bfloat16 outputs but the float32 input and pooled features
    keras.mixed_precision.set_global_policy("float32")
    # A nested model (a keras.applications backbone inside kssl's encoder) counts its layers.
    outer = keras.Sequential([keras.Input((16, 16, 3)), conv4(width=0.125, image_size=16)])
    assert activation_bytes(outer) == activation_bytes(conv4(width=0.125, image_size=16))


@pytest.fixture
def cpu_with(monkeypatch):
    def machine(available):
        monkeypatch.setattr(kssl.runtime.memory, "available_bytes", lambda: available)
        monkeypatch.setattr("kssl.runtime.precision.has_gpu", lambda: False)

    return machine


def test_a_step_far_over_the_memory_is_refused_near_it_warned_and_within_it_passes(cpu_with):
    encoder = conv4(width=0.125, image_size=16)
    views = [ViewAugmentation(16)] * 2
    needed = 2 * 64 * activation_bytes(encoder)
    cpu_with(needed)
    check_training_memory(encoder, 64, views)  # fits
    cpu_with(needed // 2 + 1)
    with pytest.warns(UserWarning, match="may not fit"):
        check_training_memory(encoder, 64, views)
    cpu_with(needed // 3)
    refused = r"at 16 px on batches of 64 needs about .*\(2 views x 64 images x 38.5 kB\)"
    with pytest.raises(InputError, match=refused):
        check_training_memory(encoder, 64, views)
    # Small views (multi-crop) count at their share of the pixels: 2 global + 4 of half the
    # side need 1.5 times two views' memory, and fit in it without a warning.
    cpu_with(needed * 3 // 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_training_memory(encoder, 64, [ViewAugmentation(16)] * 2 + [ViewAugmentation(8)] * 4)
    cpu_with(needed * 3 // 2 - 1)
    with pytest.warns(UserWarning, match="may not fit"):
        check_training_memory(encoder, 64, [ViewAugmentation(16)] * 2 + [ViewAugmentation(8)] * 4)


def test_with_a_gpu_host_memory_does_not_bound_the_step(monkeypatch):
    monkeypatch.setattr(kssl.runtime.memory, "available_bytes", lambda: 1)
    monkeypatch.setattr("kssl.runtime.precision.has_gpu", lambda: True)
    check_training_memory(conv4(width=0.125, image_size=16), 64, [ViewAugmentation(16)] * 2)


def test_pretrain_refuses_before_building_the_model(cpu_with):
    from kssl.data.sources import load_digits
    from kssl.training import pretrain

    cpu_with(10_000)
    with pytest.raises(InputError, match="needs about"):
        pretrain(load_digits(image_size=16).subset(range(64)), conv4(width=0.125, image_size=16), epochs=1,
                 batch_size=32, verbose=0)  # fmt: skip
