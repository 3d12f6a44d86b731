"""tf.data pipelines of views: from an in-memory `ImageSet`, or streamed from files or TFDS.

Every pipeline shuffles *keys* (image indices, or TFDS records), batches them, draws
each image's random view parameters for the whole batch from `(seed, step)`, and only
then touches images:

- in memory, one `tf.gather` and one batched `crop_and_resize` per batch;
- streaming, each image is read and decoded in parallel inside `tf.data`, only the
  region its views need (`tf.io.decode_and_crop_jpeg` for JPEG), and cropped at its
  own resolution and aspect ratio.

Both compute the same crops from the same stored pixels, so a streamed folder and the
same folder in memory give the same batches when the stored copy is the original. A
batch's parameters depend only on the seed and the step, so `rows=(lo, hi)` computes
rows `lo:hi` of each global batch exactly as the whole batch would: each worker of a
multi-worker run reads, decodes and augments only its own replicas' rows
(`kssl.runtime.distribute.distribute_batches`).
"""

from __future__ import annotations

import sys

import numpy as np
import tensorflow as tf

from kssl.data.augment import ViewAugmentation, as_uint8, crop_windows, finish_views
from kssl.data.device import unfinished_views
from kssl.data.evaluation_view import EvaluationView
from kssl.data.orientation import decode_image, jpeg_orientation, orient, stored_box, turns_sideways
from kssl.data.readers import SourceReader  # noqa: F401  (re-exported: the seam for a new kind of source)
from kssl.errors import DataError


def _check_batch(source, batch_size: int, drop_remainder: bool):
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DataError(f"batch_size must be a positive integer. Received: batch_size={batch_size!r}")
    if drop_remainder and len(source) < batch_size:
        raise DataError(
            f"The dataset has {len(source)} images, fewer than one batch of {batch_size}: "
            f"lower batch_size to at most {len(source)} or add images."
        )


_MARGIN = 8


def _first(flips):
    return None if flips is None else flips[None]


def _decode_region(contents, make_windows):
    """Decodes the part of an encoded image that `make_windows(height, width)` asks for.

    `make_windows` returns the views' windows `(V, 4)` in the image's pixels; only
    their bounding box is decoded (JPEG: `decode_and_crop_jpeg`, which skips the rest
    of the image; other formats are decoded whole). Returns the region and the windows
    relative to it.
    """

    def around(height, width):
        windows = make_windows(height, width)
        # The integer box around the windows' samples, with a margin of 8 px (a JPEG
        # block): libjpeg's cropped decode upsamples chroma at the crop's edge from the
        # edge alone, which changed the last column by up to 40 levels; with the margin,
        # the windows see the same pixels as in a full decode.
        top = tf.maximum(tf.cast(tf.floor(tf.reduce_min(windows[:, 0])), tf.int32) - _MARGIN, 0)
        left = tf.maximum(tf.cast(tf.floor(tf.reduce_min(windows[:, 1])), tf.int32) - _MARGIN, 0)
        bottom = tf.cast(tf.math.ceil(tf.reduce_max(windows[:, 0] + windows[:, 2])), tf.int32) + 1 + _MARGIN
        right = tf.cast(tf.math.ceil(tf.reduce_max(windows[:, 1] + windows[:, 3])), tf.int32) + 1 + _MARGIN
        bottom, right = tf.minimum(bottom, height), tf.minimum(right, width)
        union = tf.stack([top, left, bottom - top, right - left])
        return windows - tf.cast(tf.stack([top, left, 0, 0]), tf.float32)[None], union

    def jpeg():
        shape = tf.io.extract_jpeg_shape(contents, output_type=tf.int32)
        windows, union = around(shape[0], shape[1])
        # INTEGER_ACCURATE is libjpeg's default, which PIL (the in-memory path) uses too.
        region = tf.io.decode_and_crop_jpeg(contents, union, channels=3, dct_method="INTEGER_ACCURATE")
        return region, windows

    def turned_jpeg(orientation):
        # The windows are drawn on the image as its EXIF orientation turns it: their box
        # is mapped back to the stored pixels, decoded, and turned.
        stored = tf.io.extract_jpeg_shape(contents, output_type=tf.int32)
        sideways = turns_sideways(orientation)
        windows, union = around(tf.where(sideways, stored[1], stored[0]), tf.where(sideways, stored[0], stored[1]))
        box = stored_box(union, orientation, stored[0], stored[1])
        region = tf.io.decode_and_crop_jpeg(contents, box, channels=3, dct_method="INTEGER_ACCURATE")
        return orient(region, orientation), windows

    def any_jpeg():
        # `jpeg` is `turned_jpeg` at orientation 1 without its ops: most files take it,
        # and when every file paid the extra ops, streaming was 13% slower (flowers, 64 px).
        orientation = jpeg_orientation(contents)
        return tf.cond(orientation == 1, jpeg, lambda: turned_jpeg(orientation))

    def other():  # PNG, BMP, GIF: used as stored
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        shape = tf.shape(image)
        windows, union = around(shape[0], shape[1])
        return image[union[0] : union[0] + union[2], union[1] : union[1] + union[3]], windows

    region, windows = tf.cond(tf.io.is_jpeg(contents), any_jpeg, other)
    region.set_shape([None, None, 3])
    return region, windows


# kssl's graph code is written with TensorFlow's own control flow (tf.cond, tf.where), so
# tf.data need not run AutoGraph over it: converting the pipeline's functions (and all they
# call) took seconds of every command's start (measured: 5.7 of a 27 s test, 3.8 s of
# them converting source), once per process.
_graph_only = tf.autograph.experimental.do_not_convert


def reader_for(source):
    """The reader of any source: its `reader()` (`kssl.data.readers.SourceReader`)."""
    reader = getattr(source, "reader", None)
    if reader is None:
        raise DataError(f"Cannot read images from a {type(source).__name__}: a source needs a reader() method.")
    return reader()


def _view_batches(source, batch_size, views, seed, repeat, shuffle, drop_remainder, start_step, rows, on_device=False,
                  stop_step=None, tag_steps=False, rows_as_labels=False, keys_as_labels=False):  # fmt: skip
    """`(views_tuple, labels)` batches: the shared body of `view_pairs` and `labeled_batches`;
    with `tag_steps`, `(step, (views_tuple, labels))`, each batch with its step (the steps
    `start_step` to `stop_step`, for a shuffled endless source whose keys are indices).
    With `rows_as_labels` (in order, one pass), each image's label is its row in `source`:
    an unreadable file is dropped with its row, so what was read stays aligned by row.
    With `keys_as_labels` (a source whose keys are indices), each image's label is its
    row in `source`, in any order (FlexMatch's per-image state).

    Crops are rounded to uint8 (`as_uint8`) and then finished here, or, `on_device`,
    left for the train step as `kssl.data.device.unfinished_views`.
    """
    reader = reader_for(source)
    if stop_step is not None and not (repeat and shuffle and reader.indexed):
        raise ValueError("stop_step needs a shuffled, repeated source whose keys are indices (not a TFDS stream)")
    if rows_as_labels and (repeat or shuffle):
        raise ValueError("rows_as_labels needs one pass in order")
    if keys_as_labels and not reader.indexed:
        raise DataError(f"This {type(source).__name__} streams its records in file order: the rows of its images are "
                        "not known in a shuffled batch. Load it into memory or as a folder of files.")  # fmt: skip

    @_graph_only
    def finish(crops, labels, drawn, step):
        kept = tuple(view.finishing_parameters(p) for view, p in zip(views, drawn))
        if on_device:
            batch = unfinished_views(crops, kept), labels
        else:
            batch = tuple(finish_views(c, p) for c, p in zip(crops, kept)), labels
        return (step, batch) if tag_steps else batch

    lo, hi = rows if rows is not None else (0, None)

    @_graph_only
    def parameters(step, keys_and_labels):
        keys, labels = keys_and_labels
        count = keys.shape[0] if keys.shape[0] is not None else tf.shape(keys)[0]
        if rows_as_labels:  # in order: the batch's rows follow each other from step * batch_size
            labels = step * batch_size + tf.range(count, dtype=tf.int64)
        elif keys_as_labels:
            labels = tf.cast(keys, tf.int64)
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.constant(seed, tf.int64), step]), len(views))
        drawn = tuple(view.draw(seeds[i], count) for i, view in enumerate(views))
        return (*tf.nest.map_structure(lambda t: t[lo:hi], (keys, labels, drawn)), step)

    if repeat and shuffle and reader.indexed:  # training: each step's batch from the step alone
        batches = reader.step_key_batches(batch_size, seed, start_step, stop_step)
    else:
        batches = reader.key_batches(batch_size, seed, repeat, shuffle, drop_remainder).enumerate().skip(start_step)
    batches = batches.map(parameters)
    if not reader.streaming:

        @_graph_only
        def in_memory(keys, labels, drawn, step):
            crops = tuple(as_uint8(c) for c in reader.crops(keys, views, drawn))
            return finish(crops, labels, drawn, step)

        return batches.map(in_memory, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

    @_graph_only
    def load(key, label, drawn):
        if isinstance(views[0], EvaluationView):  # the whole file, as the exported files decode it
            image = decode_image(reader.contents(key))
            shape = tf.shape(image)
            return (as_uint8(views[0].resample(image[None], shape[:1], shape[1:2]))[0],), label, drawn

        def make_windows(height, width):
            return tf.concat(
                [
                    view.windows(tf.nest.map_structure(lambda t: t[None], p), height[None], width[None])
                    for view, p in zip(views, drawn)
                ],
                axis=0,
            )

        region, windows = _decode_region(reader.contents(key), make_windows)
        crops = [
            crop_windows(region[None], windows[i : i + 1], view.image_size, _first(view.flips(p)))[0]
            for i, (view, p) in enumerate(zip(views, drawn))
        ]
        return tuple(as_uint8(c) for c in crops), label, drawn

    @_graph_only
    def one_batch(keys, labels, drawn, step):
        count = tf.shape(labels, out_type=tf.int64)[0]
        loaded = tf.data.Dataset.from_tensor_slices((keys, labels, drawn)).map(
            load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        places = tf.data.Dataset.range(count)  # each image's place in its batch, to name the dropped ones
        # An unreadable file is dropped here and reported below; a batch whose files were all
        # unreadable is an empty batch, so that there is one batch per key batch.
        images = tf.data.Dataset.zip(loaded, places).ignore_errors().batch(batch_size)
        empty = tf.nest.map_structure(lambda spec: tf.zeros([0, *spec.shape[1:]], spec.dtype), images.element_spec)
        images = images.concatenate(tf.data.Dataset.from_tensors(empty)).take(1)
        about = tf.data.Dataset.from_tensors((reader.names(keys), step))
        return tf.data.Dataset.zip(images, about)

    @_graph_only
    def report_skipped(skipped, batch):
        ((crops, labels, drawn), places), (names, step) = batch
        read = tf.reduce_any(tf.range(tf.shape(names, out_type=tf.int64)[0])[:, None] == places[None, :], axis=1)
        unreadable = tf.boolean_mask(names, ~read)
        missing = tf.shape(unreadable)[0]

        def warn():
            tf.print(
                "kssl: skipped",
                missing,
                "unreadable image(s) in this batch (",
                skipped + tf.cast(missing, tf.int64),
                "so far):",
                unreadable,
                summarize=-1,
                output_stream=sys.stderr,
            )
            return skipped + tf.cast(missing, tf.int64)

        skipped = tf.cond(missing > 0, warn, lambda: skipped)
        return skipped, (crops, labels, drawn, step)

    dataset = batches.interleave(
        one_batch, cycle_length=4, block_length=1, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).scan(tf.constant(0, tf.int64), report_skipped)
    if repeat:
        dataset = dataset.filter(_graph_only(lambda crops, labels, drawn, step: tf.shape(labels)[0] > 0))
    else:  # one batch per key batch, also when all its files were unreadable: Keras knows the length
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(batches.cardinality()))
    return dataset.map(finish, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def view_pairs(
    image_set,
    batch_size: int = 256,
    augmentation: ViewAugmentation | tuple | list | None = None,
    seed: int = 0,
    with_labels: bool = False,
    repeat: bool = True,
    shuffle: bool = True,
    start_step: int = 0,
    rows: tuple[int, int] | None = None,
    on_device: bool = False,
    stop_step: int | None = None,
    tag_steps: bool = False,
    with_rows: bool = False,
) -> tf.data.Dataset:
    """Batches of augmented views of each image (two, or one per given transform), for a
    pretraining model's `fit`.

    Args:
        image_set: an in-memory `ImageSet`, or a streamed source (`ImageFiles`, or
            `kssl.data.tfds_stream.TFDSRecords`); labels are ignored unless `with_labels`.
        batch_size: images per batch (each gives one view per transform). Incomplete
            batches are dropped, since NT-Xent's negatives depend on the batch.
        augmentation: the view transform, applied twice; default
            `ViewAugmentation(image_set.image_size)`. A tuple or list gives one view per
            transform, of any number and sizes (BYOL's asymmetric pair; multi-crop's 2
            global and K small crops): a method's `view_augmentations`.
        seed: shuffling and augmentation seed.
        with_labels: yield `((views_1, views_2, ...), labels)` for the model's online probe.
        repeat: repeat forever (use `steps_per_epoch` in `fit`; one long epoch avoids
            the cost of epoch boundaries, see `kssl.training`).
        shuffle: reshuffle every pass.
        start_step: skip this many batches (cheaply: before any image is touched), to
            resume an interrupted run on exactly the batches it had not seen.
        rows: compute only rows `lo:hi` of each batch, exactly as the whole batch
            would have them (a worker's share of a global batch).
        on_device: leave flips, colour jitter, grayscale, blur and solarize to the
            model's train step, which runs them on its device: batches are then
            `kssl.data.device.unfinished_views` (uint8 crops and their parameters), the
            same views once finished (`kssl.pretrain` does this on a GPU).
        stop_step: end before this step (default: endless, with `repeat`).
        tag_steps: yield `(step, batch)`: the tf.data service's workers compute steps in
            any order (`kssl.data.service`). Both need a source whose keys are indices
            (in memory or files; not a TFDS stream), shuffled and repeated.
        with_rows: yield `((views_1, views_2, ...), rows)`, each image's row in
            `image_set` (a source whose keys are indices), instead of labels.

    A streamed file that cannot be decoded is dropped from its batch with a warning
    naming the batch's files and the count so far, so a long run never stops halfway.

    Returns:
        A `tf.data.Dataset` of `(views_1, views_2, ...)` float32 batches in [0, 1] (with
        `on_device`, `kssl.data.device.unfinished_views` batches).

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> pairs = view_pairs(load_digits(image_size=16), batch_size=8)
        >>> [tuple(v.shape) for v in next(iter(pairs))]
        [(8, 16, 16, 3), (8, 16, 16, 3)]
        >>> three = view_pairs(load_digits(image_size=16), 8, [ViewAugmentation(16)] * 2 + [ViewAugmentation(6)])
        >>> [v.shape[1] for v in next(iter(three))]
        [16, 16, 6]
    """
    _check_batch(image_set, batch_size, drop_remainder=True)
    if with_labels and image_set.labels is None and not getattr(image_set, "labeled", False):
        raise DataError("with_labels=True needs a labeled image set.")
    if with_labels and with_rows:
        raise ValueError("with_labels and with_rows each take the labels' place: choose one.")
    augmentation = augmentation or ViewAugmentation(image_set.image_size)
    views = tuple(augmentation) if isinstance(augmentation, (tuple, list)) else (augmentation, augmentation)
    batches = _view_batches(image_set, batch_size, views, seed, repeat, shuffle, True, start_step, rows, on_device,
                            stop_step, tag_steps, keys_as_labels=with_rows)  # fmt: skip
    if with_labels or with_rows:
        return batches
    if tag_steps:
        return batches.map(_graph_only(lambda step, batch: (step, batch[0])))
    return batches.map(_graph_only(lambda views, labels: views))


def labeled_batches(
    image_set,
    batch_size: int = 256,
    training: bool = False,
    augmentation: ViewAugmentation | None = None,
    seed: int = 0,
    repeat: bool = False,
    start_step: int = 0,
    rows: tuple[int, int] | None = None,
) -> tf.data.Dataset:
    """Batches of `(images, labels)` for `Classifier.fit`/`evaluate`, images float32 in [0, 1].

    With `training=True` the batches are shuffled and lightly augmented (random
    resized crop of 25-100% of the area and horizontal flip, unless `augmentation`
    is given); otherwise they come in order, unaugmented (`kssl.data.evaluation_view.EvaluationView`:
    the centred square of each image at the training size), with the last partial batch. `start_step` and `rows`
    work as in `view_pairs`.

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> images, labels = next(iter(labeled_batches(load_digits(image_size=16, split="test"), 32)))
        >>> images.shape, labels.shape
        (TensorShape([32, 16, 16, 3]), TensorShape([32]))
    """
    if image_set.labels is None and not getattr(image_set, "labeled", False):
        raise DataError(f"{image_set.source or 'The image set'} has no labels; a classifier needs labeled images.")
    _check_batch(image_set, batch_size, drop_remainder=False)
    if not training:
        view = EvaluationView(image_set.image_size)
    else:
        view = augmentation or ViewAugmentation(
            image_set.image_size,
            crop_area=(0.25, 1.0),
            jitter_strength=0.0,
            grayscale_probability=0.0,
            blur_probability=0.0,
        )
    batches = _view_batches(image_set, batch_size, (view,), seed, repeat, training, False, start_step, rows)
    return batches.map(_graph_only(lambda views, labels: (views[0], labels)))


def semi_supervised_batches(
    labeled_set,
    unlabeled_set,
    batch_size: int,
    ratio: int,
    views,
    seed: int = 0,
    start_step: int = 0,
    rows: tuple[int, int] | None = None,
    with_rows: bool = False,
) -> tf.data.Dataset:
    """Batches of `((images, labels), unlabeled_views)` for semi-supervised fine-tuning
    (`kssl.semi_supervised.base.SemiSupervisedTraining`), repeated forever.

    The labeled half is `labeled_batches(labeled_set, batch_size, training=True)`; the
    unlabeled half is `view_pairs(unlabeled_set, batch_size * ratio, views)`, one tensor
    per view, shaped `(batch_size, ratio, H, W, 3)`: row `i` carries the `ratio`
    unlabeled images that go with labeled image `i`, so a batch splits over replicas and
    workers by rows (`rows`, `start_step` as in `view_pairs`). With `with_rows`, the
    unlabeled images' rows in `unlabeled_set`, `(batch_size, ratio)` int64, follow the
    views (`(*views, rows)`: for a method that keeps state per image, FlexMatch).

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> digits = load_digits(image_size=8)
        >>> (images, labels), (weak, strong) = next(iter(semi_supervised_batches(
        ...     digits.subset(range(40)), digits, 8, ratio=3, views=[ViewAugmentation(8)] * 2)))
        >>> images.shape, labels.shape, weak.shape, strong.shape
        (TensorShape([8, 8, 8, 3]), TensorShape([8]), TensorShape([8, 3, 8, 8, 3]), TensorShape([8, 3, 8, 8, 3]))
    """
    labeled = labeled_batches(labeled_set, batch_size, training=True, seed=seed, repeat=True, start_step=start_step,
                              rows=rows)  # fmt: skip
    unlabeled_rows = None if rows is None else (rows[0] * ratio, rows[1] * ratio)
    unlabeled = view_pairs(unlabeled_set, batch_size * ratio, list(views), seed=seed, start_step=start_step,
                           rows=unlabeled_rows, with_rows=with_rows)  # fmt: skip
    if with_rows:
        unlabeled = unlabeled.map(_graph_only(lambda views, rows: (*views, rows)))

    @_graph_only
    def by_row(*batch):
        return tuple(tf.reshape(view, tf.concat([[-1, ratio], tf.shape(view)[1:]], 0)) for view in batch)

    return tf.data.Dataset.zip(labeled, unlabeled.map(by_row))


def evaluation_images(source, batch_size: int = 256, image_size: int | None = None, with_rows: bool = False):
    """Batches of the evaluation view (`EvaluationView`: the centred square at `image_size`) of every image, in order.

    Works for labeled and unlabeled sources, in memory or streamed. A streamed file that
    cannot be decoded is left out of its batch (with a warning naming it); `with_rows=True`
    yields `(views, rows)`, each view's row in `source`, so that what was computed stays
    aligned with the listing by row (`kssl.evaluation.features.readable_features`).

    Examples:
        >>> from kssl.data.sources import load_digits
        >>> next(iter(evaluation_images(load_digits(image_size=16, split="test"), 50, image_size=8))).shape
        TensorShape([50, 8, 8, 3])
    """
    view = EvaluationView(image_size or source.image_size)
    batches = _view_batches(source, batch_size, (view,), 0, False, False, False, 0, None, rows_as_labels=with_rows)
    if with_rows:
        return batches.map(_graph_only(lambda views, rows: (views[0], rows)))
    return batches.map(_graph_only(lambda views, labels: views[0]))
