"""Images as kssl stores them: a folder's files (PIL, `open_scaled`) and a TFDS set's tensors
(TensorFlow, `stored_copy`) follow one rule, `stored_shape` at `stored_side`."""

import numpy as np
import pytest
from PIL import Image

from kssl.data.decoding import open_scaled, stored_copy, stored_shape, stored_side


@pytest.mark.parametrize("image_size", [8, 16, 33])
def test_a_tensor_is_stored_at_the_shape_a_file_is(image_size, tmp_path):
    rng = np.random.default_rng(image_size)
    for height, width in [(12, 12), (37, 200), (200, 37), (301, 45), (9, 5), (64, 48), (25, 24)]:
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = tmp_path / f"{height}x{width}.png"
        Image.fromarray(pixels).save(path)
        expected = stored_shape(height, width, stored_side(image_size))
        from_file = np.asarray(open_scaled(path, stored_side(image_size)))
        from_tensor = stored_copy(pixels, image_size).numpy()
        assert from_file.shape[:2] == from_tensor.shape[:2] == expected, (height, width)
        if expected == (height, width):  # never enlarged, never resampled: the very pixels
            np.testing.assert_array_equal(from_tensor, pixels)


def test_a_downscaled_tensor_is_antialiased_as_pil_resizes_a_file(tmp_path):
    # Noise downscaled 4x: an antialiased filter averages ~16 pixels into each (std ~12),
    # plain bilinear sampling only 4 (std ~37, aliasing). The two ways agree pixel for pixel.
    pixels = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "noise.png")
    from_file = np.asarray(open_scaled(tmp_path / "noise.png", stored_side(16))).astype(float)
    from_tensor = stored_copy(pixels, 16).numpy().astype(float)
    assert from_tensor.shape == from_file.shape == (24, 24, 3)
    assert from_tensor.std() < 15 and np.abs(from_tensor - from_file).mean() < 0.5
