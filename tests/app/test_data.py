"""A run's data from a folder: the splits it reads, and the folders it does not, named."""

from helpers import write_image_folder

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
