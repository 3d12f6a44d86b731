"""Encoder forward+backward speed with kssl's FusedBatchNormalization vs Keras' BatchNormalization.

Builds the same ResNet three times, differing only in the batch-norm layer: Keras'
`BatchNormalization` with `synchronized=True` (what kssl used before), the same with
`synchronized=False`, and kssl's `FusedBatchNormalization`. Timings alternate in rounds
in one process, so the machine's drift affects all three alike; read the ratios.

    python benchmarks/batch_norm_speed.py [--image-size 24] [--batch-size 512] [--rounds 6] [--precision mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # as `import kssl` does; see kssl.runtime.cpu


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=512, help="views per step")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=5, help="steps per timing")
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    keras.mixed_precision.set_global_policy(args.precision)

    from kssl.encoders import resnet
    from kssl.layers import FusedBatchNormalization

    def with_keras_batch_norm(encoder, synchronized):
        def clone(layer):
            config = layer.get_config()
            if isinstance(layer, FusedBatchNormalization):
                return keras.layers.BatchNormalization.from_config(dict(config, synchronized=synchronized))
            return layer.__class__.from_config(config)

        return keras.models.clone_model(encoder, clone_function=clone)

    def make(kind):
        encoder = resnet(18, width=args.width, image_size=args.image_size, stem="cifar")
        if kind != "kssl FusedBatchNormalization":
            encoder = with_keras_batch_norm(encoder, synchronized="synchronized=True" in kind)
        return encoder

    views = tf.random.uniform((args.batch_size, args.image_size, args.image_size, 3))
    steps = {}
    for kind in (
        "keras BatchNormalization(synchronized=True)",
        "keras BatchNormalization(synchronized=False)",
        "kssl FusedBatchNormalization",
    ):
        encoder, optimizer = make(kind), keras.optimizers.SGD(0.0)

        @tf.function
        def step(x, encoder=encoder, optimizer=optimizer):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.cast(encoder(x, training=True), tf.float32) ** 2)
            optimizer.apply(tape.gradient(loss, encoder.trainable_variables), encoder.trainable_variables)

        step(views)  # trace and warm up
        step(views)
        steps[kind] = step

    speeds = {kind: [] for kind in steps}
    for _ in range(args.rounds):
        for kind, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step(views)
            speeds[kind].append(args.steps * args.batch_size / (time.perf_counter() - start))
    baseline = statistics.median(speeds["keras BatchNormalization(synchronized=True)"])
    print(f"| batch norm | views/s (median of {args.rounds}) | ratio |")
    print("| --- | --- | --- |")
    for kind, values in speeds.items():
        median = statistics.median(values)
        print(f"| {kind} | {median:.0f} | {median / baseline:.2f} |")


if __name__ == "__main__":
    main()
