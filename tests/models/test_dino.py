"""DINO's own parts: its views, the teacher temperature's warm-up, the centre's update
from the teacher's outputs, and the encoders it can take local crops with."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kssl.encoders import conv4, vit
from kssl.models.dino import DINO


def test_views_are_byols_asymmetric_global_pair_and_six_local_crops_by_default():
    views = DINO.view_augmentations(96)
    assert [view.image_size for view in views] == [96, 96] + [41] * 6
    assert [view.blur_probability for view in views[:2]] == [1.0, 0.1]
    assert [view.solarize_probability for view in views[:2]] == [0.0, 0.2]
    assert [view.image_size for view in DINO.view_augmentations(32, local_crops=0)] == [32, 32]


def test_the_teacher_temperature_warms_up_linearly_then_stays():
    model = DINO(conv4(width=0.125, image_size=8), prototypes=8, local_crops=0, teacher_warmup=0.5)
    temperatures = []
    for progress in (0.0, 0.25, 0.5, 0.9):
        model.training_progress.assign(progress)
        temperatures.append(float(model.current_teacher_temperature()))
    np.testing.assert_allclose(temperatures, [0.04, 0.055, 0.07, 0.07], rtol=1e-6)


def test_after_a_step_the_centre_is_the_ema_of_the_teachers_mean_output():
    keras.utils.set_random_seed(0)
    model = DINO(conv4(width=0.125, image_size=8), prototypes=8, local_crops=1, centre_momentum=0.75)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # no update: the teacher's outputs can be recomputed
    rng = np.random.default_rng(0)
    views = [rng.random((4, 8, 8, 3), dtype=np.float32) for _ in range(2)] + [rng.random((4, 4, 4, 3), np.float32)]
    before = model.centre.value.numpy().copy()
    model.train_on_batch(tuple(views))
    teacher = model.target_projector(model.target_encoder(tf.concat(views[:2], 0), training=True), training=True)
    expected = 0.75 * before + 0.25 * teacher.numpy().mean(axis=0)
    np.testing.assert_allclose(model.centre.value.numpy(), expected, rtol=1e-4, atol=1e-6)


def test_local_crops_need_an_encoder_of_any_size_and_say_so():
    with pytest.raises(ValueError, match="Local crops need an encoder that takes images of any size"):
        DINO(vit(depth=1, width=1 / 12, image_size=8, patch_size=4), prototypes=8, local_crops=2)
    DINO(vit(depth=1, width=1 / 12, image_size=8, patch_size=4), prototypes=8, local_crops=0)  # global crops only


@pytest.mark.parametrize("batch_norm", [True, False])
def test_the_heads_batch_norm_follows_hidden_layers_only_and_survives_a_round_trip(batch_norm, tmp_path):
    from kssl.layers import FusedBatchNormalization

    model = DINO(conv4(width=0.125, image_size=16), prototypes=32, local_crops=0, head_batch_norm=batch_norm)
    norms = [layer for layer in model.projector.mlp._flatten_layers() if "normalization" in type(layer).__name__.lower()
             or isinstance(layer, FusedBatchNormalization)]  # fmt: skip
    assert len(norms) == (2 if batch_norm else 0)  # depth 3: two hidden layers; the 256-d bottleneck has none
    assert model.get_config()["head_batch_norm"] is batch_norm
    model.compile(optimizer="sgd")
    model.train_on_batch(tuple(np.random.default_rng(0).random((2, 8, 16, 16, 3)).astype("float32")))
    model.save(tmp_path / "dino.keras")
    restored = keras.saving.load_model(tmp_path / "dino.keras")
    assert restored.head_batch_norm is batch_norm and restored.projector.batch_norm is batch_norm
