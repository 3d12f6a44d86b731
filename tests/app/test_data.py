"""A run's data from a folder: the splits it reads, and the folders it does not, named."""

import pytest
from helpers import write_folder, write_image_folder

from kssl.app.data import load_train_test


def test_a_validation_split_beside_train_and_test_is_named_as_not_used(tmp_path, capsys):
    for split in ("train", "validation", "test"):
        write_image_folder(tmp_path / "set" / split, classes=("a", "b"), per_class=3)
    train, test = load_train_test(str(tmp_path / "set"), image_size=8, stream=False)
    assert (len(train), len(test)) == (6, 6)
    printed = capsys.readouterr().out
    assert "data: not used: validation/ of" in printed and "trains on train/ and tests on test/" in printed


def test_a_layout_of_train_and_test_alone_names_nothing(tmp_path, capsys):
    for split in ("train", "test"):
        write_image_folder(tmp_path / "set" / split, classes=("a", "b"), per_class=3)
    load_train_test(str(tmp_path / "set"), image_size=8, stream=False)
    assert "not used" not in capsys.readouterr().out


def test_test_images_never_join_the_unlabeled_pool_by_path_or_by_content(tmp_path, capsys):
    import shutil

    import pytest

    from kssl.app.cli import main
    from kssl.app.data import check_not_test_images
    from kssl.data.files import list_images
    from kssl.errors import DataError

    root = tmp_path / "set"
    for split, seed in (("train", 0), ("test", 1)):
        write_image_folder(root / split, classes=("a", "b"), per_class=3, seed=seed)
    others = write_image_folder(tmp_path / "others", classes=("x",), per_class=4, seed=2)
    check_not_test_images(list_images(others, progress=False), str(root))  # other images: fine
    shutil.copy(root / "test" / "b" / "00004.png", others / "x" / "renamed.png")
    with pytest.raises(DataError, match="holds 1 image.s. of the test split .* identical content.*renamed.png"):
        check_not_test_images(list_images(others, progress=False, refresh=True), str(root))
    flat = write_image_folder(tmp_path / "flat", classes=("a", "b"), per_class=5)  # split 80/20 by kssl
    with pytest.raises(DataError, match="of the test split"):
        check_not_test_images(list_images(flat, progress=False), str(flat))
    tiny = [
        "--image-size",
        "8",
        "--encoder",
        "conv4",
        "--width",
        "0.125",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--labels",
        "1",
    ]
    assert main(["run", "--data", str(root), "--unlabeled", str(root), *tiny, "--out", str(tmp_path / "r")]) == 2
    assert "--unlabeled holds 6 image(s) of the test split" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_folder_without_splits_is_divided_80_20_stratified_and_disjoint(tmp_path):
    train, test = load_train_test(str(write_folder(tmp_path / "photos")), image_size=8, seed=0)
    assert (len(train), len(test)) == (24, 6)
    assert train.class_counts() == {"cat": 8, "dog": 8, "fox": 8}
    assert test.class_counts() == {"cat": 2, "dog": 2, "fox": 2}
    rows = {tuple(image.ravel()) for image in train.images}
    assert not rows & {tuple(image.ravel()) for image in test.images}


def test_a_folder_with_train_and_test_uses_them(tmp_path):
    write_folder(tmp_path / "data" / "train", per_class=4)
    write_folder(tmp_path / "data" / "test", per_class=2)
    train, test = load_train_test(str(tmp_path / "data"), image_size=8)
    assert (len(train), len(test)) == (12, 6)


@pytest.mark.parametrize("stream", [False, True])
def test_a_test_split_lacking_a_class_is_labeled_by_the_training_splits_names(tmp_path, stream):
    write_folder(tmp_path / "data" / "train", per_class=4)
    write_folder(tmp_path / "data" / "test", classes=("cat", "fox"), per_class=2)  # no dog
    train, test = load_train_test(str(tmp_path / "data"), image_size=8, stream=stream)
    assert train.class_names == test.class_names == ["cat", "dog", "fox"]
    assert test.labels.tolist() == [0, 0, 2, 2]  # fox keeps id 2 (it was 1: every accuracy was wrong)


def test_a_run_folder_left_inside_a_data_folder_is_not_read_as_a_class(tmp_path, caplog):
    import logging

    data = write_folder(tmp_path / "photos")
    run = data / "results"  # an earlier run's output, with its plots
    write_image_folder(run, ["plots"], per_class=2)
    (run / "config.json").write_text("{}")
    (run / "metrics.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="kssl"):
        train, test = load_train_test(str(data), image_size=8)
    assert train.class_names == ["cat", "dog", "fox"] and len(train) + len(test) == 30
    assert "hold a kssl run" in caplog.text
