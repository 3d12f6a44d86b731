"""Adapting a pretrained start to a data set: which recipe keeps (and adds to) what it knows.

Starts from a `.keras` image model (the ImageNet EfficientNet-Lite0 of
`../shared/data/pretrained/`), measures its frozen features (kNN k=200 and a linear probe on
the test split), then for each recipe variant continues it with a self-supervised method
for `--budget` minutes and measures again. Variants (`kssl.training.recipes`):

- `from-scratch`: the method's own recipe, as for random weights (4 local crops at 96 px);
- `pretrained-start`: `kssl.training.recipes.for_pretrained_start` (the encoder at 0.1 of the heads'
  rate, batch norm frozen, 10% warm-up, no local crops);
- `bn-training`: the same with the encoder's batch norm training;
- `rate-0.03`, `rate-0.3`: the same with the encoder at 0.03 or 0.3 of the heads' rate;
- `equal-rate`: the same with one rate for all (encoder_rate 1).

Each result is appended to `--out` (JSON lines) as soon as it is measured:

    python benchmarks/pretrained_start.py --data ../shared/data/flowers --budget 5 \\
        --variants start,from-scratch,pretrained-start,bn-training --out /tmp/adapt-flowers.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import platform
import subprocess
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import kssl  # noqa: E402,F401  (first: it turns on oneDNN, as for users; see kssl.runtime.cpu)

HERE = pathlib.Path(__file__).resolve().parent
START = HERE.parents[1] / "shared" / "data" / "pretrained" / "efficientnet_lite0_imagenet.keras"


def variant_recipe(name: str, method: str):
    """The recipe a variant names (None for `start`: no training)."""
    from kssl.methods import recipe_for
    from kssl.training.recipes import for_pretrained_start

    base = recipe_for(method)
    adapted = for_pretrained_start(base)
    variants = {
        "start": None,
        "from-scratch": base,
        "pretrained-start": adapted,
        "bn-training": dataclasses.replace(adapted, frozen_batch_norm=False),
        "rate-0.01": dataclasses.replace(adapted, encoder_rate=0.01),
        "rate-0.03": dataclasses.replace(adapted, encoder_rate=0.03),
        "rate-0.3": dataclasses.replace(adapted, encoder_rate=0.3),
        "equal-rate": dataclasses.replace(adapted, encoder_rate=1.0),
    }
    if name not in variants:
        raise SystemExit(f"unknown variant {name!r}: choose from {', '.join(variants)}")
    return variants[name]


def cpu_model() -> str:
    try:
        output = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor()
    lines = dict(line.split(":", 1) for line in output.splitlines() if ":" in line)
    model = lines.get("Model name", "?").strip()
    return f"{model} (family {lines.get('CPU family', '?').strip()} model {lines.get('Model', '?').strip()})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with train/ and test/")
    parser.add_argument("--start", default=str(START), help="the pretrained .keras model")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--budget", type=float, default=5.0, help="pretraining minutes per variant")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--variants", default="start,from-scratch,pretrained-start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON lines, one per variant")
    args = parser.parse_args(argv)

    from kssl.app.data import load_train_test
    from kssl.encoders import build_encoder
    from kssl.evaluation.features import evaluate_encoder
    from kssl.training import pretrain

    notes = {}
    train, test = load_train_test(args.data, args.image_size, args.seed, False, None, None, False, notes)
    for name in args.variants.split(","):
        recipe = variant_recipe(name, args.method)
        encoder = build_encoder(args.start, args.image_size)
        started, steps = time.perf_counter(), 0
        if recipe is not None:
            model, _ = pretrain(train, encoder, budget_minutes=args.budget, batch_size=args.batch_size,
                                method=args.method, recipe=recipe, seed=args.seed, verbose=0)  # fmt: skip
            encoder, steps = model.encoder, int(model.optimizer.iterations.numpy())
        seconds = time.perf_counter() - started
        result = evaluate_encoder(encoder, train, test, k=min(200, len(train)))
        row = {
            "data": args.data,
            "variant": name,
            "method": args.method,
            "budget_minutes": args.budget if recipe is not None else 0,
            "steps": steps,
            "pretraining_seconds": round(seconds, 1),
            "knn_accuracy": result["knn_accuracy"],
            "linear_accuracy": result["linear_accuracy"],
            "recipe": None if recipe is None else dataclasses.asdict(recipe),
            "cpu": cpu_model(),
            "date": time.strftime("%Y-%m-%d"),
        }
        print(json.dumps({k: v for k, v in row.items() if k != "recipe"}), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
