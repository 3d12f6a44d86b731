"""A TFDS split streamed from TFDS's own record files, without copying it into NumPy.

Records are read with the image left encoded (`tfds.decode.SkipDecoding`), shuffled
(files, then a buffer of records) with a fixed seed, batched, and decoded by the same
crop-and-augment path as streamed folders (`kssl.data.pipeline`): only the crop's region
of a JPEG is decoded. Every worker of a multi-worker run reads the same record order
and decodes only its own rows of each global batch.

Example (a dataset prepared in `data_dir`):
    records = TFDSRecords.open("cifar10", "train").at_size(32)
    pairs = kssl.data.pipeline.view_pairs(records, 256)
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kssl.data.collection import ImageCollection
from kssl.errors import DataError

SHUFFLE_BUFFER = 10_000


@dataclasses.dataclass
class TFDSRecords(ImageCollection):
    """A TFDS image-classification split (`image` and `label` features), streamed.

    Attributes:
        name: the TFDS name.
        split: a TFDS split string (`"train"`, `"train[:10%]"`).
        data_dir: TFDS's data folder (default: `TFDS_DATA_DIR`, else `~/tensorflow_datasets`).
        count: number of examples in the split.
        class_names: the label names.
        view_size: the training size of the views.
    """

    name: str
    split: str
    data_dir: str | None
    count: int
    class_names: list
    view_size: int | None = None
    labeled = True

    @classmethod
    def open(cls, name: str, split: str = "train", data_dir=None) -> TFDSRecords:
        """The split of a prepared dataset; a clear `DataError` when it is not there."""

        data_dir = data_dir or os.environ.get("TFDS_DATA_DIR")
        builder = tfds_builder(name, data_dir)
        try:
            info = builder.info
            count = int(info.splits[split].num_examples)
        except Exception as error:  # noqa: BLE001 - TFDS raises many types for these
            raise DataError(
                f"Could not open TFDS dataset {name!r} split {split!r} for streaming: {type(error).__name__}: "
                f"{error}. Prepare it first (tfds build, or kssl without --stream) and pass its data_dir."
            ) from None
        names = list(getattr(info.features["label"], "names", None) or [])
        return cls(name, split, data_dir, count, names)

    def __len__(self) -> int:
        return self.count

    @property
    def source(self) -> str:
        return f"tfds:{self.name}:{self.split}"

    @property
    def labels(self) -> np.ndarray:
        """Every example's label, in the split's order (one pass over the records, no decoding)."""
        if getattr(self, "_labels", None) is None:
            labels = [label for _, label in self.records(shuffle=False).map(lambda i, y: (0, y)).batch(4096)]
            self._labels = np.concatenate([np.asarray(batch) for batch in labels]).astype(np.int64)
        return self._labels

    def subset(self, indices, source: str | None = None):
        """The examples at `indices`, decoded into an in-memory `ImageSet` (a small labeled set)."""
        from kssl.data.decoding import stored_copy
        from kssl.data.evaluation_view import EvaluationView
        from kssl.data.image_set import image_set_from_padded_batches

        wanted = np.zeros(self.count, bool)
        wanted[np.asarray(indices)] = True
        mask = tf.constant(wanted)
        chosen = (
            self.records(shuffle=False)
            .enumerate()
            .filter(tf.autograph.experimental.do_not_convert(lambda i, record: tf.gather(mask, i)))
        )
        size = self.image_size

        @tf.autograph.experimental.do_not_convert  # plain TensorFlow ops: no AutoGraph needed
        def decode(index, record):
            original = tf.io.decode_image(record[0], channels=3, expand_animations=False)
            view = EvaluationView(size).crop(original[None])[0]  # the original's, as measured and served
            image = stored_copy(original, size)  # stored as a folder's images are
            return image, tf.shape(image)[:2], record[1], view

        batches = chosen.map(decode, num_parallel_calls=tf.data.AUTOTUNE).padded_batch(256)
        return image_set_from_padded_batches(
            batches.as_numpy_iterator(), self.class_names, source or self.source, size
        ).at_size(size)

    def image_shapes(self, count: int = 200) -> np.ndarray:
        """`(height, width)` of the first `count` images, read from their encoded headers."""
        shapes = [
            tf.image.extract_jpeg_shape(image)[:2].numpy()
            if tf.io.is_jpeg(image)
            else tf.shape(tf.io.decode_image(image, channels=3, expand_animations=False))[:2].numpy()
            for image, _ in self.records(shuffle=False).take(count)
        ]
        return np.asarray(shapes)

    def records(self, shuffle: bool = True, seed: int = 0) -> tf.data.Dataset:
        """`(encoded image, label)` pairs in a seeded order (the same on every worker)."""
        import tensorflow_datasets as tfds

        builder = tfds.builder(self.name, data_dir=self.data_dir)
        read_config = tfds.ReadConfig(shuffle_seed=seed, interleave_cycle_length=1 if not shuffle else 16)
        dataset = builder.as_dataset(
            split=self.split,
            shuffle_files=shuffle,
            read_config=read_config,
            decoders={"image": tfds.decode.SkipDecoding()},
        )
        return dataset.map(
            tf.autograph.experimental.do_not_convert(
                lambda example: (example["image"], tf.cast(example["label"], tf.int64))
            )
        )

    def reader(self):
        from kssl.data.readers import SourceReader

        records = self

        class _RecordReader(SourceReader):
            streaming = True
            indexed = False  # records come in file order: a step's batch needs the ones before it

            def key_batches(self, batch_size, seed, repeat, shuffle, drop_remainder):
                dataset = records.records(shuffle=shuffle, seed=seed)
                if shuffle:
                    dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
                if repeat:
                    dataset = dataset.repeat()
                return dataset.batch(batch_size, drop_remainder=drop_remainder)

            def names(self, keys):
                return tf.fill(tf.shape(keys), records.source)

            def contents(self, key):
                return key

        return _RecordReader(self)


def tfds_builder(name: str, data_dir=None):
    """TFDS's builder of `name`; an unknown name is a one-line `DataError` with the
    closest registered names (TFDS's own error lists its whole catalogue, 460 lines)."""
    import difflib

    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        close = difflib.get_close_matches(name, tfds.list_builders(), n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "tfds.list_builders() lists them."
        raise DataError(f"Unknown TFDS dataset {name!r}; {hint}") from None
