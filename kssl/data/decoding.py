"""Image files decoded as kssl stores them: the first frame as 8-bit RGB, turned as its EXIF
orientation says, its centred part of at most 2:1, the shorter side at 1.5x the training
size (never enlarged); many files at once on threads (`map_files`), an unreadable one named
(`check_unreadable`), and a folder's files into an in-memory `ImageSet` (`decode_files`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib

import numpy as np

from kssl.data.image_set import ImageSet, padded_image_set
from kssl.data.orientation import orient_pil, pil_orientation
from kssl.errors import DataError
from kssl.runtime.terminal import progress_bar

logger = logging.getLogger("kssl")


def open_scaled(path, shorter_side: int):
    """The first frame of an image file as RGB, as kssl stores it: `stored_shape`.

    Its centred part of at most `MAX_STORED_ASPECT` (long side to short side), the
    shorter side at most `shorter_side`: small images are not enlarged. A JPEG is decoded
    at a reduced DCT scale where that suffices (several times faster), and turned as its
    EXIF orientation says (`kssl.data.orientation`); the resize is PIL's bilinear filter,
    which antialiases. Raises what PIL raises for unreadable files.
    """
    from PIL import Image

    with Image.open(path) as image:
        image.seek(0)  # the first frame of a GIF
        width, height = image.size
        scale = min(1.0, shorter_side / min(width, height))
        if image.format == "JPEG" and scale < 1.0:
            image.draft("RGB", (max(1, round(width * scale)), max(1, round(height * scale))))
        orientation = pil_orientation(image)
        rgb = as_rgb(image)
        drafted_height, drafted_width = rgb.size[::-1]
        kept_height, kept_width = centred_part(drafted_height, drafted_width)
        if (kept_height, kept_width) != (drafted_height, drafted_width):
            top, left = (drafted_height - kept_height) // 2, (drafted_width - kept_width) // 2
            rgb = rgb.crop((left, top, left + kept_width, top + kept_height))
        rgb = orient_pil(rgb, orientation)  # turned before the resize, as streaming does
    size = stored_shape(height, width, shorter_side)[::-1]  # PIL's (width, height), as the file stores it
    size = size[::-1] if orientation >= 5 else size
    return rgb if rgb.size == size else rgb.resize(size, Image.BILINEAR)


# In memory (and in --cache-size copies), an image whose long side is more than twice its
# short side is stored as its centred part of that ratio. Every image shares one array
# padded to the largest stored height and width, so one 20 x 6,000 banner among 2,000
# small images took 864 MB for 3.5 MB of pictures; with the cap, 2,000 images of stored
# side S take at most 2,000 x 2S x 2S pixels whatever their shapes. Common photo shapes
# (4:3, 3:2, 16:9) are kept whole; a panorama trains on its middle. The centred square
# (the evaluation view, and what the SavedModel serves) lies inside the kept part.
MAX_STORED_ASPECT = 2.0


def centred_part(height: int, width: int) -> tuple[int, int]:
    """The `(height, width)` of an image's centred part of at most `MAX_STORED_ASPECT`.

    Examples:
        >>> centred_part(20, 6000), centred_part(300, 400), centred_part(900, 300)
        ((20, 40), (300, 400), (600, 300))
    """
    return min(height, int(MAX_STORED_ASPECT * width)), min(width, int(MAX_STORED_ASPECT * height))


def stored_shape(height: int, width: int, shorter_side: int) -> tuple[int, int]:
    """The `(height, width)` kssl stores an image of `(height, width)` at, for a `shorter_side`:
    its `centred_part`, the shorter side at most `shorter_side` (never enlarged), aspect kept.

    Examples:
        >>> stored_shape(375, 500, 24), stored_shape(20, 6000, 24), stored_shape(10, 12, 24)
        ((24, 32), (20, 40), (10, 12))
    """
    height, width = centred_part(height, width)
    scale = min(1.0, shorter_side / min(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def stored_copy(image, image_size: int):
    """A uint8 image tensor as kssl stores it for training at `image_size`: the TensorFlow twin
    of `stored_shape` at `stored_side(image_size)` (its centred part of at most 2:1, the shorter
    side at 1.5x the training size, never enlarged), resized bilinearly with antialiasing as
    PIL's filter does. A TFDS set in memory is stored by it, as a folder is by `open_scaled`.

    Examples:
        >>> import numpy as np
        >>> [tuple(stored_copy(np.zeros((h, w, 3), np.uint8), 16).shape) for h, w in [(375, 500), (20, 6000)]]
        [(24, 32, 3), (20, 40, 3)]
    """
    import tensorflow as tf

    from kssl.data.augment import as_uint8

    shape = tf.shape(image)[:2]
    kept = tf.minimum(shape, tf.cast(MAX_STORED_ASPECT * tf.cast(shape[::-1], tf.float64), tf.int32))
    image = tf.image.crop_to_bounding_box(image, (shape[0] - kept[0]) // 2, (shape[1] - kept[1]) // 2, kept[0], kept[1])
    kept = tf.cast(kept, tf.float64)
    scale = tf.minimum(tf.constant(1.0, tf.float64), stored_side(image_size) / tf.reduce_min(kept))
    target = tf.maximum(tf.cast(tf.round(kept * scale), tf.int32), 1)
    return tf.cond(scale < 1.0, lambda: as_uint8(tf.image.resize(image, target, antialias=True)), lambda: image)


def as_rgb(image):
    """A PIL image as 8-bit RGB, as TensorFlow's decoders give it.

    16-bit grayscale PNGs (PIL's modes `I;16*`, or `I`) keep their high byte, as
    `tf.io.decode_png` does; PIL's own `convert("RGB")` clips them at 255 (white).
    """
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        high_byte = np.asarray(image).astype(np.int64) >> 8
        image = Image.fromarray(np.clip(high_byte, 0, 255).astype(np.uint8), "L")
    return image.convert("RGB")


class Unreadable(str):
    """The message for an image file that could not be read (a result of `map_files`)."""


def map_files(function, paths, description: str, progress: bool = True, workers: int | None = None) -> list:
    """`function(path)` for every path on threads, with a progress bar; a file PIL cannot
    read gives an `Unreadable` message naming it instead of a result."""
    import concurrent.futures

    def run(path):
        try:
            return function(path)
        except Exception as error:  # noqa: BLE001 - PIL raises many types for corrupt files
            if not os.path.exists(path):
                reason = (
                    "it no longer exists; the folder changed after it was listed (--refresh-listing lists it again)"
                )
            elif os.path.getsize(path) == 0:
                reason = "it is empty (0 bytes)"
            else:
                reason = f"it cannot be decoded ({error})"
            return Unreadable(f"Cannot read image {str(path)!r}: {reason}.")

    results = []
    # PIL releases the GIL while decoding, so threads use every core.
    with concurrent.futures.ThreadPoolExecutor(workers or os.cpu_count()) as pool:
        with progress_bar(len(paths), description, progress) as bar:
            for result in pool.map(run, paths, chunksize=64):
                results.append(result)
                bar.update(1)
    return results


def check_unreadable(messages, skip_bad_images: bool, kind: str = "unreadable") -> None:
    """kssl's policy for unreadable image files: an error naming the first, or a warning.

    `messages` name the files (`Unreadable` results of `map_files`); `kind` says what is
    wrong with them in the count ("unreadable", "empty").
    """
    if not messages:
        return
    if not skip_bad_images:
        count = f" ({len(messages)} files are {kind})." if len(messages) > 1 else "."
        raise DataError(
            f"{messages[0]} Delete or replace it, or skip unreadable files with --skip-bad-images "
            f"(Python: skip_bad_images=True){count}"
        )
    logger.warning("Skipped %d %s image file(s), e.g. %s", len(messages), kind, messages[0])


def stored_side(image_size: int) -> int:
    """The shorter side of in-memory copies for training at `image_size`: 1.5x it.

    A SimCLR crop covers on average about half the image area, so about 0.7 of its
    side; at 1.5x the training size a typical crop is resized at about 1:1, big crops
    are downscaled and small ones upscaled, as from an original photo, for 2.25x the
    memory of squashed training-size squares.
    """
    return int(round(1.5 * image_size))


def decode_files(files, image_size, skip_bad_images=False, workers=None, progress=True) -> ImageSet:
    """Decodes `ImageFiles` into memory, aspect kept, shorter side at `stored_side(image_size)`.

    When a stored copy is not its original (downscaled, or cut to its centred 2:1 part),
    the evaluation views of the originals are kept beside (`ImageSet.evaluation_views`,
    computed by the same graph as the exported model's), so that what is measured is what
    is served on the original files.
    """
    side = stored_side(image_size)

    def decoded(path):
        stored = open_scaled(path, side)
        with _opened(path) as original:
            same = original.size in (stored.size, stored.size[::-1])
        return np.asarray(stored, dtype=np.uint8), same

    results = map_files(decoded, files.paths, f"Decoding {pathlib.Path(files.source).name}", progress, workers)
    check_unreadable([r for r in results if isinstance(r, Unreadable)], skip_bad_images)
    ok = np.array([not isinstance(r, Unreadable) for r in results])
    if not ok.any():
        raise DataError("None of the image files could be read.")
    images = [r[0] for r in results if not isinstance(r, Unreadable)]
    labels = None if files.labels is None else files.labels[ok]
    loaded = padded_image_set(images, labels, list(files.class_names), files.source, view_size=image_size)
    if all(r[1] for r in results if not isinstance(r, Unreadable)):
        return loaded
    return dataclasses.replace(loaded, evaluation_views=original_views(files.subset(np.flatnonzero(ok)), image_size),
                               evaluation_size=image_size)  # fmt: skip


def _opened(path):
    from PIL import Image

    return Image.open(path)


def original_views(files, image_size: int) -> np.ndarray:
    """uint8 `(N, S, S, 3)`: the evaluation view of each original file at `image_size`, as
    the exported model computes it from the file (`kssl.data.pipeline.evaluation_images`
    streamed). A file that cannot be read here is an error: it was read a moment ago."""
    from kssl.data.augment import as_uint8
    from kssl.data.pipeline import evaluation_images

    batches = [as_uint8(views * 255.0).numpy() for views in evaluation_images(files.at_size(image_size), 256)]
    views = np.concatenate(batches) if batches else np.zeros((0, image_size, image_size, 3), np.uint8)
    if len(views) != len(files):
        raise DataError(f"{len(files) - len(views)} of the files of {files.source!r} changed while they were read.")
    return views
