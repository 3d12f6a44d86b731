"""MAE: masks hide the configured share, follow the seed and step, and only hidden patches are scored."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_encoder

from kssl.encoders import vit
from kssl.models import MAE


def small_vit():
    return vit(depth=1, width=1 / 12, image_size=16)


def test_masks_hide_the_ratio_and_depend_only_on_seed_and_step():
    model = MAE(small_vit(), mask_ratio=0.75, seed=5)
    model.compile(optimizer="adamw")
    noise = model._mask_noise(tf.constant(3)).numpy()
    assert noise.shape == (6, 64) and model.visible_patches == 16  # 2 px patches: an 8 x 8 grid
    np.testing.assert_array_equal(noise, MAE(small_vit(), seed=5)._mask_noise(tf.constant(3)).numpy())
    assert not np.array_equal(noise, MAE(small_vit(), seed=6)._mask_noise(tf.constant(3)).numpy())
    model.optimizer.iterations.assign(1)
    assert not np.array_equal(noise, model._mask_noise(tf.constant(3)).numpy())


def test_a_step_trains_encoder_and_decoder_and_the_loss_falls(rng):
    views = tuple(rng.random((2, 8, 16, 16, 3)).astype("float32"))
    model = MAE(small_vit())
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    before = [np.array(w.numpy()) for w in model.trainable_weights]
    history = model.fit(tf.data.Dataset.from_tensors(views).repeat(30), verbose=0, shuffle=False)
    changed = [not np.allclose(b, w.numpy()) for b, w in zip(before, model.trainable_weights)]
    assert all(changed)  # every encoder and decoder weight (and the mask token) learns
    first = model.evaluate(tf.data.Dataset.from_tensors(views), verbose=0, return_dict=True)["loss"]
    assert np.isfinite(history.history["loss"][0]) and first < 1.0  # normalised pixels: a blind guess scores ~1


def test_mae_refuses_an_encoder_without_patches_and_bad_ratios():
    with pytest.raises(ValueError, match="MAE needs a ViT encoder"):
        MAE(tiny_encoder())
    with pytest.raises(ValueError, match="mask_ratio"):
        MAE(small_vit(), mask_ratio=1.0)
    with pytest.raises(ValueError, match="0 of 64 patches visible"):
        MAE(small_vit(), mask_ratio=0.999)
