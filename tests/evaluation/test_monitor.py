"""`KNNMonitor`: a fixed stratified subset, the evaluation view, the same kNN as
evaluation, no effect on training, the curve kept across a resume, and off without labels."""

import json

import keras
import numpy as np
import pytest

import kssl
from kssl.evaluation.features import extract_features, knn_accuracy
from kssl.evaluation.monitor import KNNMonitor, monitor_every, monitor_subset


def test_the_subset_is_fixed_stratified_and_a_fifth_of_it_queries():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    queries, bank = monitor_subset(labels, max_images=100, seed=3)
    assert len(queries) == 20 and len(bank) == 80 and not set(queries) & set(bank)
    np.testing.assert_array_equal(np.bincount(labels[np.concatenate([queries, bank])]), [50, 25, 15, 10])
    again = monitor_subset(labels, max_images=100, seed=3)
    np.testing.assert_array_equal(again[0], queries)
    assert len(monitor_subset(labels, max_images=1000)[1]) == 160  # all 200 images when fewer than the cap
    assert monitor_subset(np.array([0, 0, 0, 1]), 10)[0].size == 1  # a class too small to stratify


def test_the_interval_is_a_tenth_of_training_within_bounds():
    assert [monitor_every(s) for s in (10, 600, 2000, 100_000, None)] == [25, 60, 200, 250, 200]


def pretrain_digits(callbacks, steps=4):
    digits = kssl.load_digits(image_size=8)
    keras.utils.set_random_seed(0)
    encoder = kssl.resnet(10, width=0.125, image_size=8)
    model, _ = kssl.pretrain(digits.subset(range(128)), encoder, epochs=steps / 2, batch_size=64,
                             callbacks=callbacks, verbose=0)  # fmt: skip
    return digits, model


def test_a_check_is_the_evaluation_knn_of_the_queries_against_the_bank_and_training_is_unchanged(tmp_path):
    digits = kssl.load_digits(image_size=8)
    monitor = KNNMonitor(digits, every=2, max_images=300, path=tmp_path / "knn.json")
    _, watched = pretrain_digits([monitor])
    _, unwatched = pretrain_digits([])
    for a, b in zip(watched.get_weights(), unwatched.get_weights()):
        np.testing.assert_array_equal(a, b)  # the labels and checks never touch training
    assert monitor.steps == [2, 4] and monitor.seconds > 0
    queries, bank = monitor_subset(digits.labels, 300)
    features = extract_features(watched.encoder, digits.subset(np.concatenate([queries, bank])))
    expected = knn_accuracy(features[60:], digits.labels[bank], features[:60], digits.labels[queries], k=20)
    assert monitor.curves["knn_20"][-1] == pytest.approx(expected, abs=1 / 60)  # uint8 views: at most one query
    assert json.loads((tmp_path / "knn.json").read_text())["steps"] == [2, 4]


def test_a_resumed_run_keeps_the_curve_up_to_its_step(tmp_path):
    path = tmp_path / "knn.json"
    path.write_text(json.dumps({"steps": [2, 4, 6], "curves": {"knn_20": [0.1, 0.2, 0.3], "knn_200": [0.1] * 3},
                                "seconds": 1.5}))  # fmt: skip
    monitor = KNNMonitor(kssl.load_digits(image_size=8), every=2, max_images=100, path=path)
    assert monitor.steps == [2, 4, 6]
    monitor.set_model(type("M", (), {"optimizer": type("O", (), {"iterations": keras.Variable(4)})()})())
    monitor._images = np.zeros((1, 8, 8, 3), "uint8")
    monitor.on_train_begin()
    assert monitor.steps == [2, 4] and monitor.curves["knn_20"] == [0.1, 0.2]


def test_without_labels_the_monitor_says_it_cannot_run():
    unlabeled = kssl.from_arrays(np.zeros((10, 8, 8, 3), "uint8"))
    with pytest.raises(ValueError, match="needs images with labels"):
        KNNMonitor(unlabeled)


def test_a_tensorboard_callback_after_the_monitor_records_its_values(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed (kssl does not require it)")
    import tensorflow as tf

    monitor = KNNMonitor(kssl.load_digits(image_size=8), every=2, max_images=100)
    board = keras.callbacks.TensorBoard(tmp_path / "logs", update_freq=1)
    pretrain_digits([monitor, board])
    tags = set()
    for events in (tmp_path / "logs" / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags.update(value.tag for value in event.summary.value)
    assert {"batch_knn_20", "epoch_knn_20", "epoch_knn_200"} <= tags, tags


def test_an_unreadable_file_leaves_the_subset_with_its_label(tmp_path):
    from helpers import tiny_encoder, write_image_folder

    from kssl.data.files import list_folder

    root = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=6)
    (root / "a" / "00000.png").write_bytes(b"not a png")  # an "a" image: every later label would shift
    files = list_folder(root, progress=False).at_size(8)
    monitor = KNNMonitor(files, every=2, max_images=12)
    monitor.set_model(type("M", (), {"encoder": tiny_encoder(8)})())
    views = monitor._evaluation_views()
    read = [i for i in monitor._order if not files.paths[i].endswith("a/00000.png")]
    assert len(views) == len(monitor._labels) == monitor.queries + monitor.bank == 11
    assert monitor._labels.tolist() == files.labels[read].tolist()


def test_rankme_is_the_entropy_of_the_normalised_singular_values(rng):
    from kssl.evaluation.monitor import rankme

    features = rng.normal(size=(300, 16)) @ np.diag(np.linspace(0.1, 3, 16))
    sigma = np.sqrt(np.clip(np.linalg.eigvalsh(features.T @ features), 0, None))  # eigenvalues of Z^T Z
    p = sigma / sigma.sum() + 1e-7
    assert rankme(features) == pytest.approx(np.exp(-np.sum(p * np.log(p))), rel=1e-6)
    assert rankme(rng.normal(size=(2000, 16))) > 15.5 and rankme(np.ones((50, 16))) == pytest.approx(1.0, abs=1e-4)
    three = rng.normal(size=(500, 3)) @ rng.normal(size=(3, 16))  # a 3-d subspace of 16-d features
    assert 2.0 < rankme(three) <= 3.0 + 1e-3


def test_without_labels_rankme_is_monitored_and_a_fall_to_half_warns_once():
    from kssl.evaluation.monitor import RankMeMonitor

    images = kssl.load_digits(image_size=8)
    unlabeled = images.subset(range(300)).__class__(images.images[:300])  # no labels
    monitor = RankMeMonitor(unlabeled, every=2, max_images=100)
    pretrain_digits([monitor])
    assert monitor.steps == [2, 4] and len(monitor.curves["rankme"]) == 2 and monitor.images == 100
    assert all(1.0 <= value <= 100 for value in monitor.curves["rankme"])
    monitor.curves["rankme"] = [40.0, 30.0, 19.0]
    with pytest.warns(UserWarning, match="RankMe fell from 40.0 to 19.0"):
        monitor.after_check({})
    monitor.after_check({})  # once
