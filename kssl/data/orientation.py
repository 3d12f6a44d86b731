"""EXIF orientation of JPEG files: read and applied alike by PIL and inside TensorFlow graphs.

A phone stores a portrait photo as landscape pixels plus an EXIF Orientation tag
(values 1-8) that says how to turn them. kssl applies the tag to JPEG files wherever it
decodes them: in memory and in the image cache (PIL, `orient_pil`), streamed and in the
SavedModel's `predict_bytes` signature (a graph, so TF Serving applies it too:
`jpeg_orientation`, `orient`). PNG, BMP and GIF files are used as stored; TFDS
datasets as TFDS decodes them.

The graph reader walks the first four JPEG segments (up to the start of the scan), finds the
APP1 "Exif" segment and reads tag 0x0112 of its first image directory, in either byte
order; anything it cannot read (no EXIF, a broken header, a value outside 1-8) counts
as 1, "as stored". Orientation 6 (the usual portrait photo) is a quarter turn clockwise:

>>> import numpy as np
>>> stored = np.arange(6).reshape(2, 3, 1)          # 2 rows, 3 columns
>>> orient(stored, 6).numpy()[..., 0]
array([[3, 0],
       [4, 1],
       [5, 2]])
"""

from __future__ import annotations

ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 4
_EXIF_WITHIN = 4096  # bytes from the start: EXIF's APP1 follows the start marker or a JFIF APP0
_MAX_ENTRIES = 64


def pil_transpose(orientation: int):
    """The PIL transpose that applies `orientation` (None for 1 and unknown values)."""
    from PIL import Image

    return {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)


def pil_orientation(image) -> int:
    """The EXIF orientation of an open PIL image of a JPEG file (1 for other formats)."""
    if image.format != "JPEG":
        return 1
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - a broken EXIF block means "as stored", as in the graph
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient_pil(image, orientation: int):
    """`image` (PIL) turned as `orientation` says."""
    transpose = pil_transpose(orientation)
    return image if transpose is None else image.transpose(transpose)


def jpeg_orientation(contents):
    """The EXIF orientation (int32 scalar, 1-8) of one encoded image; 1 when it has none."""
    import tensorflow as tf

    # One regular expression (`\\C` is any byte) skips files without "Exif" near their
    # start, most files of most folders, at the cost of one op.
    head = tf.strings.substr(contents, 0, _EXIF_WITHIN)
    has_exif = tf.strings.regex_full_match(head, r"(?s)\C*Exif\x00\x00\C*")
    return tf.cond(has_exif, lambda: _parsed_orientation(contents), lambda: tf.constant(1, tf.int32))


def _parsed_orientation(contents):
    import tensorflow as tf

    # A few small reads (`tf.strings.substr`) rather than one array of the file's first
    # bytes: decoding 128 KiB per image into an array slowed streaming by a third.
    length = tf.cast(tf.strings.length(contents), tf.int64)

    def read(position, count):
        """`count` bytes at `position` as int64, 0 past the end (and for a negative position)."""
        start = tf.clip_by_value(position, 0, length)
        chunk = tf.io.decode_raw(tf.strings.substr(contents, start, tf.constant(count, tf.int64)), tf.uint8)
        chunk = tf.cast(chunk, tf.int64)
        chunk = tf.pad(chunk, [[0, count - tf.shape(chunk, out_type=tf.int64)[0]]])
        return tf.where(position >= 0, chunk, tf.zeros_like(chunk))

    soi = read(tf.constant(0, tf.int64), 2)
    is_jpeg = (soi[0] == 0xFF) & (soi[1] == 0xD8)
    exif = tf.constant([ord(c) for c in "Exif\0\0"], tf.int64)

    # The segments from the start marker on, unrolled (a graph loop made the SavedModel's
    # export twice as slow): EXIF's APP1 is the first, or follows a JFIF APP0.
    position, tiff = tf.constant(2, tf.int64), tf.constant(-1, tf.int64)
    walking = is_jpeg
    for _ in range(_MAX_SEGMENTS):
        segment = read(position, 10)  # marker, length (big-endian), "Exif\0\0" in APP1
        walking = walking & (segment[0] == 0xFF) & (segment[1] != 0xDA)  # up to the start of scan
        is_exif = walking & (segment[1] == 0xE1) & tf.reduce_all(segment[4:] == exif)
        tiff = tf.where(is_exif & (tiff < 0), position + 10, tiff)
        position = position + 2 + segment[2] * 256 + segment[3]
    header = read(tiff, 8)  # byte order, 42, offset of the first image directory
    little = (header[0] == 0x49) & (header[1] == 0x49)  # "II"
    big = (header[0] == 0x4D) & (header[1] == 0x4D)  # "MM"

    def unsigned_16(low_first, high_first):
        return tf.where(little, low_first + 256 * high_first, 256 * low_first + high_first)

    low, high = unsigned_16(header[4], header[5]), unsigned_16(header[6], header[7])
    directory_offset = tf.where(little, low + 65536 * high, 65536 * low + high)
    directory = read(tiff + directory_offset, 2 + 12 * _MAX_ENTRIES)
    entries = tf.reshape(directory[2:], [_MAX_ENTRIES, 12])  # tag, type, count, value
    listed = tf.range(_MAX_ENTRIES, dtype=tf.int64) < unsigned_16(directory[0], directory[1])
    is_orientation = listed & (unsigned_16(entries[:, 0], entries[:, 1]) == ORIENTATION_TAG)
    value = tf.reduce_max(tf.where(is_orientation, unsigned_16(entries[:, 8], entries[:, 9]), 0))
    known = (tiff >= 0) & (little | big) & (value >= 1) & (value <= 8)
    return tf.cast(tf.where(known, value, 1), tf.int32)


def decode_image(contents):
    """The uint8 `(H, W, 3)` pixels of one encoded image (first frame), as kssl's PIL path
    decodes them: a JPEG with libjpeg's accurate integer DCT (PIL's; TensorFlow's own
    default, the fast DCT, differs by a few levels) turned as its EXIF orientation says,
    other formats as stored."""
    import tensorflow as tf

    def jpeg():
        pixels = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
        return orient(pixels, jpeg_orientation(contents))

    def other():
        return tf.io.decode_image(contents, channels=3, expand_animations=False)

    image = tf.cond(tf.io.is_jpeg(contents), jpeg, other)
    image.set_shape([None, None, 3])
    return image


def orient(image, orientation):
    """`image` `(H, W, C)` turned as the EXIF `orientation` (1-8) says, as PIL turns it."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    # Each orientation is a transpose (5-8) then flips, with no branches (a `switch_case`
    # of eight made tracing and export slow): 6, a quarter turn clockwise, is the
    # transpose mirrored left to right. An identity transpose or no flip moves no pixels.
    orientation = tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8)
    swap = orientation >= 5
    flip_rows = tf.reduce_any(orientation == tf.constant([3, 4, 7, 8]))
    flip_columns = tf.reduce_any(orientation == tf.constant([2, 3, 6, 7]))
    image = tf.transpose(image, tf.where(swap, tf.constant([1, 0, 2]), tf.constant([0, 1, 2])))
    return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_rows, flip_columns])))


def stored_box(box, orientation, stored_height, stored_width):
    """The box `(top, left, height, width)` of the stored pixels that becomes `box` of the
    turned image: decode it (e.g. `decode_and_crop_jpeg`), then `orient` it."""
    import tensorflow as tf

    top, left, height, width = tf.unstack(box)
    h, w = stored_height, stored_width
    boxes = tf.stack(  # one row per orientation, 1-8: arithmetic, no branches
        [
            [top, left, height, width],
            [top, w - left - width, height, width],
            [h - top - height, w - left - width, height, width],
            [h - top - height, left, height, width],
            [left, top, width, height],
            [h - left - width, top, width, height],
            [h - left - width, w - top - height, width, height],
            [left, w - top - height, width, height],
        ]
    )
    return tf.gather(boxes, tf.clip_by_value(tf.cast(orientation, tf.int32), 1, 8) - 1)


def turns_sideways(orientation):
    """Whether `orientation` swaps height and width (5-8)."""
    return orientation >= 5
