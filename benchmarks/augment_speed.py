"""Throughput of kssl's batched view augmentation, and of keras_cv's crop for comparison.

    python benchmarks/augment_speed.py

Prints images per second for: the full SimCLR view transform (32 px, with and without
blur), its colour jitter alone, kssl's batched random resized crop, and
keras_cv.layers.RandomCropAndResize (the same crop, computed per image).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import kssl` does; see kssl.cpu


def images_per_second(function, inputs, batch, repeats=20):
    import tensorflow as tf

    function(inputs, tf.constant([0, 0], tf.int64))
    start = time.perf_counter()
    for index in range(repeats):
        _ = function(inputs, tf.constant([0, index], tf.int64)).numpy()
    return repeats * batch / (time.perf_counter() - start)


def main(batch=512, size=32):
    import keras_cv
    import numpy as np
    import tensorflow as tf

    from kssl.data import augment

    images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    floats = tf.cast(images, tf.float32) / 255.0
    crop_area, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    jitter = augment.ViewAugmentation(size)
    crop = augment.ViewAugmentation(
        size, flip=False, jitter_strength=0.0, grayscale_probability=0.0, blur_probability=0.0
    )
    cases = {
        "kssl ViewAugmentation (no blur)": (tf.function(augment.ViewAugmentation(size)), images),
        "kssl ViewAugmentation (blur p=0.5)": (
            tf.function(augment.ViewAugmentation(size, blur_probability=0.5)),
            images,
        ),
        "kssl colour jitter only": (
            tf.function(lambda x, s: augment._color_jitter(x, jitter.draw(s, batch))),
            floats,
        ),
        "kssl random resized crop": (tf.function(crop), images),
    }
    keras_cv_crop = keras_cv.layers.RandomCropAndResize((size, size), crop_area, ratio)
    cases["keras_cv RandomCropAndResize"] = (lambda x, s: keras_cv_crop(x), floats)
    for name, (function, inputs) in cases.items():
        repeats = 3 if name.startswith("keras_cv") else 20
        print(f"{name:38s} {images_per_second(function, inputs, batch, repeats):10.0f} images/s", flush=True)


if __name__ == "__main__":
    main()
