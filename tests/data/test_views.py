"""Any number of views, of different sizes: the pipeline, the device path, the base class's
unpacking, MAE and the preview grid take a list of view transforms (two is the default)."""

import keras
import numpy as np
import tensorflow as tf
from helpers import digits
from PIL import Image

from kssl.data.augment import ViewAugmentation
from kssl.data.pipeline import view_pairs
from kssl.data.preview import save_view_grid
from kssl.models.base import unpack_views

# Multi-crop's shape: two global views and two small ones.
VIEWS = [ViewAugmentation(8), ViewAugmentation(8), ViewAugmentation(4, crop_area=(0.05, 0.4))] + [
    ViewAugmentation(4, crop_area=(0.05, 0.4))
]


def test_the_pipeline_gives_one_batch_per_view_at_its_own_size_on_host_and_device():
    images = digits(image_size=8).subset(range(32))
    host = next(iter(view_pairs(images, 16, VIEWS, seed=3)))
    assert [tuple(v.shape) for v in host] == [(16, 8, 8, 3)] * 2 + [(16, 4, 4, 3)] * 2
    unfinished = next(iter(view_pairs(images, 16, VIEWS, seed=3, on_device=True)))
    views, labels = unpack_views(unfinished)
    assert labels is None and len(views) == 4
    for a, b in zip(views, host):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # The two small crops differ: each view draws its own parameters.
    assert not np.allclose(host[2], host[3])


def test_unpacking_takes_any_number_of_views_with_or_without_labels():
    views = tuple(tf.zeros([2, s, s, 3]) for s in (8, 8, 4))
    assert len(unpack_views(views)[0]) == 3 and unpack_views(views)[1] is None
    unpacked, labels = unpack_views((views, tf.constant([0, 1])))
    assert len(unpacked) == 3 and labels.shape == (2,)


def test_the_preview_grid_shows_every_view_with_small_crops_at_their_own_size(tmp_path):
    images = np.stack([np.full((8, 8, 3), 30 * i, np.uint8) for i in range(4)])
    path = save_view_grid(images, VIEWS, tmp_path / "views.png", num_images=2, scale=1)
    grid = np.asarray(Image.open(path))
    tile, gap = 8, 1
    assert grid.shape[1] == 5 * tile + 4 * gap  # the original and four views
    small = grid[:tile, 3 * (tile + gap) : 4 * (tile + gap) - gap]
    assert (small[4:, :] == 255).all() and (small[:, 4:] == 255).all()  # a 4-px crop on a white 8-px tile


def test_mae_trains_on_every_view_it_is_given():
    from kssl.encoders import vit
    from kssl.models import MAE

    model = MAE(vit(depth=1, width=1 / 12, image_size=8, patch_size=4), mask_ratio=0.5)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    images = digits(image_size=8).subset(range(16))
    three = next(iter(view_pairs(images, 16, [ViewAugmentation(8)] * 3)))
    logs = model.train_step(three)
    assert np.isfinite(float(logs["loss"]))
    assert tuple(model._mask_noise(16, 3).shape) == (48, model.num_patches)
