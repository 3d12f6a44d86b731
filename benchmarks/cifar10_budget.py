"""CIFAR-10 pretraining on a wall-clock budget, then kNN and linear-probe evaluation.

Pretrains SimCLR on ../shared/data/cifar10/train without labels for --budget minutes,
then reports on the test split: kNN accuracy (k=200, cosine, exp(sim/0.1) votes),
linear-probe accuracy (scikit-learn logistic regression on standardised frozen features
of all 50k train images), views per second, epochs done, and the same numbers for the
same encoder randomly initialised. Every 100 training steps it also times a few
forward+backward steps of the encoder alone on a batch of the same size (on a throwaway
copy; this time is not charged to the budget), so views/s is reported as a ratio to the
encoder's own throughput measured minutes apart at most, which the machine's drift
cannot distort.

    python benchmarks/cifar10_budget.py --budget 15
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import kssl  # noqa: E402,F401  (first: it turns on oneDNN, as for users; see kssl.runtime.cpu)

DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--budget", type=float, default=15.0, help="pretraining minutes")
    parser.add_argument(
        "--epochs", type=float, default=None, help="pretrain this many epochs instead of --budget (equal steps)"
    )
    parser.add_argument("--depth", type=int, default=18)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument(
        "--stage-widths", type=int, nargs=4, default=None, help="the 4 stages' widths, overriding --width"
    )
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.2)
    parser.add_argument("--head-hidden", type=int, default=None, help="projection head width (default: features)")
    parser.add_argument("--head-depth", type=int, default=2)
    parser.add_argument(
        "--weight-decay", type=float, default=None, help="default: the recipe's (kssl.training.recipes)"
    )
    parser.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="default: the recipe's")
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="peak rate per 256 images (default: the recipe's)"
    )
    parser.add_argument("--train-size", type=int, default=None, help="pretraining crop size (default: image size)")
    parser.add_argument("--crop-min", type=float, default=0.08)
    parser.add_argument("--jitter", type=float, default=0.5)
    parser.add_argument(
        "--precision", default=None, choices=["float32", "mixed_bfloat16"], help="default: kssl's choice for this CPU"
    )
    parser.add_argument("--no-linear", action="store_true", help="skip the logistic-regression probe")
    parser.add_argument("--no-random-baseline", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--save-encoder", default=None, help="save the pretrained encoder (32 px input) as .keras here")
    return parser.parse_args(argv)


def make_interleaved_timing(keras, encoder_step, views, budget, every=100, repeats=3, settle=5):
    """A callback timing `repeats` encoder-only steps after every `every` training steps.

    Each probe starts with one untimed encoder step.

    Each window's training-step time is measured from `settle` steps after the previous
    probe (so prefetch buffers refilled during the probe do not flatter it) to the next
    probe. The probes run with the budget paused, so training still gets its full budget.
    """

    class InterleavedTiming(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.windows = []  # (seconds per training step, seconds per encoder step)
            self.countdown = settle + 1  # the first step traces the graph
            self.window_start = None
            self.window_steps = 0

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            if self.countdown > 0:
                self.countdown -= 1
                if self.countdown == 0:
                    self.window_start, self.window_steps = now, 0
                return
            self.window_steps += 1
            if self.window_steps < every:
                return
            training_step = (now - self.window_start) / self.window_steps
            with budget.paused() if budget is not None else contextlib.nullcontext():
                # One untimed step first: meanwhile tf.data tops up its prefetch buffer,
                # which would otherwise compete with the timed steps for the two cores.
                encoder_step(views)
                start = time.perf_counter()
                for _ in range(repeats):
                    encoder_step(views)
                probe_seconds = (time.perf_counter() - start) / repeats
            self.windows.append((training_step, probe_seconds))
            self.countdown = settle

    return InterleavedTiming()


def main(argv=None):
    args = parse_args(argv)
    import keras
    import numpy as np
    import tensorflow as tf

    from kssl.data.augment import ViewAugmentation
    from kssl.data.sources import from_folder
    from kssl.encoders import resnet
    from kssl.evaluation.features import evaluate_encoder
    from kssl.layers import ProjectionHead
    from kssl.methods import recipe_for
    from kssl.runtime.cpu import cpu_model, onednn_enabled
    from kssl.runtime.precision import set_precision
    from kssl.training import pretrain
    from kssl.training.callbacks import TimeBudget

    if not pathlib.Path(args.data).is_dir():
        sys.exit(f"CIFAR-10 folders not found at {args.data}; pass --data.")
    keras.utils.set_random_seed(args.seed)
    args.precision = set_precision(args.precision)
    start = time.perf_counter()
    train = from_folder(args.data, image_size=32, split="train")
    test = from_folder(args.data, image_size=32, split="test")
    load_seconds = time.perf_counter() - start
    print(f"loaded {len(train)} train / {len(test)} test images in {load_seconds:.1f}s", flush=True)

    size = args.train_size or 32

    def make_encoder(image_size=size):
        stage_widths = tuple(args.stage_widths) if args.stage_widths else None
        return resnet(args.depth, width=args.width, image_size=image_size, stem="cifar", stage_widths=stage_widths)

    # What a user runs: kssl.pretrain with the recipe of kssl.training.recipes, changed only where asked.
    recipe = recipe_for("simclr")
    changes = {"optimizer": args.optimizer, "learning_rate": args.learning_rate, "weight_decay": args.weight_decay}
    recipe = dataclasses.replace(recipe, **{k: v for k, v in changes.items() if v is not None})
    encoder = make_encoder()
    feature_dim = encoder.output_shape[-1]
    head = ProjectionHead(hidden_dim=args.head_hidden or feature_dim, output_dim=128, depth=args.head_depth)

    # The encoder's own forward+backward speed on 2B views, on a throwaway copy.
    probe_encoder = make_encoder()
    probe_optimizer = keras.optimizers.SGD(0.0)
    views = tf.random.uniform((2 * args.batch_size, size, size, 3))

    @tf.function
    def encoder_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(probe_encoder(x, training=True), tf.float32) ** 2)
        probe_optimizer.apply(tape.gradient(loss, probe_encoder.trainable_variables), probe_encoder.trainable_variables)

    encoder_step(views)  # trace and warm up
    encoder_step(views)

    augmentation = ViewAugmentation(size, crop_area=(args.crop_min, 1.0), jitter_strength=args.jitter)
    budget = None if args.epochs else TimeBudget(args.budget)
    timing = make_interleaved_timing(keras, encoder_step, views, budget)
    steps_per_epoch = len(train) // args.batch_size
    start = time.perf_counter()
    model, history = pretrain(
        train,
        encoder,
        budget_minutes=budget,
        epochs=args.epochs,
        batch_size=args.batch_size,
        temperature=args.temperature,
        augmentation=augmentation,
        seed=args.seed,
        callbacks=[timing],
        verbose=2,
        projection_head=head,
        recipe=recipe,
    )
    fit_seconds = time.perf_counter() - start
    steps = int(model.optimizer.iterations.numpy())
    views_per_step = 2 * args.batch_size
    if not timing.windows:  # fewer than ~100 steps: no interleaved probe ran
        timing.windows.append((fit_seconds / max(steps, 1), float("nan")))
    training_seconds = np.array([w[0] for w in timing.windows])
    encoder_seconds = np.array([w[1] for w in timing.windows])
    views_per_second = views_per_step / float(np.mean(training_seconds))
    encoder_views_per_second = views_per_step / float(np.mean(encoder_seconds))
    window_ratios = encoder_seconds / training_seconds
    print(
        f"pretrained {steps} steps ({steps / steps_per_epoch:.2f} epochs) in {fit_seconds:.0f}s: "
        f"{views_per_second:.0f} views/s; encoder alone {encoder_views_per_second:.0f} views/s; "
        f"ratio median {np.median(window_ratios):.3f} over {len(window_ratios)} windows "
        f"(range {np.min(window_ratios):.3f}-{np.max(window_ratios):.3f})",
        flush=True,
    )

    # Evaluate at the stored image size; the encoder is fully convolutional.
    eval_encoder = make_encoder(image_size=32)
    eval_encoder.set_weights(encoder.get_weights())
    if args.save_encoder:
        from kssl.outputs.atomic import atomic_file

        with atomic_file(args.save_encoder, suffix=".keras") as temporary:
            eval_encoder.save(temporary)
    start = time.perf_counter()
    pretrained = evaluate_encoder(eval_encoder, train, test, linear=not args.no_linear)
    eval_seconds = time.perf_counter() - start
    print(f"pretrained: {pretrained} ({eval_seconds:.0f}s)", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}",
        "onednn": onednn_enabled(),
        "args": vars(args),
        "recipe": dataclasses.asdict(recipe),
        "steps": steps,
        "epochs": steps / steps_per_epoch,
        "fit_seconds": fit_seconds,
        "views_per_second": views_per_second,
        "encoder_views_per_second": encoder_views_per_second,
        "pipeline_ratio": float(np.median(window_ratios)),
        "pipeline_ratio_windows": [round(float(r), 4) for r in window_ratios],
        "final_loss": float(history.history["loss"][-1]),
        "final_contrastive_accuracy": float(history.history["contrastive_accuracy"][-1]),
        "pretrained": pretrained,
    }
    if not args.no_random_baseline:
        keras.utils.set_random_seed(args.seed)
        results["random_init"] = evaluate_encoder(make_encoder(image_size=32), train, test, linear=not args.no_linear)
        print(f"random init: {results['random_init']}", flush=True)
    print(json.dumps(results, indent=2))
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
