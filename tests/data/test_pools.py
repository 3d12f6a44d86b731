"""Images without a class beside the class folders: no class, but part of the pool that
pretraining and semi-supervised fine-tuning read."""

import dataclasses

import numpy as np
from helpers import write_image_folder

from kssl.data.files import ImageFiles, list_folder, list_images, unlabeled_folder
from kssl.data.pools import concatenated


def test_an_unlabeled_folder_beside_classes_is_no_class_and_alone_it_is_the_set_to_pretrain_on(tmp_path):
    root = write_image_folder(tmp_path / "pets", ["cat", "dog", "unlabeled"], per_class=4)
    files = list_folder(root, progress=False)
    assert files.class_names == ["cat", "dog"] and len(files) == 8  # it was a third class: every accuracy wrong
    assert unlabeled_folder(root) == root / "unlabeled"
    alone = write_image_folder(tmp_path / "raw", ["unlabeled"], per_class=5)
    assert list_folder(alone, progress=False).class_names == ["unlabeled"] and unlabeled_folder(alone) is None
    split = write_image_folder(tmp_path / "split" / "train", ["cat", "dog"], per_class=3)
    write_image_folder(tmp_path / "split" / "test", ["cat", "dog"], per_class=2)
    write_image_folder(tmp_path / "split", ["unlabeled"], per_class=6)
    assert list_folder(tmp_path / "split", "train", progress=False).class_names == ["cat", "dog"]
    assert unlabeled_folder(tmp_path / "split") == tmp_path / "split" / "unlabeled" and split.is_dir()


def test_the_pool_is_the_train_split_and_the_images_without_a_class_in_memory_or_streamed(tmp_path):
    from kssl.app.config import RunConfig
    from kssl.app.data import load_train_test, unlabeled_pool

    root = write_image_folder(tmp_path / "pets", ["cat", "dog"], per_class=10, shapes=((12, 12), (12, 20)))
    write_image_folder(root, ["unlabeled"], per_class=7, shapes=((20, 12),))
    config = RunConfig(data=str(root), image_size=8)
    for stream in (False, True):
        train, test = load_train_test(str(root), 8, stream=stream)
        pool, extra = unlabeled_pool(train, dataclasses.replace(config, stream=stream))
        assert extra == 7 and len(pool) == len(train) + 7 == 23 and pool.labels is None
        assert isinstance(pool, ImageFiles) == stream and pool.image_size == 8
    assert unlabeled_pool(train, RunConfig(data="digits", image_size=8)) == (train, 0)


def test_concatenated_files_keep_every_path_in_order(tmp_path):
    a = list_images(write_image_folder(tmp_path / "a", 1, per_class=3), progress=False)
    b = list_images(write_image_folder(tmp_path / "b", 1, per_class=2), progress=False)
    both = concatenated(a, b)
    assert list(both.paths) == [*a.paths, *b.paths] and np.array_equal(both.sizes, np.r_[a.sizes, b.sizes])
