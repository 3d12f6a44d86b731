import logging
import pathlib

import numpy as np
import pytest
from helpers import write_image_folder
from PIL import Image

from kssl.data.files import list_folder
from kssl.data.sources import DataError, from_arrays, from_folder, from_tfds, load, load_digits


def write_image(path, mode="RGB", size=(10, 12), fmt=None, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1, "P": 1}[mode]
    array = np.full((size[1], size[0], channels), value, np.uint8).squeeze()
    image = Image.fromarray(array, mode="L" if mode == "P" else mode)
    if mode == "P":
        image = image.convert("P")
    image.save(path, format=fmt)
    return path


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pets"
    write_image(root / "cat" / "a.jpg", "RGB", (40, 30), "JPEG", value=200)
    write_image(root / "cat" / "b.png", "RGBA", (16, 16), "PNG")
    write_image(root / "dog" / "c.bmp", "L", (8, 20), "BMP", value=10)
    write_image(root / "dog" / "d.gif", "P", (9, 9), "GIF")
    (root / "dog" / "notes.txt").write_text("not an image")
    return root


def test_folder_reads_every_format_as_rgb_keeping_aspect_ratios(folder, caplog):
    with caplog.at_level(logging.WARNING, logger="kssl"):
        images = from_folder(folder, image_size=16)
    # Shorter sides at 1.5 x 16 = 24 px, never enlarged; one zero-padded array; the 8 x 20
    # BMP (longer than 2:1) as its centred 8 x 16.
    assert images.shapes.tolist() == [[24, 32], [16, 16], [16, 8], [9, 9]]
    assert images.images.shape == (4, 24, 32, 3) and images.images.dtype == np.uint8
    assert images.image_size == 16 and images.square().shape == (4, 16, 16, 3)
    assert images.class_names == ["cat", "dog"] and images.labels.tolist() == [0, 0, 1, 1]
    assert abs(int(images.images[0].mean()) - 200) < 5  # the JPEG's colour survived
    assert np.all(images.images[2, :16, :8] == 10)  # grayscale BMP copied to three channels
    assert np.all(images.images[2, 16:] == 0) and np.all(images.images[2, :, 8:] == 0)  # padding
    assert "Skipped 1 file(s) that are not images" in caplog.text


def test_split_layout_defaults_to_train_and_takes_a_split(tmp_path):
    for split, value in (("train", 50), ("test", 150)):
        write_image(tmp_path / split / "a" / "x.png", value=value)
        write_image(tmp_path / split / "b" / "y.png", value=value)
    assert np.all(from_folder(tmp_path, 8).images == 50)
    assert np.all(from_folder(tmp_path, 8, split="test").images == 150)
    with pytest.raises(DataError, match="No split folder 'val'.*test, train"):
        from_folder(tmp_path, 8, split="val")


def test_a_test_split_lacking_a_class_keeps_the_training_splits_class_ids(tmp_path):
    for name in ("a", "b", "c"):
        write_image(tmp_path / "train" / name / "x.png")
    for name in ("a", "c"):  # no test images of b
        write_image(tmp_path / "test" / name / "y.png")
    test = from_folder(tmp_path, 8, split="test")
    assert test.class_names == ["a", "b", "c"] and test.labels.tolist() == [0, 2]  # c keeps id 2, not b's 1
    write_image(tmp_path / "test" / "d" / "z.png")  # a class training never saw
    with pytest.raises(DataError, match="class folder\\(s\\) 'd' that the training split lacks.*a, b, c"):
        from_folder(tmp_path, 8, split="test")


def test_an_empty_class_folder_is_left_out_with_a_warning(tmp_path, caplog):
    write_image(tmp_path / "train" / "a" / "x.png")
    (tmp_path / "train" / "b").mkdir()  # no images: not a class the classifier could predict
    write_image(tmp_path / "train" / "c" / "y.png")
    (tmp_path / "test" / "b").mkdir(parents=True)
    write_image(tmp_path / "test" / "c" / "z.png")
    with caplog.at_level(logging.WARNING, logger="kssl"):
        train = from_folder(tmp_path, 8)
    assert train.class_names == ["a", "c"] and train.labels.tolist() == [0, 1] and train.num_classes == 2
    assert "Left out 1 class folder(s) without images" in caplog.text and ": b" in caplog.text
    test = from_folder(tmp_path, 8, split="test")
    assert test.class_names == ["a", "c"] and test.labels.tolist() == [1]


def test_missing_empty_and_flat_folders_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="No folder at"):
        from_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        from_folder(tmp_path / "empty")
    write_image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match="no class subfolders"):
        from_folder(tmp_path / "flat")
    (tmp_path / "nothing" / "cls").mkdir(parents=True)
    (tmp_path / "nothing" / "cls" / "readme.md").write_text("x")
    with pytest.raises(DataError, match="No images"):
        from_folder(tmp_path / "nothing")


@pytest.mark.parametrize("content, reason", [(b"", "empty"), (b"\xff\xd8garbage", "cannot be decoded")])
def test_bad_image_files_name_the_file_or_are_skipped(folder, content, reason, caplog):
    bad = folder / "cat" / "broken.jpg"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=rf"broken\.jpg.*{reason}.*skip_bad_images"):
        from_folder(folder, 16)
    with caplog.at_level(logging.WARNING, logger="kssl"):
        images = from_folder(folder, 16, skip_bad_images=True)
    assert len(images) == 4 and "broken.jpg" in caplog.text


def test_arrays_accept_gray_float_and_rgba(rng):
    gray = from_arrays(rng.random((6, 8, 8)).astype("float32"), [0, 1, 2, 0, 1, 2], class_names=["a", "b", "c"])
    assert gray.images.shape == (6, 8, 8, 3) and gray.class_counts() == {"a": 2, "b": 2, "c": 2}
    rgba = from_arrays(rng.integers(0, 255, (2, 10, 10, 4), dtype=np.uint8), image_size=4)
    assert rgba.images.shape == (2, 4, 4, 3) and rgba.labels is None
    with pytest.raises(DataError, match="has 2 images but y has 3"):
        from_arrays(np.zeros((2, 4, 4, 3), "uint8"), [0, 1, 1])
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        from_arrays(np.full((2, 4, 4, 3), 255.0))


def test_digits_are_offline_stratified_and_disjoint():
    train, test = load_digits(16, "train"), load_digits(16, "test")
    assert len(train) + len(test) == 1797
    assert min(test.class_counts().values()) >= 35
    assert not set(map(bytes, train.images[:, :, :, 0])) & set(map(bytes, test.images[:, :, :, 0]))


def test_tfds_loading_with_tfds_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        images = from_tfds("cifar10", split="train", image_size=16)
    # CIFAR-10's 32 px images stored at 1.5x the 16 px view, as a folder's are; the views at 16.
    assert images.images.shape == (12, 24, 24, 3) and images.evaluation_views.shape == (12, 16, 16, 3)
    # Class names come from TFDS metadata, which a never-downloaded builder lacks.
    assert len(images.class_names) == 10 and images.source == "tfds:cifar10:train"
    assert images.labels.min() >= 0 and images.labels.max() < 10


def test_load_dispatches_and_rejects_unknown_names(folder):
    assert load(str(folder), 8).class_names == ["cat", "dog"]
    assert load("digits", 8, split="test").source == "digits:test"
    with pytest.raises(DataError, match="Unknown dataset 'imagenet-9000'"):
        load("imagenet-9000")
    with pytest.raises(DataError, match="Unknown TFDS dataset .surely_not_a_dataset.; tfds.list_builders"):
        load("tfds:surely_not_a_dataset")


def test_symbolic_link_loops_are_listed_once_and_broken_links_are_named(tmp_path, caplog):
    import os

    root = write_image_folder(tmp_path / "photos", ["a", "b"], 3)
    os.symlink("..", root / "a" / "up")  # recursed 40 levels deep before
    os.symlink(".", root / "b" / "itself")
    os.symlink("y.png", root / "a" / "x.png")  # two links that point at each other
    os.symlink("x.png", root / "a" / "y.png")
    with pytest.raises(DataError, match=r"x\.png'.*symbolic links.*--skip-bad-images"):
        list_folder(root, progress=False)
    with caplog.at_level("WARNING", logger="kssl"):
        files = list_folder(root, skip_bad_images=True, refresh=True, progress=False)
    assert len(files) == 6 and files.class_counts() == {"a": 3, "b": 3}
    assert "a symbolic link to a folder listed already" in caplog.text and "2 broken links" in caplog.text


def test_a_file_gone_since_the_listing_names_refresh_listing(tmp_path):
    from kssl.data.decoding import decode_files

    root = write_image_folder(tmp_path / "photos", ["a", "b"], 2)
    files = list_folder(root, progress=False)
    pathlib.Path(files.paths[0]).unlink()  # as when a reused listing is older than the folder
    with pytest.raises(DataError, match=r"no longer exists.*--refresh-listing lists it again"):
        decode_files(files, 8, progress=False)


def test_one_thin_image_does_not_multiply_memory_and_the_plan_is_what_is_stored(tmp_path, rng):
    from kssl.data.decoding import stored_side
    from kssl.data.image_cache import cached_copies
    from kssl.data.planning import decoded_bytes

    root = tmp_path / "pets"
    for index in range(20):
        write_image(root / ("cat", "dog")[index % 2] / f"{index}.png", size=(10, 10), fmt="PNG")
    banner = rng.integers(0, 256, (6, 400, 3), dtype=np.uint8)  # 6 px high, 400 wide
    Image.fromarray(banner).save(root / "cat" / "banner.png")
    images = from_folder(root, image_size=8, progress=False)  # stored side 12: nothing is downscaled
    assert stored_side(8) == 12
    # Padded to 10 x 12 (the banner's centred 6 x 12), not to 10 x 400: 40x less memory.
    assert images.images.shape[1:] == (10, 12, 3)
    index = list(images.shapes.tolist()).index([6, 12])
    np.testing.assert_array_equal(images.images[index, :6, :12], banner[:, 194:206])
    # The planner announces what is stored, from the images' shapes: the banner is a copy
    # (its centred 2:1 part), so the originals' evaluation views are kept beside.
    files = list_folder(root, progress=False)
    assert images.evaluation_views.shape == (21, 8, 8, 3)
    assert decoded_bytes(len(files), files.image_shapes(len(files)), 8) == (
        images.images.nbytes + images.evaluation_views.nbytes
    )
    # --cache-size copies are stored alike, so streaming from them sees what memory holds.
    copy = cached_copies(files, 12, progress=False).paths[list(files.paths).index(str(root / "cat" / "banner.png"))]
    assert np.asarray(Image.open(copy)).shape == (6, 12, 3)


def toy_train_test(spec, image_size, notes, **options):
    notes.update(image_size=image_size or 8, storage="in memory")
    images = np.full((4, 8, 8, 3), 7, np.uint8)
    made = from_arrays(images, np.array([0, 1, 0, 1]), ["a", "b"], image_size=notes["image_size"], source=spec.name)
    return made, made.subset([0, 1])


def test_a_new_kind_of_data_string_is_one_sources_entry(monkeypatch):
    """A kind with a prefix is recognised, loaded by `kssl.load` and split for a run from its one entry."""
    from kssl.app.data import load_train_test
    from kssl.data import sources

    toy = sources.SourceKind(lambda spec, size, split, **kwargs: toy_train_test(spec, size, {})[0],
                             f"{__name__}:toy_train_test", prefix="toy:")  # fmt: skip
    monkeypatch.setitem(sources.SOURCES, "toy", toy)
    assert sources.parse_data_spec("toy:shelf:train") == sources.DataSpec("toy", "shelf", "train")
    assert load("toy:shelf").source == "shelf"
    train, test = load_train_test("toy:shelf", image_size=8)
    assert (len(train), len(test), train.num_classes) == (4, 2, 2)
    with pytest.raises(DataError, match=r"toy:NAME or toy:NAME:SPLIT"):
        sources.parse_data_spec("toy:")
    with pytest.raises(DataError, match=r"not tfds:NAME, toy:NAME"):
        sources.parse_data_spec("nothing-here")
