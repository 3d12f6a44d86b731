"""TFDS sources, on a dataset built on disk here (no download): `tfds:NAME:SPLIT` end to end."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from kssl.cli import main
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
    assert images.images.shape == (10, 8, 8, 3) and images.class_names == ["dark", "light"]
    assert images.source == "tfds:kssl_tiny_shapes:train[:25%]"


def test_load_reads_the_split_from_the_spec(data_dir, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    assert len(load("tfds:kssl_tiny_shapes:train[:50%]", image_size=8)) == 20
    assert len(load("tfds:kssl_tiny_shapes", image_size=8)) == 40


def test_kssl_run_keeps_the_tfds_split(data_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("TFDS_DATA_DIR", str(data_dir))
    out = tmp_path / "run"
    tiny = ["--image-size", "8", "--width", "0.125", "--epochs", "1", "--batch-size", "16"]
    args = ["run", "--data", "tfds:kssl_tiny_shapes:train[:50%]", *tiny, "--finetune-epochs", "1", "--labels", "2"]
    assert main([*args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["train_images"], metrics["test_images"]) == (20, 10)
    assert metrics["data"] == "tfds:kssl_tiny_shapes:train[:50%]"
