"""The one evaluation view: what every measurement and every served prediction sees.

An image of any shape becomes its largest centred square, resampled to the encoder's
input size with an antialiasing (triangle) filter as wide as the reduction, rounded to
uint8 and divided by 255: one function of the original image. kNN, the linear probe,
few-shot episodes, fine-tuning's validation and test batches (`metrics.json`) and every
exported file (the SavedModel's signatures, ONNX, LiteRT: inside their graphs, so TF
Serving applies it too) compute it with the same operations, so the accuracy kssl
reports is the accuracy of the model it exports on the same pixels.

Why the centred square: it keeps the aspect ratio the encoder was pretrained on
(random crops of each image at its own aspect ratio), where squashing a wide photo to
a square distorts every object in it; it is also the ImageNet evaluation convention
(a centre crop). What it costs: the parts of a wide or tall image outside the square
are not seen.

Why the filter: a 400 x 533 photo viewed at 96 px sampled bilinearly reads one pixel in
four and aliases; each output pixel here averages the input pixels under it (the
triangle filter of PIL's and TensorFlow's antialiased bilinear resize), so a large
original and its downscaled copy give nearly the same view. The resampling is two
matrix products (rows, then columns) of weights computed in the graph: builtin
operations of TensorFlow, ONNX and LiteRT alike, for any input size.

Examples:
    >>> import numpy as np
    >>> view = EvaluationView(image_size=4)
    >>> wide = np.zeros((1, 8, 16, 3), "uint8"); wide[:, :, 4:12] = 255   # white centred square
    >>> float(view(wide).numpy().min()), tuple(view(wide).shape)
    (1.0, (1, 4, 4, 3))
"""

from __future__ import annotations

import tensorflow as tf

from kssl.data.augment import as_uint8
from kssl.data.orientation import decode_image


def square_weights(lengths, sides, canvas, size: int):
    """`(B, size, canvas)` float32 weights that resample the centred `sides` (B,) pixels of
    axes `lengths` (B,) pixels long (in a canvas of `canvas` pixels: padding gets no weight)
    to `size` pixels: output pixel `i`, centred at `start + (i + 0.5) * side / size`, takes
    the pixels of the square under a triangle as wide as `max(side / size, 1)` on each side,
    normalised to sum to 1 (bilinear interpolation when enlarging).

    Examples:
        >>> import numpy as np
        >>> square_weights(np.array([6.0]), np.array([6.0]), 6, 2).numpy()[0].round(4).tolist()  # 6 px to 2
        [[0.25, 0.375, 0.25, 0.125, 0.0, 0.0], [0.0, 0.0, 0.125, 0.25, 0.375, 0.25]]
        >>> square_weights(np.array([2.0]), np.array([2.0]), 2, 4).numpy()[0].tolist()  # enlarged: bilinear
        [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    lengths = tf.cast(lengths, tf.float32)[:, None, None]
    sides = tf.cast(sides, tf.float32)[:, None, None]
    scale = sides / size
    start = (lengths - sides) / 2.0
    centres = start + (tf.range(size, dtype=tf.float32)[None, :, None] + 0.5) * scale
    positions = tf.range(tf.cast(canvas, tf.float32), dtype=tf.float32)[None, None, :] + 0.5
    weights = tf.nn.relu(1.0 - tf.abs(positions - centres) / tf.maximum(scale, 1.0))
    inside = tf.logical_and(positions >= start, positions < start + sides)
    weights = weights * tf.cast(inside, tf.float32)
    return weights / tf.reduce_sum(weights, axis=2, keepdims=True)


def resampled_squares(images, heights, widths, size: int):
    """float32 `(B, size, size, 3)`: the centred square of each image (image `i` in the
    top-left `heights[i]` x `widths[i]` of the batch `images`, pixel values 0-255, any
    dtype) resampled to `size` by `square_weights`, unrounded."""
    images = tf.cast(images, tf.float32)
    shape = tf.shape(images)
    count, canvas_height, canvas_width = shape[0], shape[1], shape[2]
    sides = tf.minimum(heights, widths)
    rows = square_weights(heights, sides, canvas_height, size)  # (B, S, H)
    columns = square_weights(widths, sides, canvas_width, size)  # (B, S, W)
    # Rows, then columns, as batched matrix products (no einsum: LiteRT and ONNX take these as they are).
    by_rows = tf.linalg.matmul(rows, tf.reshape(images, [count, canvas_height, canvas_width * 3]))  # (B, S, W*3)
    by_rows = tf.reshape(tf.transpose(tf.reshape(by_rows, [count, size, canvas_width, 3]), [0, 2, 1, 3]),
                         [count, canvas_width, size * 3])  # fmt: skip
    both = tf.reshape(tf.linalg.matmul(columns, by_rows), [count, size, size, 3])  # (B, column, row, 3)
    return tf.transpose(both, [0, 2, 1, 3])


class EvaluationView:
    """The evaluation view at `image_size`: centred square, antialiased resampling, uint8 rounding.

    It serves two callers with the same operations:
    - `kssl.data.pipeline` treats it as a view transform with nothing random (`draw`,
      `finishing_parameters`) whose crops are `resample`d, in memory or from streamed files
      (the whole file decoded, as served);
    - graphs (the exported files' signatures) call `crop` on a batch of same-sized images
      or `decode_and_crop` on one encoded image, then `finish`.
    """

    def __init__(self, image_size: int):
        if int(image_size) < 1:
            raise ValueError(f"image_size must be a positive number of pixels. Received: image_size={image_size}")
        self.image_size = int(image_size)

    def __repr__(self) -> str:
        return f"EvaluationView(image_size={self.image_size})"

    # The pipeline's view interface: nothing is drawn, nothing is finished but the conversion.
    def draw(self, seed, count):
        return {"none": tf.zeros([count])}

    def finishing_parameters(self, parameters):
        return {}

    def resample(self, images, heights, widths):
        """float32 `(B, S, S, 3)` unrounded views of images of `heights` x `widths` in the top-left of `images`."""
        return resampled_squares(images, heights, widths, self.image_size)

    # Graph functions.
    def crop(self, images, shapes=None):
        """uint8 `(B, S, S, 3)` views of a batch `(B, H, W, 3)` of pixel values 0-255 (any
        dtype); `shapes` `(B, 2)`: each image's height and width in the top-left of a padded
        batch (default: all of the batch's)."""
        images = tf.convert_to_tensor(images)
        if shapes is None:
            shape = tf.shape(images)
            heights, widths = tf.fill(shape[:1], shape[1]), tf.fill(shape[:1], shape[2])
        else:
            heights, widths = shapes[:, 0], shapes[:, 1]
        return as_uint8(self.resample(images, heights, widths))

    def decode_and_crop(self, encoded):
        """The uint8 `(S, S, 3)` view of one encoded JPEG/PNG/BMP/GIF (first frame), a
        JPEG decoded as in memory and turned as its EXIF orientation says
        (`kssl.data.orientation.decode_image`)."""
        return self.crop(decode_image(encoded)[None])[0]

    @staticmethod
    def finish(views):
        """uint8 views -> float32 in [0, 1], the encoders' input."""
        return tf.cast(views, tf.float32) / 255.0

    def __call__(self, images):
        """float32 `(B, S, S, 3)` views in [0, 1] of a batch of pixel values 0-255."""
        return self.finish(self.crop(images))
