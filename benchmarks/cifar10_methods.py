"""Every pretraining method on CIFAR-10 (or any labeled folder, --data) for the same
number of epochs or the same wall clock, then kNN and linear probe.

For each method (default: all of `kssl.methods.METHODS`; a variant is `NAME:KEY=VALUE`,
e.g. `simclr:local_crops=4` for multi-crop, or `dino:recipe.learning_rate=0.03` for a
field of its recipe) it runs what a user runs,
`kssl.pretrain(train, encoder, method=...)` with the method's recipe (`kssl.training.recipes`)
and views (`view_augmentations`), on the folder's train split without labels, for
--epochs epochs (or --budget minutes each) at --batch-size, with a `KNNMonitor` (the
curve is kept); then it scores the frozen encoder on the test split:
kNN (k=200, cosine, exp(sim/0.1) votes) and a linear probe (logistic regression on all
50k train features), as `cifar10_budget.py` does. It also scores each architecture
randomly initialised (the floor every method must clear), and records views/s, wall
time, parameters and the CPU.

Convolutional methods train the quarter-width ResNet-18 (`build_encoder`, as the command:
the CIFAR stem at 32 px; 512 x 0.25 = 128 features); MAE trains
`kssl.encoders.vit(--vit-depth, --vit-width)` with 4 px patches. Photos (--data
../shared/data/flowers --image-size 96) are read as the command reads them.

With --lightly-python (a Python with torch, torchvision and lightly; see
`lightly_reference.py`), it then runs lightly's SimCLR recipe for the wall time kssl's
SimCLR pretraining took, in the same session, and scores its features the same way.

Results are written after every method (--out), so an interrupted run keeps what it did:

    python benchmarks/cifar10_methods.py --epochs 20 --out benchmarks/results/methods.json
    python benchmarks/cifar10_methods.py --methods simclr,byol --epochs 1 --train-images 5000
    python benchmarks/cifar10_methods.py --data ../shared/data/flowers --image-size 96 \
        --methods simclr,simclr:local_crops=4,dino --budget 12
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import kssl  # noqa: E402,F401  (first: it turns on oneDNN, as for users; see kssl.runtime.cpu)

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "cifar10"


def parse_args(argv=None):
    from kssl.methods import METHODS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated, NAME or NAME:KEY=VALUE[:KEY=VALUE] (default: every method)")  # fmt: skip
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--epochs", type=float, default=20.0)
    parser.add_argument("--budget", type=float, default=None, help="minutes of pretraining each (overrides --epochs)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--width", type=float, default=0.25, help="ResNet-18 width multiplier")
    parser.add_argument("--vit-depth", type=int, default=4)
    parser.add_argument("--vit-width", type=float, default=1 / 6, help="ViT width over ViT-Base's 768 (1/6: 128)")
    parser.add_argument("--train-images", type=int, default=None, help="pretrain on the first N (default: all)")
    parser.add_argument("--precision", default=None, choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--no-linear", action="store_true", help="skip the logistic-regression probe")
    parser.add_argument("--lightly-python", default=None, help="a Python with lightly, to run its SimCLR recipe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser.parse_args(argv)


def recipe_with(recipe, assignments):
    """`recipe` with fields changed by `KEY=VALUE` strings (`learning_rate=0.03`), typed as the field's default."""
    changes = {}
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        default = getattr(recipe, key)  # an AttributeError names a field that does not exist
        changes[key] = (value.lower() == "true") if isinstance(default, bool) else type(default)(value)
    return dataclasses.replace(recipe, **changes)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from kssl.data.sources import from_folder
    from kssl.encoders import build_encoder, vit
    from kssl.errors import DivergedError
    from kssl.evaluation.features import evaluate_encoder
    from kssl.evaluation.monitor import KNNMonitor
    from kssl.methods import check_method, method_spec
    from kssl.outputs.atomic import atomic_file
    from kssl.runtime.cpu import cpu_model, onednn_enabled
    from kssl.runtime.precision import set_precision
    from kssl.training import pretrain

    if not pathlib.Path(args.data).is_dir():
        sys.exit(f"No labeled folder with train/ and test/ at {args.data}; pass --data.")
    variants = {}
    for variant in args.methods.split(","):
        name, *options = variant.split(":")
        fields = [o[len("recipe.") :] for o in options if o.startswith("recipe.")]
        recipe = recipe_with(method_spec(name).recipe, fields)
        options = [o for o in options if not o.startswith("recipe.")]
        variants[variant] = (check_method(name), method_spec(name).parse_options(options, "--methods", name), recipe)
    precision = set_precision(args.precision)
    size = args.image_size
    train = from_folder(args.data, image_size=size, split="train")
    test = from_folder(args.data, image_size=size, split="test")
    pretraining = train if args.train_images is None else train.subset(range(args.train_images))

    def make_encoder(method):
        if method_spec(method).encoder.startswith("vit"):
            return vit(args.vit_depth, width=args.vit_width, image_size=size, patch_size=4)
        return build_encoder("resnet18", image_size=size, width=args.width)

    def save(results):
        print(json.dumps(results, indent=2), flush=True)
        if args.out:
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(args.out, suffix=".json") as temporary:
                pathlib.Path(temporary).write_text(json.dumps(results, indent=2))

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}",
        "onednn": onednn_enabled(),
        "precision": precision,
        "args": vars(args),
        "pretraining_images": len(pretraining),
        "methods": {},
        "random_init": {},
    }
    for variant, (method, options, recipe) in variants.items():
        keras.utils.set_random_seed(args.seed)
        encoder = make_encoder(method)
        monitor = KNNMonitor(train, every=250, seed=args.seed)
        start = time.perf_counter()
        try:
            model, history = pretrain(
                pretraining,
                encoder,
                epochs=None if args.budget else args.epochs,
                budget_minutes=args.budget,
                batch_size=args.batch_size,
                method=method,
                method_options=options,
                recipe=recipe,
                seed=args.seed,
                callbacks=[monitor],
                verbose=2,
            )
        except DivergedError as error:  # a recipe too aggressive for this method: recorded, the others go on
            results["methods"][variant] = {"recipe": dataclasses.asdict(recipe), "diverged": str(error)}
            save(results)
            continue
        seconds = time.perf_counter() - start
        steps = int(model.optimizer.iterations.numpy())
        scores = evaluate_encoder(model.encoder, train, test, k=min(200, len(train)), linear=not args.no_linear)
        views = len(model.view_augmentations(size, **options))
        results["methods"][variant] = {
            "class": type(model).__name__,
            "encoder": model.encoder.name,
            "encoder_parameters": model.encoder.count_params(),
            "trained_parameters": int(sum(keras.ops.size(v) for v in model.optimized_variables)),
            "steps": steps,
            "epochs": steps * args.batch_size / len(pretraining),
            "fit_seconds": seconds,
            "views_per_image": views,
            "recipe": dataclasses.asdict(recipe),
            "images_per_second": args.batch_size * steps / seconds,
            "views_per_second": views * args.batch_size * steps / seconds,
            "monitor_seconds": monitor.seconds,
            "final_logs": {name: float(values[-1]) for name, values in history.history.items()},
            "knn_monitor": monitor.record(),
            **scores,
        }
        architecture = model.encoder.name
        if architecture not in results["random_init"]:
            keras.utils.set_random_seed(args.seed)
            results["random_init"][architecture] = evaluate_encoder(
                make_encoder(method), train, test, k=min(200, len(train)), linear=not args.no_linear
            )
        floor = results["random_init"][architecture]["knn_accuracy"]
        results["methods"][variant]["knn_above_random"] = results["methods"][variant]["knn_accuracy"] - floor
        save(results)

    if args.lightly_python and "simclr" in results["methods"]:
        minutes = results["methods"]["simclr"]["fit_seconds"] / 60
        with tempfile.TemporaryDirectory() as folder:
            features = pathlib.Path(folder) / "lightly.npz"
            command = [args.lightly_python, str(HERE / "lightly_reference.py"), "--data", args.data]
            command += ["--budget", f"{minutes:.3f}", "--batch-size", str(args.batch_size), "--features", str(features)]
            subprocess.run(command, check=True)
            evaluation = subprocess.run(
                [sys.executable, str(HERE / "evaluate_features.py"), str(features)],
                check=True,
                capture_output=True,
                text=True,
            )
        results["lightly_simclr_same_wall_clock"] = {"minutes": minutes, "output": evaluation.stdout[-2000:]}
        save(results)
    return results


if __name__ == "__main__":
    main()
