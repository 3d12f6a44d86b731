"""Where does `model.fit` lose time at epoch starts?

Trains the same small SimCLR model for the same number of steps on CIFAR-10 images
(or on random images with --synthetic) three ways and reports wall time and the gap
before each epoch's first step:

- `short-epochs/kssl`: 8 epochs over kssl's index-shuffling `view_pairs` pipeline;
- `short-epochs/image-shuffle`: 8 epochs over a pipeline that shuffles decoded images
  with a full-size `shuffle` buffer (the usual `from_tensor_slices(...).shuffle(N)`);
- `one-epoch/kssl`: one epoch of the same total steps over a repeated dataset.

    python benchmarks/epoch_overhead.py [--synthetic]
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import kssl` does; see kssl.runtime.cpu
DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--steps-per-epoch", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=8)
    args = parser.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    from kssl.data.augment import ViewAugmentation
    from kssl.data.pipeline import view_pairs
    from kssl.data.sources import from_arrays, from_folder
    from kssl.encoders import resnet
    from kssl.models import SimCLR

    if args.synthetic or not DATA.is_dir():
        images = from_arrays(np.random.default_rng(0).integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8))
    else:
        images = from_folder(DATA, 32, split="train")
    batch = 128
    augmentation = ViewAugmentation(32)

    def image_shuffle_pipeline():
        def views(batch_images, step):
            seed = tf.stack([tf.constant(0, tf.int64), step])
            seeds = tf.random.experimental.stateless_split(seed, 2)
            return augmentation(batch_images, seeds[0]), augmentation(batch_images, seeds[1])

        dataset = (
            tf.data.Dataset.from_tensor_slices(images.images).shuffle(len(images)).batch(batch, drop_remainder=True)
        )
        return dataset.enumerate().map(lambda i, x: views(x, i)).prefetch(tf.data.AUTOTUNE)

    class EpochGaps(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.begin = time.perf_counter()
            self.first = True

        def on_train_batch_end(self, batch, logs=None):
            if self.first:
                gaps.append(time.perf_counter() - self.begin)
                self.first = False

    total = args.steps_per_epoch * args.epochs
    setups = {
        "short-epochs/kssl": (lambda: view_pairs(images, batch, augmentation), args.epochs, args.steps_per_epoch),
        "short-epochs/image-shuffle": (image_shuffle_pipeline, args.epochs, args.steps_per_epoch),
        "one-epoch/kssl": (lambda: view_pairs(images, batch, augmentation), 1, total),
    }
    for name, (make, epochs, steps) in setups.items():
        keras.utils.set_random_seed(0)
        model = SimCLR(resnet(18, width=0.25, image_size=32))
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        model.fit(view_pairs(images, batch, augmentation), epochs=1, steps_per_epoch=2, verbose=0)  # trace
        data = make()
        if name.startswith("short-epochs/image"):
            data = data.repeat()
        gaps = []
        start = time.perf_counter()
        model.fit(data, epochs=epochs, steps_per_epoch=steps, verbose=0, callbacks=[EpochGaps()], shuffle=False)
        seconds = time.perf_counter() - start
        print(
            f"{name:28s} {total} steps in {seconds:6.1f}s; first-step time per epoch: "
            + ", ".join(f"{gap:.1f}" for gap in gaps),
            flush=True,
        )


if __name__ == "__main__":
    main()
