"""The one evaluation view: what every measurement and every served prediction sees.

An image of any shape becomes its largest centred square, resized bilinearly to the
encoder's input size, rounded to uint8 and divided by 255. kNN, the linear probe,
few-shot episodes, fine-tuning's validation and test batches (`metrics.json`) and
every signature of the exported SavedModel (inside its graph, so TF Serving applies it
too) call this class, so the accuracy kssl reports is the accuracy of the model it
exports on the same pixels.

Why the centred square: it keeps the aspect ratio the encoder was pretrained on
(random crops of each image at its own aspect ratio), where squashing a wide photo to
a square distorts every object in it; it is also the ImageNet evaluation convention
(a centre crop). What it costs: the parts of a wide or tall image outside the square
are not seen.

Example:
>>> import numpy as np
>>> view = EvaluationView(image_size=4)
>>> wide = np.zeros((1, 8, 16, 3), "uint8"); wide[:, :, 4:12] = 255   # white centred square
>>> float(view(wide).numpy().min()), tuple(view(wide).shape)
(1.0, (1, 4, 4, 3))
"""

from __future__ import annotations

import tensorflow as tf

from kssl.data.augment import as_uint8, center_windows, crop_windows
from kssl.data.orientation import decode_image


class EvaluationView:
    """The evaluation view at `image_size`: centred square, bilinear resize, uint8 rounding.

    It serves two callers with the same operations:
    - `kssl.data.pipeline` treats it as a view transform with nothing random (`draw`,
      `windows`, `flips`, `finishing_parameters`), cropping in memory or from streamed files;
    - graphs (the SavedModel's signatures) call `crop` on a batch of same-sized images
      or `decode_and_crop` on one encoded image, then `finish`.
    """

    def __init__(self, image_size: int):
        if int(image_size) < 1:
            raise ValueError(f"image_size must be a positive number of pixels. Received: image_size={image_size}")
        self.image_size = int(image_size)

    def __repr__(self) -> str:
        return f"EvaluationView(image_size={self.image_size})"

    # The pipeline's view interface.
    def draw(self, seed, count):
        return {"none": tf.zeros([count])}

    def windows(self, parameters, heights, widths):
        return center_windows(heights, widths)

    def flips(self, parameters):
        return None  # never mirrored

    def finishing_parameters(self, parameters):
        return {}  # finishing is only the conversion to float in [0, 1]

    # Graph functions.
    def crop(self, images):
        """uint8 `(B, S, S, 3)` views of a batch `(B, H, W, 3)` of pixel values 0-255 (any dtype)."""
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        count = shape[0]
        windows = center_windows(tf.fill([count], shape[1]), tf.fill([count], shape[2]))
        return as_uint8(crop_windows(images, windows, self.image_size))

    def crop_by_gathering(self, images):
        """`crop`, computed with gathers and arithmetic instead of `tf.image.crop_and_resize`.

        LiteRT has no builtin CropAndResize (only TensorFlow's "select ops", which its
        interpreter does not run), so its exported graph crops so: the same sample points
        (the square's corners on pixel centres, as `crop_windows` places them), the same
        bilinear weights in the same order, and the same uint8 rounding, for the same views
        (tests/test_export.py compares them).
        """
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
        side = tf.minimum(height, width)
        if self.image_size > 1:
            steps = tf.range(self.image_size, dtype=tf.float32) * ((side - 1.0) / (self.image_size - 1))
        else:  # one sample: the square's centre
            steps = tf.reshape((side - 1.0) / 2.0, [1])

        def sample_points(length):  # rows (or columns) and their weights
            points = (length - side) / 2.0 + steps
            # Within the image: LiteRT's converter turns the division above into a product
            # by the reciprocal, which can put the last point a hair past the last pixel.
            low = tf.minimum(tf.floor(points), length - 1.0)
            high = tf.minimum(tf.math.ceil(points), length - 1.0)
            return tf.cast(low, tf.int32), tf.cast(high, tf.int32), points - low

        top, bottom, y_weight = sample_points(height)
        left, right, x_weight = sample_points(width)
        x_weight = x_weight[None, None, :, None]

        def across(rows):  # bilinear along each row at the sampled columns
            left_values, right_values = tf.gather(rows, left, axis=2), tf.gather(rows, right, axis=2)
            return left_values + (right_values - left_values) * x_weight

        upper, lower = across(tf.gather(images, top, axis=1)), across(tf.gather(images, bottom, axis=1))
        return as_uint8(upper + (lower - upper) * y_weight[None, :, None, None])

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
