"""Distillation from a frozen teacher at equal wall clock: which loss, views and recipe.

Distils a `.keras` teacher (the ImageNet EfficientNet-Lite0 of `../shared/data/pretrained/`)
into a student (a quarter-width ResNet-18) for `--budget` minutes per variant, then measures
the student's frozen features (kNN k=200 and a linear probe on the test split). Variants:

- `first`: kssl's first distillation: pooled features, both views, lightly's CIFAR SGD;
- `pooled`: pooled features, one view, `kssl.training.recipes.DISTILLATION` (LARS at 1.5);
- `default`: the method's defaults (feature maps, one view, LARS at 1.5);
- `default-clip`: the same with gradients clipped at norm 1 (LightlyTrain's; one device
  only: Keras clips each replica's share before the sum);
- `two-views`, `two-views-b128`: feature maps of both views, at batch 256 and 128;
- `simclr`: the same student pretrained with SimCLR (its own recipe), the baseline.

Each result is appended to `--out` (JSON lines) as soon as it is measured:

    python benchmarks/distillation_recipe.py --data ../shared/data/flowers --budget 5 \\
        --variants first,default,simclr --out /tmp/distill-flowers.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from pretrained_start import START, cpu_model  # noqa: E402  (this folder, on sys.path when run)

import kssl  # noqa: E402,F401  (first: it turns on oneDNN, as for users; see kssl.runtime.cpu)
from kssl.training.recipes import PretrainingRecipe  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ClippedRecipe(PretrainingRecipe):
    """A recipe whose optimizer clips the gradients' norm at 1 (LightlyTrain's). One device
    only: under a `tf.distribute` strategy Keras clips each replica's share before the sum."""

    def build_optimizer(self, batch_size, total_steps=None):
        optimizer = super().build_optimizer(batch_size, total_steps)
        optimizer.clipnorm = 1.0
        return optimizer


# name: (method, method options, recipe name in kssl.training.recipes or None for the method's, batch, clip)
VARIANTS = {
    "first": ("distillation", {"feature_map": False, "views": 2}, "LIGHTLY_CIFAR", 256, False),
    "pooled": ("distillation", {"feature_map": False}, None, 256, False),
    "default": ("distillation", {}, None, 256, False),
    "default-clip": ("distillation", {}, None, 256, True),
    "two-views": ("distillation", {"views": 2}, None, 256, False),
    "two-views-b128": ("distillation", {"views": 2}, None, 128, False),
    "simclr": ("simclr", {}, None, 256, False),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with train/ and test/")
    parser.add_argument("--teacher", default=str(START), help="the teacher, a .keras image model")
    parser.add_argument("--student", default="resnet18")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--budget", type=float, default=5.0, help="pretraining minutes per variant")
    parser.add_argument("--variants", default="first,default,simclr")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON lines, one per variant")
    args = parser.parse_args(argv)

    from kssl.app.data import load_train_test
    from kssl.encoders import build_encoder
    from kssl.evaluation.features import evaluate_encoder
    from kssl.methods import recipe_for
    from kssl.training import pretrain, recipes

    train, test = load_train_test(args.data, args.image_size, args.seed, False, None, None, False, {})
    for name in args.variants.split(","):
        if name not in VARIANTS:
            raise SystemExit(f"unknown variant {name!r}: choose from {', '.join(VARIANTS)}")
        method, options, recipe_name, batch_size, clip = VARIANTS[name]
        recipe = getattr(recipes, recipe_name) if recipe_name else recipe_for(method)
        if clip:
            recipe = ClippedRecipe(**dataclasses.asdict(recipe))
        teacher = build_encoder(args.teacher, args.image_size) if method == "distillation" else None
        student = build_encoder(args.student, args.image_size, args.width)
        started = time.perf_counter()
        batch_size = min(batch_size, len(train))
        model, _ = pretrain(train, student, budget_minutes=args.budget, batch_size=batch_size, method=method,
                            method_options=options, recipe=recipe, teacher=teacher, seed=args.seed,
                            verbose=0)  # fmt: skip
        seconds = time.perf_counter() - started
        result = evaluate_encoder(model.encoder, train, test, k=min(200, len(train)))
        row = {
            "data": args.data,
            "variant": name,
            "method": method,
            "options": options,
            "batch_size": batch_size,
            "budget_minutes": args.budget,
            "steps": int(model.optimizer.iterations.numpy()),
            "pretraining_seconds": round(seconds, 1),
            "knn_accuracy": result["knn_accuracy"],
            "linear_accuracy": result["linear_accuracy"],
            "cpu": cpu_model(),
            "date": time.strftime("%Y-%m-%d"),
        }
        print(json.dumps(row), flush=True)
        with open(args.out, "a") as handle:
            handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
