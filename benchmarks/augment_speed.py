"""Throughput of kssl's batched view augmentation, and of keras_cv's crop for comparison.

    python benchmarks/augment_speed.py

Prints images per second for: the full SimCLR view transform (32 px, with and without
blur), its colour jitter alone, kssl's batched random resized crop, and
keras_cv.layers.RandomCropAndResize (the same crop, computed per image).

    python benchmarks/augment_speed.py --branches

compares, at 32, 96 and 224 px, the transform computing each random branch only for the
images that take it with the same transform computing every branch for every image.

    python benchmarks/augment_speed.py --colour

compares, at 32, 96 and 224 px, kssl's colour step (jitter and grayscale as one affine
map per image) with the HSV round trip it replaced, alternating, and reports how far
apart their views are.

    python benchmarks/augment_speed.py --device-path

measures, at 32, 96 and 224 px, the views per second that the host's `tf.data`
pipeline (`kssl.data.view_pairs` on an in-memory set stored at 1.5x the view size)
delivers when it finishes the views itself (kssl's CPU path) and when it only crops,
leaving uint8 crops for the accelerator to finish in the train step (the GPU path,
`kssl.data.device`), alternating the two, and the bytes of a batch each way.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import kssl` does; see kssl.runtime.cpu


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
        "kssl colour jitter and grayscale only": (
            tf.function(lambda x, s: colour_map(x, jitter.draw(s, batch))),
            floats,
        ),
        "kssl random resized crop": (tf.function(crop), images),
    }
    keras_cv_crop = keras_cv.layers.RandomCropAndResize((size, size), crop_area, ratio)
    cases["keras_cv RandomCropAndResize"] = (lambda x, s: keras_cv_crop(x), floats)
    for name, (function, inputs) in cases.items():
        repeats = 3 if name.startswith("keras_cv") else 20
        print(f"{name:38s} {images_per_second(function, inputs, batch, repeats):10.0f} images/s", flush=True)


def colour_map(views, parameters):
    """kssl's colour step: one affine map per image (`kssl.data.augment.apply_colour`)."""
    from kssl.data import augment

    return augment.apply_colour(views, parameters)


def hsv_colour_jitter(views, parameters):
    """The colour jitter kssl used until 2026-12-05, as torchvision's and SimCLR's code do
    it: each factor clipped in turn, the hue shifted in an RGB-HSV round trip; then the
    grayscale. The reference that `--colour` times kssl's affine map against."""
    import tensorflow as tf

    from kssl.data import augment

    def gray(x):
        return tf.reduce_sum(x * tf.constant(augment._GRAY_WEIGHTS), axis=-1, keepdims=True)

    def factor(name):
        return parameters[name][:, None, None, None]

    x = tf.clip_by_value(views * factor("brightness"), 0.0, 1.0)
    mean = tf.reduce_mean(gray(x), axis=[1, 2, 3], keepdims=True)
    x = tf.clip_by_value((x - mean) * factor("contrast") + mean, 0.0, 1.0)
    x = tf.clip_by_value((x - gray(x)) * factor("saturation") + gray(x), 0.0, 1.0)
    hsv = tf.image.rgb_to_hsv(x)
    hue = tf.math.floormod(hsv[..., 0] + parameters["hue"][:, None, None], 1.0)
    x = tf.image.hsv_to_rgb(tf.stack([hue, hsv[..., 1], hsv[..., 2]], axis=-1))
    x = tf.where(parameters["jitter"][:, None, None, None], x, views)
    return tf.where(parameters["grayscale"][:, None, None, None], tf.repeat(gray(x), 3, axis=-1), x)


def colour(sizes=(32, 96, 224), batch=256, rounds=5):
    """Views/s of the colour step (jitter p=0.8, grayscale p=0.2) as kssl's affine map vs the
    HSV round trip with a clip after every factor, alternated; and how far apart the views are."""
    import numpy as np
    import tensorflow as tf

    from kssl.data import augment

    for size in sizes:
        views = tf.constant(np.random.default_rng(0).random((batch, size, size, 3)).astype("float32"))
        parameters = augment.ViewAugmentation(size).draw(tf.constant([0, 1], tf.int64), batch)
        contenders = {"affine map (kssl)": tf.function(colour_map), "HSV round trip": tf.function(hsv_colour_jitter)}
        difference = np.abs(
            contenders["affine map (kssl)"](views, parameters) - contenders["HSV round trip"](views, parameters)
        )
        times = {name: [] for name in contenders}
        for round_ in range(rounds):
            for name, function in contenders.items() if round_ % 2 == 0 else reversed(contenders.items()):
                start = time.perf_counter()
                for _ in range(3):
                    function(views, parameters).numpy()
                times[name].append((time.perf_counter() - start) / 3)
        rates = {name: batch / float(np.median(t)) for name, t in times.items()}
        for name, rate in rates.items():
            print(f"{size:4d} px  {name:20s} {rate:9.0f} views/s", flush=True)
        print(
            f"{size:4d} px  speed-up {rates['affine map (kssl)'] / rates['HSV round trip']:.1f}x; "
            f"|difference| mean {difference.mean():.4f}, 99th percentile {np.percentile(difference, 99):.3f}",
            flush=True,
        )


def branches(sizes=(32, 96, 224), batch=256, rounds=5):
    """Views/s of the full transform with each random branch computed only for its images
    (gather, transform, scatter) vs for every image then selected (`tf.where`), alternated."""
    import numpy as np
    import tensorflow as tf

    from kssl.data import augment

    for size in sizes:
        images = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        view = augment.ViewAugmentation(size)  # SimCLR's: jitter p=0.8, grayscale p=0.2, blur p=0.5 from 64 px

        def transform(all_branches, view=view, size=size):
            @tf.function
            def run(x, seed):
                parameters = view.draw(seed, batch)
                heights, widths = tf.fill([batch], size), tf.fill([batch], size)
                crops = augment.crop_windows(x, view.windows(parameters, heights, widths), size) / 255.0
                return view.finish(crops, parameters, compute_all_branches=all_branches)

            return run

        contenders = {"gather/scatter (kssl)": transform(False), "every branch, then tf.where": transform(True)}
        times = {name: [] for name in contenders}
        for function in contenders.values():
            images_per_second(function, images, batch, 1)  # trace and warm up
        for round_ in range(rounds):
            for name, function in contenders.items() if round_ % 2 == 0 else reversed(contenders.items()):
                times[name].append(batch / images_per_second(function, images, batch, 3))
        rates = {name: batch / float(np.median(t)) for name, t in times.items()}
        speedup = rates["gather/scatter (kssl)"] / rates["every branch, then tf.where"]
        for name, rate in rates.items():
            print(f"{size:4d} px  {name:30s} {rate:9.0f} views/s", flush=True)
        print(f"{size:4d} px  speed-up {speedup:.2f}x", flush=True)


def device_path(sizes=(32, 96, 224), batch=256, batches=12, rounds=3):
    """Host views/s of `view_pairs` finishing views on the host vs leaving them to the device."""
    import numpy as np

    from kssl.data.pipeline import view_pairs
    from kssl.data.sources import from_arrays

    for size in sizes:
        stored = int(size * 1.5)
        images = from_arrays(np.random.default_rng(0).integers(0, 256, (1024, stored, stored, 3), dtype=np.uint8))
        images = images.at_size(size)

        def rate(on_device, images=images):
            iterator = iter(view_pairs(images, batch, seed=0, on_device=on_device))
            next(iterator)  # warm up
            start = time.perf_counter()
            for _ in range(batches):
                element = next(iterator)
            seconds = time.perf_counter() - start
            nbytes = sum(t.numpy().nbytes for t in tf_flatten(element))
            return 2 * batch * batches / seconds, nbytes

        rates = {"host finishes (CPU path)": [], "host crops, device finishes": []}
        for round_ in range(rounds):
            order = list(rates) if round_ % 2 == 0 else list(reversed(rates))
            for name in order:
                views_per_second, nbytes = rate(name.startswith("host crops"))
                rates[name].append(views_per_second)
                print(
                    f"{size:4d} px  {name:28s} {views_per_second:9.0f} views/s  {nbytes / 2**20:6.1f} MB/batch",
                    flush=True,
                )
        medians = {name: float(np.median(r)) for name, r in rates.items()}
        ratio = medians["host crops, device finishes"] / medians["host finishes (CPU path)"]
        print(f"{size:4d} px  host speed-up when the device finishes: {ratio:.2f}x (medians)", flush=True)


def tf_flatten(element):
    import tensorflow as tf

    return tf.nest.flatten(element)


if __name__ == "__main__":
    import sys

    if "--branches" in sys.argv:
        branches()
    elif "--colour" in sys.argv:
        colour()
    elif "--device-path" in sys.argv:
        device_path()
    else:
        main()
