import numpy as np
from PIL import Image

from kssl.data.augment import ViewAugmentation
from kssl.data.preview import preview_indices, save_view_grid


def test_rows_come_from_every_class_even_when_the_first_class_fills_the_set():
    labels = np.repeat(np.arange(10), 50)  # a folder lists class 0 first
    chosen = preview_indices(len(labels), 8, seed=0, labels=labels)
    assert len(set(labels[chosen].tolist())) == 8 and len(set(chosen.tolist())) == 8


def test_the_sample_is_seeded_and_varies_with_the_seed():
    labels = np.repeat(np.arange(3), 20)
    first = preview_indices(60, 6, seed=1, labels=labels)
    np.testing.assert_array_equal(first, preview_indices(60, 6, seed=1, labels=labels))
    assert not np.array_equal(first, preview_indices(60, 6, seed=2, labels=labels))
    assert sorted(np.bincount(labels[first], minlength=3).tolist()) == [2, 2, 2]


def test_fewer_images_than_rows_shows_each_once():
    assert sorted(preview_indices(3, 8, labels=np.array([0, 1, 1])).tolist()) == [0, 1, 2]
    assert sorted(preview_indices(3, 8).tolist()) == [0, 1, 2]


def test_the_grid_shows_the_sampled_images_in_its_first_column(tmp_path):
    images = np.stack([np.full((8, 8, 3), 20 * i, np.uint8) for i in range(12)])  # image i is grey 20*i
    labels = np.arange(12) // 3
    path = save_view_grid(images, ViewAugmentation(8), tmp_path / "grid.png", num_images=4, labels=labels, scale=1)
    grid = np.asarray(Image.open(path))
    tile, gap = 8, 1
    firsts = [int(grid[row * (tile + gap), 0, 0]) for row in range(4)]
    chosen = preview_indices(12, 4, seed=0, labels=labels)
    assert firsts == [20 * int(i) for i in chosen]
    assert sorted({int(labels[i]) for i in chosen}) == [0, 1, 2, 3]
