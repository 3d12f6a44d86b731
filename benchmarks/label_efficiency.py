"""A few labels, used well (issue 23, part 4): test accuracy at 1, 4 and 10 labels per
class for every combination of

- which images are labeled: `random` (kssl run's default: a stratified random draw) or
  `typiclust` (picked on the pretrained encoder's features, their labels then revealed);
- how the labels are used: `propagation` (label propagation over a kNN graph of the
  frozen features of every training image, no training), `full` (today's default: full
  fine-tuning), `supervised` (the best of `--modes`, chosen on validation accuracy of
  labels held out of the draw, then refit on all of them), and each `--semi` method
  (fixmatch, distill) on the chosen mode, with every training image as the unlabeled pool.

Nothing is chosen on the test split. Means and 95% Student-t intervals over `--draws`
random draws and `--seeds` TypiClust seeds; the wall time of each way of using the labels.

    python benchmarks/label_efficiency.py --pretrained RUN --data ../shared/data/flowers \\
        --per-class 1,4,10 --out flowers.json
"""

from __future__ import annotations

import argparse
import gc
import json
import pathlib
import time


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    parser.add_argument("--data", required=True, help="a folder with train/ and test/ class folders")
    parser.add_argument("--per-class", default="1,4,10", help="label budgets per class, comma-separated")
    parser.add_argument("--draws", type=int, default=5, help="draws of the random picks")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the TypiClust picks")
    parser.add_argument("--picks", default="random,typiclust", help="which picks: random, typiclust")
    parser.add_argument("--modes", default="full,linear", help="modes to choose among (first: if none validates)")
    parser.add_argument("--semi", default="fixmatch,distill", help="semi-supervised methods ('' for none)")
    parser.add_argument("--semi-option", action="append", default=[], metavar="KEY=VALUE", help="for every --semi")
    parser.add_argument("--finetune-epochs", type=float, default=100, help="passes over the labeled images")
    parser.add_argument(
        "--semi-epochs", type=float, help="passes over the labeled images for --semi (default: the same)"
    )
    parser.add_argument(
        "--semi-passes",
        type=float,
        help="--semi length in passes over the unlabeled images (default: kssl's, see kssl.defaults)",
    )
    parser.add_argument(
        "--scratch",
        action="store_true",
        help="also `scratch`: the same architecture, fresh weights, fully fine-tuned on the labels",
    )
    parser.add_argument("--ema", type=float, help="finetune(ema_momentum=) for --semi: end with averaged weights")
    parser.add_argument("--limit-test", type=int, help="score on this many test images (a seeded stratified part)")
    parser.add_argument("--image-size", type=int, help="the view size, for an encoder of any size (an ImageNet model)")
    parser.add_argument("--out", help="write every result as JSON here (rewritten after each budget)")
    args = parser.parse_args(argv)

    import numpy as np

    from kssl.data.files import list_folder
    from kssl.data.pipeline import labeled_batches
    from kssl.data.subsets import label_subset, validation_folds
    from kssl.encoders.loading import load_encoder
    from kssl.evaluation.features import extract_features, label_propagation_accuracy
    from kssl.evaluation.label_selection import picked_subset
    from kssl.evaluation.statistics import mean_interval
    from kssl.registry import split_options
    from kssl.training import copy_model, finetune

    encoder = load_encoder(args.pretrained, args.image_size)
    size = encoder.input_shape[1]
    train = list_folder(args.data, "train", progress=False).load(size, progress=False).at_size(size)
    test = list_folder(args.data, "test", progress=False).load(size, progress=False).at_size(size)
    if args.limit_test:
        test = label_subset(test, args.limit_test / len(test), seed=0)
    modes = args.modes.split(",")
    semis = [name for name in args.semi.split(",") if name]
    semi_options = split_options(args.semi_option, "--semi-option")
    train_features, test_features = extract_features(encoder, train), extract_features(encoder, test)
    test_batches = labeled_batches(test, 256)

    def accuracy(model, batches):
        return float(model.evaluate(batches, return_dict=True, verbose=0)["accuracy"])

    logs = {}

    def fit(mode, labeled, seed, start=None, **semi):
        epochs = args.semi_epochs if semi and args.semi_epochs else args.finetune_epochs
        if semi:
            semi.update(unlabeled_passes=args.semi_passes, ema_momentum=args.ema)
        start = copy_model(encoder) if start is None else start
        classifier, history = finetune(start, labeled, mode=mode, epochs=epochs, seed=seed, verbose=0, **semi)
        deployed = classifier.merged()
        if deployed is not classifier:
            deployed.compile()
        if semi:  # what the semi-supervised training logged at its end (mask rate, losses, ...)
            logs[semi["semi_supervised"]] = {key: float(values[-1]) for key, values in history.history.items()}
        return deployed

    def one_pick(labeled, seed):
        """Every way of using `labeled`: {name: (test accuracy, seconds)} and the chosen mode."""
        results = {}
        logs.clear()
        started = time.perf_counter()
        results["propagation"] = label_propagation_accuracy(
            extract_features(encoder, labeled), labeled.labels, train_features, test_features, test.labels
        )
        seconds = {"propagation": time.perf_counter() - started}
        started = time.perf_counter()
        validation, models = {}, {}
        folds = validation_folds(labeled.labels, seed)
        for mode in modes:
            scores = []
            for fit_part, held_out in folds:
                model = fit(mode, labeled.subset(fit_part), seed)
                scores.append(accuracy(model, labeled_batches(labeled.subset(held_out), 256)))
            validation[mode] = float(np.mean(scores)) if scores else None
            models[mode] = fit(mode, labeled, seed)
            results[mode] = accuracy(models[mode], test_batches)
        validated = {mode: value for mode, value in validation.items() if value is not None}
        chosen = max(validated, key=validated.get) if validated else modes[0]
        results["supervised"] = results[chosen]
        seconds["supervised"] = time.perf_counter() - started
        if args.scratch:
            import keras

            started = time.perf_counter()
            results["scratch"] = accuracy(fit("full", labeled, seed, start=keras.models.clone_model(encoder)),
                                          test_batches)  # fmt: skip
            seconds["scratch"] = time.perf_counter() - started
        for name in semis:
            started = time.perf_counter()
            student = fit(chosen, labeled, seed, semi_supervised=name, unlabeled_set=train,
                          semi_supervised_options=semi_options, teacher=models[chosen])  # fmt: skip
            results[name] = accuracy(student, test_batches)
            seconds[name] = time.perf_counter() - started
        return results, seconds, chosen, validation

    record = {"args": vars(args), "budgets": []}
    for per_class in [int(x) for x in args.per_class.split(",")]:
        budget = {"per_class": per_class, "picks": {}}
        for picks in args.picks.split(","):
            runs = []
            for seed in range(args.draws if picks == "random" else args.seeds):
                if picks == "random":
                    labeled = label_subset(train, per_class, seed=seed)
                else:
                    labeled = picked_subset(encoder, train, per_class, picks, seed=seed)
                results, seconds, chosen, validation = one_pick(labeled, seed)
                gc.collect()  # the pick's models and their traced functions (memory grew by GBs without it)
                covered = len(set(labeled.labels.tolist()))
                runs.append({"seed": seed, "results": results, "seconds": seconds, "chosen": chosen,
                             "validation": validation, "classes_covered": covered, "logs": dict(logs)})  # fmt: skip
                print(f"{per_class}/class {picks} seed {seed}: " + ", ".join(
                    f"{k} {v:.1%}" for k, v in results.items()) + f" (chose {chosen})", flush=True)  # fmt: skip
            summary = {}
            for name in runs[0]["results"]:
                mean, low, high = mean_interval([run["results"][name] for run in runs])
                summary[name] = {
                    "mean": mean,
                    "half_width": 0.0 if low is None else (high - low) / 2,
                    "seconds": float(np.mean([run["seconds"].get(name, np.nan) for run in runs])),
                }
            budget["picks"][picks] = {"runs": runs, "summary": summary}
        record["budgets"].append(budget)
        if args.out:
            pathlib.Path(args.out).write_text(json.dumps(record, indent=1))
    print("\nlabels/class  picks      " + "  ".join(f"{name:>16}" for name in record["budgets"][0]["picks"][
        args.picks.split(",")[0]]["summary"]))  # fmt: skip
    for budget in record["budgets"]:
        for picks, result in budget["picks"].items():
            cells = [f"{s['mean']:6.1%} +-{s['half_width']:5.1%}" for s in result["summary"].values()]
            print(f"{budget['per_class']:>12}  {picks:<9}  " + "  ".join(f"{cell:>16}" for cell in cells))


if __name__ == "__main__":
    main()
