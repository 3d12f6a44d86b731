"""EXIF orientation: every path that decodes a JPEG turns it as PIL's `exif_transpose` does,
and 16-bit PNGs give the same pixels in memory as streamed."""

import io
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from kssl.data.decoding import open_scaled
from kssl.data.evaluation_view import EvaluationView
from kssl.data.files import list_folder
from kssl.data.image_cache import cached_copies
from kssl.data.orientation import jpeg_orientation, orient
from kssl.data.pipeline import evaluation_images, view_pairs
from kssl.data.sources import from_folder


def smooth_pixels(height, width, seed=0):
    """An asymmetric image whose JPEG stays close to its pixels (no half-level ties)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    pixels = np.stack([y * 200 / height, x * 200 / width, (x * y) % 97 + 50], -1) + rng.integers(
        0, 20, (height, width, 3)
    )
    return np.clip(pixels, 0, 255).astype(np.uint8)


def big_endian_exif(orientation):
    """EXIF bytes in Motorola order ("MM"), written by hand: PIL writes Intel order."""
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    return b"Exif\0\0" + b"MM\0\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)


def jpeg_bytes(pixels, orientation, big_endian=False, other_tags=True):
    exif = Image.Exif()
    if other_tags:
        exif[0x010F] = "kssl test camera"  # Make: the orientation is not the first entry
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    data = big_endian_exif(orientation) if big_endian else exif.tobytes()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95, exif=data)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_decoder_turns_a_jpeg_as_pil_exif_transpose_does(tmp_path, orientation):
    pixels = smooth_pixels(24, 40, seed=orientation)
    contents = jpeg_bytes(pixels, orientation, big_endian=orientation % 2 == 0)
    path = tmp_path / "photo.jpg"
    path.write_bytes(contents)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert expected.shape[:2] == ((40, 24) if orientation >= 5 else (24, 40))
    assert int(jpeg_orientation(tf.constant(contents))) == orientation
    np.testing.assert_array_equal(np.asarray(open_scaled(path, 100)), expected)  # in memory and cached
    decoded = tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE")
    np.testing.assert_array_equal(orient(decoded, jpeg_orientation(contents)).numpy(), expected)
    view = EvaluationView(8)  # the SavedModel's predict_bytes
    np.testing.assert_array_equal(view.decode_and_crop(tf.constant(contents)).numpy(), view.crop(expected[None])[0])


def test_an_image_without_a_readable_orientation_is_used_as_stored(tmp_path):
    pixels = smooth_pixels(8, 12)
    png, plain_jpeg = io.BytesIO(), io.BytesIO()
    Image.fromarray(pixels).save(png, format="PNG")
    Image.fromarray(pixels).save(plain_jpeg, format="JPEG")
    broken = bytearray(jpeg_bytes(pixels, 6))
    start = broken.index(b"Exif\0\0") + 6
    broken[start : start + 2] = b"XX"  # neither "II" nor "MM"
    for contents in (b"", b"\xff\xd8", b"not an image", png.getvalue(), plain_jpeg.getvalue(), bytes(broken)):
        assert int(jpeg_orientation(tf.constant(contents))) == 1
    (tmp_path / "broken.jpg").write_bytes(bytes(broken))
    assert np.asarray(open_scaled(tmp_path / "broken.jpg", 100)).shape == (8, 12, 3)  # PIL alike
    assert int(jpeg_orientation(jpeg_bytes(pixels, 9))) == 1  # outside 1-8
    assert int(jpeg_orientation(jpeg_bytes(pixels, 3, other_tags=False))) == 3


def test_a_folder_of_turned_photos_streams_and_caches_the_views_it_holds_in_memory(tmp_path):
    root = tmp_path / "photos"
    for orientation in range(1, 9):
        folder = root / f"c{orientation % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{orientation}.jpg").write_bytes(jpeg_bytes(smooth_pixels(12, 20, orientation), orientation))
    memory = from_folder(root, image_size=8, progress=False)  # stored side 12: the originals
    assert sorted(map(tuple, memory.shapes.tolist())).count((20, 12)) == 4  # the four sideways ones
    files = list_folder(root, progress=False).at_size(8)
    streamed = list(view_pairs(files, 4, seed=1, with_labels=True, repeat=False))
    in_memory = list(view_pairs(memory, 4, seed=1, with_labels=True, repeat=False))
    for ((a1, a2), _), ((b1, b2), _) in zip(streamed, in_memory):
        for a, b in ((a1, b1), (a2, b2)):
            assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1 / 255 + 1e-5  # uint8 rounding of a tie
    evaluated = np.concatenate(list(evaluation_images(files, 8)))
    np.testing.assert_allclose(evaluated, np.concatenate(list(evaluation_images(memory, 8))), atol=1e-5)
    copies = cached_copies(list_folder(root, progress=False), 12, progress=False)
    assert sorted(Image.open(p).size[::-1] for p in copies.paths).count((20, 12)) == 4


def png_bytes(pixels, color_type, depth):
    """A PNG of `pixels` at `depth` bits, written by hand: PIL writes neither 16-bit RGB nor
    2- and 4-bit grayscale."""
    height, width = pixels.shape[:2]
    if depth < 8:
        per_byte = 8 // depth
        padded = np.zeros((height, -(-width // per_byte) * per_byte), np.uint8)
        padded[:, :width] = pixels
        groups = padded.reshape(height, -1, per_byte)
        shifts = depth * np.arange(per_byte - 1, -1, -1)
        rows = (groups.astype(np.uint16) << shifts).sum(-1).astype(np.uint8)
    else:
        rows = pixels.reshape(height, -1).astype(">u2" if depth == 16 else "u1")
    raw = b"".join(b"\0" + row.tobytes() for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("color_type", "depth", "channels"),
    [(0, 1, 1), (0, 2, 1), (0, 4, 1), (0, 8, 1), (0, 16, 1), (2, 8, 3), (2, 16, 3), (4, 16, 2), (6, 16, 4)],
)
def test_png_of_every_bit_depth_gives_the_same_pixels_in_memory_as_streamed(tmp_path, color_type, depth, channels):
    rng = np.random.default_rng(depth)
    shape = (9, 11) if channels == 1 else (9, 11, channels)
    pixels = rng.integers(0, 2**depth, shape)
    path = tmp_path / "image.png"
    path.write_bytes(png_bytes(pixels, color_type, depth))
    in_memory = np.asarray(open_scaled(path, 100))
    streamed = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False).numpy()
    np.testing.assert_array_equal(in_memory, streamed)
    if depth == 16:  # the high byte of each sample, not white
        gray = pixels if channels == 1 else pixels[..., 0]
        np.testing.assert_array_equal(in_memory[..., 0], gray >> 8)
