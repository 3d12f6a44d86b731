"""Streaming from image files: the same views as in memory, each image once per epoch,
aspect ratios kept, bad files handled, listings reused, memory flat in the folder's size."""

import json
import logging
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_MODEL, write_image_folder
from PIL import Image

from kssl.data.augment import ViewAugmentation
from kssl.data.files import list_folder
from kssl.data.image_cache import cached_copies
from kssl.data.pipeline import evaluation_images, labeled_batches, view_pairs
from kssl.data.sources import DataError, from_folder


def write_folder(root, count=24, classes=3, low=10, high=20, seed=0, distinct=True):
    """Random images of random shapes (height, width in [low, high)), JPEG and PNG alternately,
    in classes `c0000`, `c0001`, ... (`helpers.write_image_folder`)."""
    shapes = np.random.default_rng(seed).integers(low, high, size=(count, 2))
    names = [f"c{c:04d}" for c in range(classes)]
    return write_image_folder(root, names, count // classes, shapes=shapes, formats=("jpg", "png"), seed=seed,
                              distinct=distinct)  # fmt: skip


def assert_same_uint8_crops(a, b):
    """Views equal to float rounding, but for a rare crop value within 1e-6 of a half level,
    which the uint8 rounding of crops (`kssl.data.augment.as_uint8`) can send either way."""
    difference = np.abs(np.asarray(a) - np.asarray(b))
    assert difference.max() <= 1 / 255 + 1e-5
    assert np.mean(difference > 1e-5) < 1e-3


def test_streaming_gives_the_views_of_the_in_memory_path_when_it_stores_originals(tmp_path):
    root = write_folder(tmp_path / "photos")
    memory = from_folder(root, image_size=16, progress=False)  # stored side 24 > every image: originals
    assert memory.shapes is not None and (memory.shapes < 24).all()
    files = list_folder(root, progress=False).at_size(16)
    streamed = list(view_pairs(files, 8, seed=1, with_labels=True, repeat=False))
    in_memory = list(view_pairs(memory, 8, seed=1, with_labels=True, repeat=False))
    assert len(streamed) == len(in_memory) == 3
    for ((a1, a2), labels_a), ((b1, b2), labels_b) in zip(streamed, in_memory):
        np.testing.assert_array_equal(labels_a, labels_b)
        for a, b in ((a1, b1), (a2, b2)):  # JPEG: decode_and_crop of a region == full decode
            assert_same_uint8_crops(a, b)
    np.testing.assert_allclose(
        np.concatenate(list(evaluation_images(files, 10))),
        np.concatenate(list(evaluation_images(memory, 10))),
        atol=1e-5,
    )


def test_streaming_sees_each_image_once_per_epoch_and_reshuffles(tmp_path):
    root = write_folder(tmp_path / "photos", count=40, classes=40)  # one image per class: labels name images
    files = list_folder(root, progress=False).at_size(8)
    ids = np.concatenate([labels for _, labels in view_pairs(files, 10, seed=0, with_labels=True).take(8)])
    first, second = ids[:40], ids[40:]
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(40))
    assert not np.array_equal(first, second)


def test_crops_keep_the_drawn_aspect_ratio_on_non_square_images():
    augment = ViewAugmentation(16, crop_area=(0.1, 0.2), crop_ratio=(1.0, 1.0))
    parameters = augment.draw(tf.constant([0, 1], tf.int64), 64)
    windows = augment.windows(parameters, tf.fill([64], 31), tf.fill([64], 121)).numpy()  # 30 x 120 spans
    # A square crop ratio gives square windows in pixels on a 1:4 image: the view is not squashed.
    np.testing.assert_allclose(windows[:, 2] * 31 / 30, windows[:, 3] * 121 / 120, rtol=1e-4)
    assert (windows[:, 0] >= 0).all() and (windows[:, 0] + windows[:, 2] <= 30 + 1e-4).all()
    assert (windows[:, 1] >= 0).all() and (windows[:, 1] + windows[:, 3] <= 120 + 1e-4).all()


def test_a_corrupt_file_is_skipped_by_the_stream_with_a_warning_and_named_in_memory(tmp_path, capfd):
    root = write_folder(tmp_path / "photos", count=16, classes=2)
    (root / "c0000" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "c0001" / "notes.jpg").write_text("a text file named like an image")
    files = list_folder(root, progress=False).at_size(8)
    assert len(files) == 18
    seen = sum(len(labels) for _, labels in labeled_batches(files, 6))
    assert seen == 16  # the two bad files are dropped from their batches; the pass goes on
    printed = capfd.readouterr().err
    assert "skipped" in printed
    assert str(root / "c0000" / "broken.jpg") in printed and str(root / "c0001" / "notes.jpg") in printed  # whole names
    with pytest.raises(DataError, match="broken.jpg.*--skip-bad-images"):
        from_folder(root, image_size=8, progress=False)
    assert len(from_folder(root, image_size=8, skip_bad_images=True, progress=False)) == 16


def test_an_empty_file_stops_the_listing_unless_skipped(tmp_path, caplog):
    root = write_folder(tmp_path / "photos", count=6, classes=2)
    (root / "c0000" / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="empty.png.*empty \\(0 bytes\\)"):
        list_folder(root, progress=False)
    with caplog.at_level(logging.WARNING, logger="kssl"):
        assert len(list_folder(root, skip_bad_images=True, progress=False)) == 6
    assert "Skipped 1 empty image file" in caplog.text


def test_a_listing_is_reused_until_the_folder_changes(tmp_path, caplog):
    root = write_folder(tmp_path / "photos", count=6, classes=2)
    assert len(list_folder(root, progress=False)) == 6
    with caplog.at_level(logging.INFO, logger="kssl"):
        assert len(list_folder(root, progress=False)) == 6
    assert "Reusing the listing" in caplog.text
    Image.new("RGB", (12, 12)).save(root / "c0001" / "new.png")
    os.utime(root / "c0001", ns=(0, os.stat(root / "c0001").st_mtime_ns + 10**9))  # coarse clocks
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="kssl"):
        assert len(list_folder(root, progress=False)) == 7
    assert "Reusing" not in caplog.text
    assert len(list_folder(root, refresh=True, progress=False)) == 7


def test_cached_copies_are_downscaled_once_and_reused(tmp_path):
    root = write_folder(tmp_path / "photos", count=4, classes=2, low=40, high=60)
    files = list_folder(root, progress=False)
    cached = cached_copies(files, 16, progress=False)
    shapes = [Image.open(path).size for path in cached.paths]
    assert all(min(shape) == 16 for shape in shapes)
    assert all(str(path).endswith(".jpg") for path in cached.paths)
    stamps = [os.stat(path).st_mtime_ns for path in cached.paths]
    again = cached_copies(files, 16, progress=False)
    assert [os.stat(path).st_mtime_ns for path in again.paths] == stamps  # not written again
    (root / "c0000" / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.png"):
        cached_copies(list_folder(root, progress=False), 16, progress=False)


def test_cached_copies_never_collide_and_follow_a_replaced_original(tmp_path):
    root = tmp_path / "photos"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    colours = {"cat/x.png": 0, "cat/x.jpg": 80, "cat/X.JPG": 160, "dog/x.jpg": 240}
    for name, value in colours.items():
        Image.new("RGB", (20, 20), (value, value, value)).save(
            root / name, format="PNG" if name.endswith("png") else "JPEG"
        )
    files = list_folder(root, progress=False)
    cached = cached_copies(files, 8, progress=False)
    assert len(set(cached.paths)) == 4
    for original, copy in zip(files.paths, cached.paths):  # each copy is its own original's
        expected = colours[str(pathlib.Path(original).relative_to(root))]
        assert abs(int(np.asarray(Image.open(copy))[..., 0].mean()) - expected) <= 2, (original, copy)
    # Replaced by another picture that keeps an older time, as `cp -p` or `rsync -a` do.
    replaced = root / "cat" / "x.jpg"
    older = os.stat(replaced).st_mtime_ns - 10**9
    Image.new("RGB", (24, 20), (30, 30, 30)).save(replaced, format="JPEG")
    os.utime(replaced, ns=(older, older))
    again = cached_copies(list_folder(root, refresh=True, progress=False), 8, progress=False)
    copy = again.paths[list(files.paths).index(str(replaced))]
    assert abs(int(np.asarray(Image.open(copy))[..., 0].mean()) - 30) <= 2
    assert len(list(pathlib.Path(copy).parent.iterdir())) == 3  # the stale copy is gone


RSS_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    from kssl.data.files import list_folder
    from kssl.data.pipeline import view_pairs
    files = list_folder(sys.argv[1], progress=False).at_size(32)
    for _ in view_pairs(files, 64).take(8):  # 512 images: past the small folder's 400
        pass
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


def test_a_streamed_pipeline_holds_no_pixels_and_keeps_no_images(tmp_path):
    # What memory could grow with the folder: pixels inside the pipeline's graph, or a cache
    # or shuffle buffer of images (kssl shuffles keys). The paths are in the graph: a few
    # dozen bytes a file. The peak memory of two folders: the slow test below.
    small = write_folder(tmp_path / "small", count=40, classes=4, low=48, high=64, distinct=False)
    large = write_folder(tmp_path / "large", count=400, classes=4, low=48, high=64, distinct=False)
    graphs = []
    for folder in (small, large):
        files = list_folder(folder, progress=False).at_size(32)
        pairs = view_pairs(files, 16)
        assert [tuple(v.shape) for v in next(iter(pairs))] == [(16, 32, 32, 3)] * 2
        graphs.append(pairs._as_serialized_graph().numpy())
    paths = sum(len(str(p).encode()) + 4 for p in list_folder(large, progress=False).paths)
    # In the graph, 360 more images of 48-64 px would be 360 x 48 x 48 x 3 bytes = 2.5 MB at least.
    assert len(graphs[1]) - len(graphs[0]) < paths + 20_000, (len(graphs[0]), len(graphs[1]), paths)
    for kept in (b"CacheDataset", b"ShuffleDataset", b"SnapshotDataset"):
        assert kept not in graphs[1], kept


@pytest.mark.slow  # two more TensorFlow processes; the test above checks the graph in this one
def test_streaming_memory_does_not_grow_with_the_folder(tmp_path):
    # distinct=False writes each shape's encoded bytes again: 4,400 files in a second.
    small = write_folder(tmp_path / "small", count=400, classes=4, low=48, high=64, distinct=False)
    large = write_folder(tmp_path / "large", count=4000, classes=4, low=48, high=64, distinct=False)
    # A process per folder: in one process, the second pipeline's own graphs raised the
    # peak by 16 MB whatever the folder.
    peaks = []
    for folder in (small, large):
        out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(folder)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks.append(int(out.stdout.split()[-1]))
    # In memory, the 3,600 more images would add 3,600 x 48 x 48 x 3 bytes = 25 MB at least.
    assert abs(peaks[1] - peaks[0]) < 15, peaks


def test_kssl_streams_a_folder_and_records_the_choice(tmp_path, capsys):
    from kssl.app.cli import main

    root = write_folder(tmp_path / "photos", count=40, classes=2, low=20, high=28)
    out = tmp_path / "run"
    args = ["pretrain", "--data", str(root), *TINY_MODEL, "--epochs", "1", "--batch-size", "16"]
    assert main([*args, "--stream", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    size = int(re.search(r"image size: (\d+) px \(the images are \1 px \(median shorter side\)", printed).group(1))
    assert "data: streaming from disk (--stream)" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["stream"] is True and config["image_size"] == size and 20 <= size <= 27
