"""How a source's keys become batches of crops: one reader per kind of source.

Every source (`ImageSet`, `ImageFiles`, `TFDSRecords`) offers `reader()`, and the
pipelines (`kssl.data.pipeline`) read through it alone, so a new kind of source is its
file, with a `reader()` returning a `SourceReader` subclass, and nothing else.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kssl.data.augment import crop_windows
from kssl.data.evaluation_view import EvaluationView


def _read_file(path):
    """The bytes of one file (a seam for tests that count reads)."""
    return tf.io.read_file(path)


class SourceReader:
    """How a source's keys become batches of crops; one subclass per kind of source.

    `key_batches` yields `(keys, labels)` batches; an in-memory reader (`streaming =
    False`) has `crops(keys, views, parameters)`, a streaming one `contents(key)` (the
    encoded image) and `names(keys)` (for warnings). A new kind of source is one
    subclass, returned by the source's `reader()` method.
    """

    streaming = False
    # Whether keys are indices 0..N-1 into the source, so that any step's batch can be
    # computed from the step alone (`step_key_batches`); a TFDS stream's are records.
    indexed = True

    def __init__(self, source):
        self.source = source

    def step_key_batches(self, batch_size, seed, start_step=0, stop_step=None):
        """`(step, (keys, labels))` for each step from `start_step` (to `stop_step`, else
        endless): the keys are the images at positions `step * batch_size` to
        `step * batch_size + batch_size - 1` of the endless shuffle of `kssl.data.shuffle`,
        a function of the step alone (epochs follow each other within a batch, as
        `keys.shuffle(...).repeat().batch(...)` would have them)."""
        from kssl.data.shuffle import shuffled_indices

        size = len(self.source)
        labels = self.labels()

        def keys_of(step):
            keys = shuffled_indices(step * batch_size + tf.range(batch_size, dtype=tf.int64), size, seed)
            keys.set_shape([batch_size])  # static, as a batched dataset's: grappler costs ops with known shapes
            return step, (keys, tf.gather(labels, keys))

        stop = tf.int64.max if stop_step is None else stop_step
        return tf.data.Dataset.range(start_step, stop).map(tf.autograph.experimental.do_not_convert(keys_of))

    def key_batches(self, batch_size, seed, repeat, shuffle, drop_remainder):
        """`(keys, labels)` batches: keys are indices here, records for TFDS."""
        size = len(self.source)
        keys = tf.data.Dataset.range(size)
        if shuffle:
            keys = keys.shuffle(size, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            keys = keys.repeat()
        labels = self.labels()
        return keys.batch(batch_size, drop_remainder=drop_remainder).map(
            tf.autograph.experimental.do_not_convert(lambda k: (k, tf.gather(labels, k)))
        )

    def labels(self):
        labels = self.source.labels
        with tf.device("/cpu:0"):
            return tf.constant(labels if labels is not None else np.zeros(len(self.source), np.int64))


class MemoryReader(SourceReader):
    """An in-memory `ImageSet`: one gather and one batched crop per batch."""

    def __init__(self, source):
        super().__init__(source)
        with tf.device("/cpu:0"):  # whole-dataset constants stay on the host
            self.images = tf.constant(source.images)
            self.shapes = None if source.shapes is None else tf.constant(source.shapes.astype(np.int32))
            views = getattr(source, "evaluation_views", None)
            self.evaluation_views = None if views is None else tf.constant(views)

    def crops(self, keys, views, drawn):
        batch = tf.gather(self.images, keys)
        if self.shapes is None:
            count = keys.shape[0] if keys.shape[0] is not None else tf.shape(keys)[0]
            heights, widths = tf.fill([count], tf.shape(batch)[1]), tf.fill([count], tf.shape(batch)[2])
        else:
            shapes = tf.gather(self.shapes, keys)
            heights, widths = shapes[:, 0], shapes[:, 1]
        return tuple(
            self._crop(keys, batch, heights, widths, view, parameters) for view, parameters in zip(views, drawn)
        )

    def _crop(self, keys, batch, heights, widths, view, parameters):
        if isinstance(view, EvaluationView):
            if self.evaluation_views is not None and self.source.evaluation_size == view.image_size:
                return tf.cast(tf.gather(self.evaluation_views, keys), tf.float32)  # the originals' views, kept
            return view.resample(batch, heights, widths)
        return crop_windows(batch, view.windows(parameters, heights, widths), view.image_size, view.flips(parameters))


class FileReader(SourceReader):
    """Streamed `ImageFiles`: the bytes of each file, decoded in the pipeline."""

    streaming = True

    def __init__(self, source):
        super().__init__(source)
        with tf.device("/cpu:0"):
            self.paths = tf.constant(source.paths.astype(str))

    def names(self, keys):
        return tf.gather(self.paths, keys)

    def contents(self, key):
        return _read_file(tf.gather(self.paths, key))
