"""CIFAR-10 pretraining on a wall-clock budget, then kNN and linear-probe evaluation.

Pretrains SimCLR on ../shared/data/cifar10/train without labels for --budget minutes,
then reports on the test split: kNN accuracy (k=200, cosine, exp(sim/0.1) votes),
linear-probe accuracy (scikit-learn logistic regression on standardised frozen features
of all 50k train images), views per second, epochs done, and the same numbers for the
same encoder randomly initialised. Before pretraining it measures, in the same process,
the encoder's own forward+backward throughput on a batch of the same size, so views/s
can be reported as a ratio that does not depend on the machine's drift.

    python benchmarks/cifar10_budget.py --budget 15
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--budget", type=float, default=15.0, help="pretraining minutes")
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    parser.add_argument("--learning-rate", type=float, default=None, help="peak rate (default per optimizer)")
    parser.add_argument("--train-size", type=int, default=None, help="pretraining crop size (default: image size)")
    parser.add_argument("--crop-min", type=float, default=0.08)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--no-linear", action="store_true", help="skip the logistic-regression probe")
    parser.add_argument("--no-random-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def throughput(step, batch, steps=8):
    step(batch)  # trace and warm up
    step(batch)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    return steps / (time.perf_counter() - start)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from kssl.callbacks import TimeBudget
    from kssl.data.augment import ViewAugmentation
    from kssl.data.pipeline import view_pairs
    from kssl.data.sources import from_folder
    from kssl.encoders import resnet
    from kssl.evaluation import evaluate_encoder
    from kssl.models import SimCLR

    if not pathlib.Path(args.data).is_dir():
        sys.exit(f"CIFAR-10 folders not found at {args.data}; pass --data.")
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy(args.precision)
    start = time.perf_counter()
    train = from_folder(args.data, image_size=32, split="train")
    test = from_folder(args.data, image_size=32, split="test")
    load_seconds = time.perf_counter() - start
    print(f"loaded {len(train)} train / {len(test)} test images in {load_seconds:.1f}s", flush=True)

    size = args.train_size or 32

    def make_encoder():
        return resnet(args.depth, width=args.width, image_size=size, stem="cifar")

    encoder = make_encoder()
    model = SimCLR(encoder, temperature=args.temperature)
    peak = args.learning_rate or (
        0.3 * args.batch_size / 256 if args.optimizer == "sgd" else 1e-3 * args.batch_size / 256
    )
    if args.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(peak, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        optimizer = keras.optimizers.AdamW(peak, weight_decay=1e-4)
    optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer)

    # The encoder's own forward+backward speed on 2B views, on a throwaway copy.
    probe_encoder = make_encoder()
    probe_optimizer = keras.optimizers.SGD(0.0)
    views = tf.random.uniform((2 * args.batch_size, size, size, 3))

    @tf.function
    def encoder_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(probe_encoder(x, training=True), tf.float32) ** 2)
        probe_optimizer.apply(tape.gradient(loss, probe_encoder.trainable_variables), probe_encoder.trainable_variables)

    encoder_views_per_second = throughput(encoder_step, views) * 2 * args.batch_size
    print(f"encoder forward+backward alone: {encoder_views_per_second:.0f} views/s", flush=True)

    augmentation = ViewAugmentation(size, crop_area=(args.crop_min, 1.0), jitter_strength=args.jitter)
    pairs = view_pairs(train, batch_size=args.batch_size, augmentation=augmentation, seed=args.seed)
    budget = TimeBudget(args.budget, peak_learning_rate=peak)
    steps_per_epoch = len(train) // args.batch_size
    start = time.perf_counter()
    history = model.fit(pairs, epochs=1, steps_per_epoch=10**7, callbacks=[budget], verbose=2, shuffle=False)
    fit_seconds = time.perf_counter() - start
    steps = budget.steps
    # Steady state: after the first step, which traces and compiles the graph.
    views_per_second = 2 * args.batch_size * budget.steady_steps_per_second()
    print(
        f"pretrained {steps} steps ({steps / steps_per_epoch:.2f} epochs) in {fit_seconds:.0f}s: "
        f"{views_per_second:.0f} views/s",
        flush=True,
    )

    # Evaluate at the stored image size; the encoder is fully convolutional.
    eval_encoder = resnet(args.depth, width=args.width, image_size=32, stem="cifar")
    eval_encoder.set_weights(encoder.get_weights())
    start = time.perf_counter()
    pretrained = evaluate_encoder(eval_encoder, train, test, linear=not args.no_linear)
    eval_seconds = time.perf_counter() - start
    print(f"pretrained: {pretrained} ({eval_seconds:.0f}s)", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}",
        "args": vars(args),
        "steps": steps,
        "epochs": steps / steps_per_epoch,
        "fit_seconds": fit_seconds,
        "views_per_second": views_per_second,
        "encoder_views_per_second": encoder_views_per_second,
        "pipeline_ratio": views_per_second / encoder_views_per_second,
        "final_loss": float(history.history["loss"][-1]),
        "final_contrastive_accuracy": float(history.history["contrastive_accuracy"][-1]),
        "pretrained": pretrained,
    }
    if not args.no_random_baseline:
        keras.utils.set_random_seed(args.seed)
        results["random_init"] = evaluate_encoder(
            resnet(args.depth, width=args.width, image_size=32, stem="cifar"), train, test, linear=not args.no_linear
        )
        print(f"random init: {results['random_init']}", flush=True)
    print(json.dumps(results, indent=2))
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
