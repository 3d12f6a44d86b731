"""Multi-crop (`kssl.models.multicrop`): the views, the pairs each loss is averaged over,
the local crops' encoder, and the multi-crop losses of SimCLR, VICReg and BYOL against
NumPy (their two-view losses, already checked against the papers, averaged over pairs)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from kssl.encoders import conv4, vit
from kssl.losses import byol, byol_crops
from kssl.methods import METHODS, method_class
from kssl.models.multicrop import (
    AUTO_FROM_SIZE,
    AUTO_LOCAL_CROPS,
    directed_pairs,
    local_size,
    resolve_local_crops,
    symmetric_pairs,
    with_local_crops,
)


@pytest.mark.parametrize("name", ["simclr", "vicreg", "byol"])
def test_local_crops_add_small_views_after_the_methods_own_two(name):
    model_class = method_class(name)
    own = model_class.view_augmentations(96, local_crops=0)
    assert len(own) == 2 and own[0].crop_area == (0.08, 1.0)  # no local crops: the method's own two views
    views = model_class.view_augmentations(96, local_crops=4)
    assert [view.image_size for view in views] == [96, 96] + [local_size(96)] * 4
    assert [view.crop_area for view in views] == [(0.14, 1.0)] * 2 + [(0.05, 0.14)] * 4
    # the global pair keeps the method's own differences (BYOL's asymmetric blur)
    assert [view.blur_probability for view in views[:2]] == [view.blur_probability for view in own]
    assert views[2].blur_probability == 0.5 and views[2].solarize_probability == 0.0


def test_simclr_takes_local_crops_by_default_from_64_px_only_and_never_on_a_vit():
    simclr = method_class("simclr")
    assert len(simclr.view_augmentations(AUTO_FROM_SIZE)) == 2 + AUTO_LOCAL_CROPS
    assert len(simclr.view_augmentations(AUTO_FROM_SIZE - 1)) == 2
    assert simclr(conv4(0.125, image_size=64)).local_crops == AUTO_LOCAL_CROPS
    assert simclr(conv4(0.125, image_size=32)).local_crops == 0
    assert simclr(vit(depth=1, width=1 / 12, image_size=64, patch_size=16)).local_crops == 0
    assert simclr(conv4(0.125, image_size=64), local_crops=0).local_crops == 0  # an explicit 0 wins
    assert resolve_local_crops(3, 16) == 3
    # Methods whose multi-crop was not measured to pay keep two views (DINO its 6).
    assert [method_class(name).default_local_crops() for name in ("vicreg", "byol", "dino")] == [0, 0, 6]


def test_pretrain_and_its_config_record_the_decided_number(tmp_path):
    import kssl
    from kssl.training import pretrain

    images = kssl.load_digits(image_size=8).subset(range(16))
    model, _ = pretrain(images, conv4(0.125, image_size=64), epochs=1, batch_size=8, verbose=0)
    assert model.local_crops == AUTO_LOCAL_CROPS and model.get_config()["local_crops"] == AUTO_LOCAL_CROPS


def test_local_crops_at_cifar_size_have_no_blur_and_a_floor_of_four_pixels():
    views = with_local_crops(method_class("simclr").global_views(32), 32, 2)
    assert views[2].image_size == 14 and views[2].blur_probability == 0.0
    assert local_size(8) == 4


def test_pairs_never_compare_two_local_crops_and_each_global_with_every_other_crop():
    assert symmetric_pairs(2) == [(0, 1)] and directed_pairs(2) == [(0, 1), (1, 0)]
    pairs = symmetric_pairs(5)
    assert len(pairs) == 1 + 2 * 3 and all(i < 2 for i, _ in pairs)
    assert len(directed_pairs(5)) == 2 * 4


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_method_without_multi_crop_refuses_local_crops(name):
    model_class = method_class(name)
    if model_class.supports_local_crops:
        return
    encoder = vit(depth=1, width=1 / 12, image_size=8, patch_size=4) if name == "mae" else conv4(0.125, image_size=8)
    needs = {"teacher": conv4(0.125, image_size=8)} if METHODS[name].needs_teacher else {}
    with pytest.raises(ValueError, match="does not take local crops"):
        model_class(encoder, local_crops=2, **needs)


def test_local_crops_need_an_encoder_of_any_size_and_say_so():
    with pytest.raises(ValueError, match="Local crops need an encoder that takes images of any size"):
        method_class("simclr")(vit(depth=1, width=1 / 12, image_size=8, patch_size=4), local_crops=2)


def test_a_wrong_number_of_views_is_refused_with_the_count_expected():
    model = method_class("simclr")(conv4(width=0.125, image_size=8), local_crops=2)
    model.compile(optimizer="sgd")
    views = tuple(np.zeros((2, 8, 8, 3), "float32") for _ in range(2))
    with pytest.raises(ValueError, match="takes 4 views per image"):
        model.train_on_batch(views)


def numpy_nt_xent(z1, z2, tau):
    z = np.concatenate([z1, z2]) / np.linalg.norm(np.concatenate([z1, z2]), axis=1, keepdims=True)
    n = len(z1)
    similarities = z @ z.T / tau
    np.fill_diagonal(similarities, -np.inf)
    positives = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    log_softmax = similarities - np.log(np.exp(similarities).sum(axis=1, keepdims=True))
    return -log_softmax[np.arange(2 * n), positives].mean()


def test_simclrs_multi_crop_loss_is_nt_xent_averaged_over_global_and_global_local_pairs():
    keras.utils.set_random_seed(3)
    model = method_class("simclr")(conv4(width=0.125, image_size=8), local_crops=2, temperature=0.5)
    rng = np.random.default_rng(0)
    views = [rng.random((4, 8, 8, 3), dtype=np.float32) for _ in range(2)]
    views += [rng.random((4, 4, 4, 3), dtype=np.float32) for _ in range(2)]
    result = model.views_loss(tuple(tf.constant(v) for v in views), training=False)
    encode = model._local_encoder
    z = [model.projection_head(encode(v)).numpy() for v in views]  # inference: batch norm per view is the same
    expected = np.mean(
        [numpy_nt_xent(z[0], z[1], 0.5)] + [numpy_nt_xent(z[g], z[v], 0.5) for g in (0, 1) for v in (2, 3)]
    )
    np.testing.assert_allclose(float(result.loss), expected, rtol=1e-5)
    assert result.features.shape == (8, model.feature_dim)  # the global crops' features, for the probe


def test_byol_crops_is_byol_for_two_crops_and_the_doubled_mean_over_directed_pairs():
    rng = np.random.default_rng(1)
    p = [rng.normal(size=(5, 6)).astype("float32") for _ in range(4)]
    t = [rng.normal(size=(5, 6)).astype("float32") for _ in range(2)]
    np.testing.assert_allclose(byol_crops(p[:2], t).numpy(), byol(p[0], p[1], t[0], t[1]).numpy(), rtol=1e-6)

    def nmse(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        return ((a - b) ** 2).sum(axis=1)

    expected = 2 * np.mean([nmse(p[v], t[g]) for g in range(2) for v in range(4) if v != g], axis=0)
    np.testing.assert_allclose(byol_crops(p, t).numpy(), expected, rtol=1e-5)


def test_vicregs_multi_crop_loss_is_its_mean_over_pairs():
    from kssl.losses import vicreg

    keras.utils.set_random_seed(4)
    model = method_class("vicreg")(conv4(width=0.125, image_size=8), local_crops=1)
    rng = np.random.default_rng(2)
    views = [rng.random((6, 8, 8, 3), dtype=np.float32) for _ in range(2)] + [rng.random((6, 4, 4, 3), np.float32)]
    result = model.views_loss(tuple(tf.constant(v) for v in views), training=False)
    z = [model.projector(model._local_encoder(v)) for v in views]
    expected = np.mean([float(vicreg(z[i], z[j])) for i, j in [(0, 1), (0, 2), (1, 2)]])
    np.testing.assert_allclose(float(result.loss), expected, rtol=1e-5)
