"""Transfer on CIFAR-10: every fine-tuning strategy, few-shot episodes, and robustness.

With an encoder kssl pretrained on the CIFAR-10 train images (labels unused; --encoder
a `.keras` file or run folder, else SimCLR is pretrained here for --pretrain-epochs and
saved to --save-encoder), it fine-tunes with `kssl.finetune` on labeled subsets of the
train split and scores on the 10,000 test images:

- accuracy at 10 labels per class, 1% and 10% of the labels for linear, LoRA ranks 4
  and 8, adapters, partial, full, full + L2-SP, gradual unfreezing (with discriminative
  learning rates, --stage-decay), and full fine-tuning of the same architecture from
  scratch; the trainable parameters of each;
- 5-way 1-shot and 5-shot accuracy on the frozen test features, 600 episodes, 95% CI;
- clean and PGD-10 (epsilon 8/255) accuracy after standard and after PGD adversarial
  fine-tuning (--attack-steps in training) at the largest label budget.

Fine-tuning runs for --epochs passes over a subset, with at least --min-steps steps,
so the smallest subsets still get a useful number of updates. Results are written
after every run (--out):

    python benchmarks/cifar10_transfer.py --pretrain-epochs 10 --save-encoder benchmarks/results/simclr10.keras \\
        --out benchmarks/results/transfer.json
    python benchmarks/cifar10_transfer.py --encoder benchmarks/results/simclr10.keras --strategies linear,lora4
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import kssl  # noqa: E402,F401  (first: it turns on oneDNN, as for users; see kssl.runtime.cpu)

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "cifar10"

# name: (mode, mode options, other finetune() arguments, from the pretrained encoder?)
STRATEGIES = {
    "linear": ("linear", {}, {}, True),
    "lora4": ("lora", {"rank": 4}, {}, True),
    "lora8": ("lora", {"rank": 8}, {}, True),
    "adapter": ("adapter", {}, {}, True),
    "partial": ("partial", {}, {}, True),
    "full": ("full", {}, {}, True),
    "full+l2sp": ("full", {}, {"l2_sp": 0.01}, True),
    "gradual": ("gradual", {}, {"stage_decay": None}, True),
    "scratch": ("full", {}, {}, False),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--encoder", default=None, help="a pretrained encoder (.keras or a run folder)")
    parser.add_argument("--pretrain-epochs", type=float, default=10.0)
    parser.add_argument("--save-encoder", default=None, help="save the encoder pretrained here")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--labels", default="10,0.01,0.1", help="per class (int) or fractions, comma-separated")
    parser.add_argument("--epochs", type=float, default=30.0, help="fine-tuning passes over a subset")
    parser.add_argument("--max-steps", type=int, default=800, help="at most this many fine-tuning steps")
    parser.add_argument("--min-steps", type=int, default=300, help="at least this many fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--learning-rate", type=float, default=None, help="Adam's peak rate (default: each mode's, kssl.finetune's)"
    )
    parser.add_argument("--stage-decay", type=float, default=0.5, help="gradual's discriminative learning rates")
    parser.add_argument("--epsilon", type=float, default=8 / 255)
    parser.add_argument("--attack-steps", type=int, default=3, help="PGD steps in adversarial fine-tuning")
    parser.add_argument("--no-adversarial", action="store_true")
    parser.add_argument("--precision", default=None, choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    from kssl.data.pipeline import labeled_batches
    from kssl.data.sources import from_folder
    from kssl.data.subsets import label_subset
    from kssl.encoders import resnet
    from kssl.encoders.loading import load_encoder
    from kssl.evaluation.features import extract_features
    from kssl.evaluation.few_shot import few_shot_accuracy
    from kssl.finetuning.adversarial import AdversarialTraining, evaluate_robustness
    from kssl.outputs.atomic import atomic_file
    from kssl.runtime.cpu import cpu_model
    from kssl.runtime.precision import set_precision
    from kssl.training import copy_model, finetune, pretrain

    if not pathlib.Path(args.data).is_dir():
        sys.exit(f"CIFAR-10 folders not found at {args.data}; pass --data.")
    precision = set_precision(args.precision)
    train = from_folder(args.data, image_size=32, split="train")
    test = from_folder(args.data, image_size=32, split="test")
    test_batches = labeled_batches(test, 500)
    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} CPUs, TF {tf.__version__}, Keras {keras.__version__}",
        "precision": precision,
        "args": vars(args),
    }

    def save():
        print(json.dumps({k: v for k, v in results.items() if k != "args"}, indent=1), flush=True)
        if args.out:
            pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(args.out, suffix=".json") as temporary:
                pathlib.Path(temporary).write_text(json.dumps(results, indent=2))

    if args.encoder:
        encoder = load_encoder(args.encoder)
        results["encoder"] = {"path": args.encoder}
    else:
        keras.utils.set_random_seed(args.seed)
        start = time.perf_counter()
        model, _ = pretrain(
            train, resnet(18, width=0.25, image_size=32, stem="cifar"), epochs=args.pretrain_epochs, verbose=2
        )
        encoder = model.encoder
        results["encoder"] = {
            "method": "simclr",
            "epochs": args.pretrain_epochs,
            "seconds": time.perf_counter() - start,
        }
        if args.save_encoder:
            encoder.save(args.save_encoder)
    results["encoder"]["name"] = encoder.name

    features = extract_features(encoder, test)
    results["few_shot"] = [
        few_shot_accuracy(features, test.labels, 5, shots, classifier=classifier, seed=args.seed)
        for shots in (1, 5)
        for classifier in ("nearest_mean", "logistic")
    ]
    save()

    def run(labeled, name, adversarial=None, mode_override=None):
        mode, options, extra, pretrained = STRATEGIES[name]
        extra = dict(extra)
        if "stage_decay" in extra:
            extra["stage_decay"] = args.stage_decay
        keras.utils.set_random_seed(args.seed)
        start_encoder = copy_model(encoder) if pretrained else keras.models.clone_model(encoder)
        steps = min(args.max_steps, max(args.min_steps, round(args.epochs * len(labeled) / args.batch_size)))
        started = time.perf_counter()
        classifier, _ = finetune(
            start_encoder,
            labeled,
            mode=mode,
            mode_options=options,
            epochs=steps * args.batch_size / len(labeled),
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            adversarial=adversarial,
            seed=args.seed,
            verbose=0,
            **extra,
        )
        deployed = classifier.merged()
        if deployed is not classifier:
            deployed.compile()
        counts = classifier.parameter_counts()
        entry = {
            "accuracy": float(deployed.evaluate(test_batches, return_dict=True, verbose=0)["accuracy"]),
            "steps": steps,
            "seconds": time.perf_counter() - started,
            "trainable_parameters": counts["trainable"],
            "trainable_share": counts["share"],
        }
        return entry, deployed

    budgets = [int(x) if float(x).is_integer() and float(x) >= 1 else float(x) for x in args.labels.split(",")]
    results["modes"] = {}
    last_full = None
    for budget in budgets:
        labeled = label_subset(train, budget, seed=args.seed)
        key = f"{len(labeled)} labels"
        results["modes"][key] = {}
        for name in args.strategies.split(","):
            entry, deployed = run(labeled, name)
            results["modes"][key][name] = entry
            print(f"{key} {name}: {entry['accuracy']:.1%} ({entry['seconds']:.0f}s)", flush=True)
            if name == "full":
                last_full = (labeled, deployed)
            save()

    if not args.no_adversarial and last_full is not None:
        labeled, standard = last_full
        attack = {"epsilon": args.epsilon, "steps": 10, "seed": args.seed}
        results["robustness"] = {
            "labeled_images": len(labeled),
            "standard": evaluate_robustness(standard, test, **attack),
        }
        save()
        training = AdversarialTraining("pgd", args.epsilon, args.attack_steps, seed=args.seed)
        entry, robust = run(labeled, "full", adversarial=training)
        results["robustness"]["adversarial"] = {
            **evaluate_robustness(robust, test, **attack),
            "training_attack": f"PGD-{args.attack_steps}",
            "seconds": entry["seconds"],
        }
        save()
    return results


if __name__ == "__main__":
    main()
