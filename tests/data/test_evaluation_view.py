"""The evaluation view: the centred square resampled with a triangle filter as wide as the
reduction, against a NumPy re-derivation and PIL's own antialiased bilinear resize."""

import numpy as np
import pytest
from PIL import Image

from kssl.data.evaluation_view import EvaluationView


def numpy_view(image, size):
    """The view written out from its definition, in float64: output pixel i of an axis is
    centred at start + (i + 0.5) * side / size and takes the square's pixels j (centres at
    j + 0.5) with weight max(0, 1 - |j + 0.5 - centre| / max(side / size, 1)), normalised."""
    height, width = image.shape[:2]
    side = min(height, width)

    def weights(length):
        start, scale = (length - side) / 2, side / size
        centres = start + (np.arange(size) + 0.5) * scale
        positions = np.arange(length) + 0.5
        w = np.maximum(0, 1 - np.abs(positions[None] - centres[:, None]) / max(scale, 1))
        w *= (positions >= start) & (positions < start + side)
        return w / w.sum(1, keepdims=True)

    return np.einsum("ih,hwc,jw->ijc", weights(height), image.astype(np.float64), weights(width))


@pytest.mark.parametrize("size", [1, 7, 16])
@pytest.mark.parametrize("shape", [(5, 9), (9, 5), (16, 16), (17, 40), (33, 32), (100, 61)])
def test_the_view_is_its_definition(rng, size, shape):
    images = rng.integers(0, 256, (2, *shape, 3)).astype("float32")
    view = EvaluationView(size)
    heights, widths = np.full(2, shape[0]), np.full(2, shape[1])
    resampled = view.resample(images, heights, widths).numpy()
    for image, got in zip(images, resampled):
        np.testing.assert_allclose(got, numpy_view(image, size), atol=2e-3)
    rounded = view.crop(images).numpy()
    assert np.abs(rounded.astype(float) - resampled).max() <= 0.501


def test_a_padded_batch_views_each_image_as_if_alone(rng):
    view = EvaluationView(8)
    small, large = rng.integers(0, 256, (20, 30, 3)), rng.integers(0, 256, (40, 36, 3))
    canvas = np.zeros((2, 40, 36, 3), "uint8")
    canvas[0, :20, :30], canvas[1] = small, large
    padded = view.resample(canvas, np.array([20, 40]), np.array([30, 36])).numpy()
    np.testing.assert_allclose(padded[0], numpy_view(small, 8), atol=2e-3)
    np.testing.assert_allclose(padded[1], numpy_view(large, 8), atol=2e-3)


@pytest.mark.parametrize("shape", [(64, 64), (96, 160), (200, 120)])
def test_downscaling_is_pils_antialiased_bilinear_resize_of_the_square(rng, shape):
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    side = min(shape)
    top, left = (shape[0] - side) // 2, (shape[1] - side) // 2  # whole pixels: even margins here
    square = Image.fromarray(image[top : top + side, left : left + side])
    expected = np.asarray(square.resize((16, 16), Image.BILINEAR), dtype=int)
    got = EvaluationView(16).crop(image[None]).numpy()[0].astype(int)
    assert np.abs(got - expected).max() <= 1  # PIL computes in fixed point


def test_a_fine_pattern_does_not_alias():
    # Stripes one pixel wide at 8x the view: a bilinear sample reads every 8th column (all
    # black or all white); the filter sees their mean, as a photo's downscaled copy would.
    stripes = np.zeros((128, 128, 3), "uint8")
    stripes[:, ::2] = 255
    view = EvaluationView(16).crop(stripes[None]).numpy()[0]
    assert np.abs(view.astype(int) - 127.5).max() <= 8
