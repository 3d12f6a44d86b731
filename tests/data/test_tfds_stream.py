"""TFDS sources, on a dataset built on disk here (no download): `tfds:NAME:SPLIT` end to end."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from helpers import TINY_MODEL

from kssl.app.cli import main
from kssl.data.sources import from_tfds, load


class KsslTinyShapes(tfds.core.GeneratorBasedBuilder):
    """Two classes of 12-px images, dark and light: 40 train, 10 test."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(
            builder=self,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(12, 12, 3)),
                    "label": tfds.features.ClassLabel(names=["dark", "light"]),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(40, seed=0), "test": self._generate_examples(10, seed=1)}

    def _generate_examples(self, count, seed):
        rng = np.random.default_rng(seed)
        for index in range(count):
            label = index % 2
            low = 128 * label
            yield index, {"image": rng.integers(low, low + 128, (12, 12, 3), dtype=np.uint8), "label": label}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tfds")
    KsslTinyShapes(data_dir=str(folder)).download_and_prepare()
    return folder


def test_a_split_with_slicing_is_loaded_as_asked(data_dir):
    images = from_tfds("kssl_tiny_shapes", "train[:25%]", image_size=8, data_dir=str(data_dir))
    # Stored as a folder's images are: the shorter side at 1.5x the view (12 px), the views at 8.
    assert images.images.shape == (10, 12, 12, 3) and images.image_size == 8
    assert images.evaluation_views.shape == (10, 8, 8, 3) and images.class_names == ["dark", "light"]
    assert images.source == "tfds:kssl_tiny_shapes:train[:25%]"


def test_load_reads_the_split_from_the_spec(data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    assert len(load("tfds:kssl_tiny_shapes:train[:50%]", image_size=8)) == 20
    assert len(load("tfds:kssl_tiny_shapes", image_size=8)) == 40


def test_a_run_trains_on_the_specs_split_and_tests_on_test(data_dir, monkeypatch):
    # What `kssl run --data tfds:NAME:SPLIT` trains and tests on (kssl.app.data, its one loader).
    from kssl.app.data import load_train_test

    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    notes = {}
    train, test = load_train_test("tfds:kssl_tiny_shapes:train[:50%]", image_size=8, notes=notes)
    assert (len(train), len(test)) == (20, 10) and notes["image_size"] == 8
    assert train.class_names == test.class_names == ["dark", "light"]


def test_a_split_streams_from_its_record_files_through_the_crop_path(data_dir):
    from kssl.data.pipeline import evaluation_images, view_pairs
    from kssl.data.tfds_stream import TFDSRecords

    records = TFDSRecords.open("kssl_tiny_shapes", "train", data_dir=str(data_dir)).at_size(8)
    assert len(records) == 40 and records.class_names == ["dark", "light"]
    batches = list(view_pairs(records, 8, with_labels=True, repeat=False))
    assert len(batches) == 5 and batches[0][0][0].shape == (8, 8, 8, 3)
    assert sorted(np.concatenate([labels for _, labels in batches]).tolist()) == [0] * 20 + [1] * 20
    again = list(view_pairs(records, 8, with_labels=True, repeat=False))
    np.testing.assert_array_equal(batches[2][0][1], again[2][0][1])  # a seed gives the same views
    in_memory = from_tfds("kssl_tiny_shapes", "train", image_size=8, data_dir=str(data_dir))
    streamed = np.concatenate(list(evaluation_images(records, 16)))
    assert streamed.shape == (40, 8, 8, 3)
    # Dark images stay dark and light ones light: the records were decoded, not garbage.
    np.testing.assert_array_equal(records.labels, in_memory.labels)
    assert (streamed.mean(axis=(1, 2, 3)) > 0.5).tolist() == (in_memory.labels == 1).tolist()
    subset = records.subset([0, 5, 9])
    np.testing.assert_array_equal(subset.images, in_memory.images[[0, 5, 9]])  # stored by the same rule
    assert subset.image_size == 8 and subset.labels.tolist() == in_memory.labels[[0, 5, 9]].tolist()


def test_kssl_streams_a_tfds_split_and_records_the_choice(data_dir, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    out = tmp_path / "run"
    tiny = [*TINY_MODEL, "--epochs", "1", "--batch-size", "16"]
    assert main(["pretrain", "--data", "tfds:kssl_tiny_shapes", "--stream", *tiny, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "image size: 12 px (the images are 12 px" in printed and "streaming from disk" in printed
    config = json.loads((out / "config.json").read_text())
    assert (config["image_size"], config["stream"]) == (12, True)
    assert json.loads((out / "metrics.json").read_text())["pretraining"]["steps"] == 40 // 16


def test_an_unknown_tfds_name_is_one_line_with_the_closest_names():
    from kssl.data.sources import DataError, from_tfds
    from kssl.data.tfds_stream import TFDSRecords

    for open_unknown in (lambda: from_tfds("cifar1O", "train", 8), lambda: TFDSRecords.open("cifar1O")):
        with pytest.raises(DataError) as error:
            open_unknown()
        message = str(error.value)
        assert message.startswith("Unknown TFDS dataset 'cifar1O'; did you mean 'cifar10'") and "\n" not in message


@pytest.mark.eager_steps  # the command's plumbing: see conftest
def test_kssl_embed_streams_a_tfds_split_with_its_class_names(data_dir, monkeypatch, tmp_path):
    from helpers import tiny_encoder

    from kssl.evaluation.similarity import read_embeddings

    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    tiny_encoder(8).save(tmp_path / "encoder.keras")
    out = tmp_path / "test.npz"
    args = ["embed", "--pretrained", str(tmp_path / "encoder.keras"), "--data", "tfds:kssl_tiny_shapes:test"]
    assert main([*args, "--out", str(out)]) == 0
    table = read_embeddings(out)
    assert list(table.paths) == [f"tfds:kssl_tiny_shapes:test[{i}]" for i in range(10)]
    assert sorted(set(table.labels)) == ["dark", "light"] and table.embeddings.shape[0] == 10
