"""Which images to label: test accuracy of a linear probe trained on the images each
selection method picks, on a pretrained encoder's frozen features (issue 23, part 4).

For each budget (labels per class times the classes), the picks of `typiclust` and
`kcenter` (several seeds) and of uniform `random` picks (what a person without labels
can do; several draws) are labeled with their true labels, and a logistic regression on
their L2-normalised features (`kssl.evaluation.features.linear_probe_accuracy`) is scored on the
test split. `stratified` is `kssl run`'s default draw, which knows every label: a bound,
not a choice a person can make. Mean and 95% interval (Student's t) over seeds/draws.

    python benchmarks/label_selection.py --pretrained RUN --data ../shared/data/flowers --per-class 1,4,10
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time


def interval(values):
    """Mean and half-width of the 95% Student-t interval (0 for a single value):
    `kssl.evaluation.statistics.mean_interval`, the report's own."""
    from kssl.evaluation.statistics import mean_interval

    mean, low, high = mean_interval(values)
    return mean, 0.0 if low is None else (high - low) / 2


def stratified(labels, per_class, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    return np.concatenate(
        [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in np.unique(labels)]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    parser.add_argument("--data", required=True, help="a folder with train/ and test/ class folders")
    parser.add_argument("--per-class", default="1,4,10", help="label budgets per class, comma-separated")
    parser.add_argument("--draws", type=int, default=5, help="draws of the random picks")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of typiclust and kcenter")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)

    import numpy as np

    from kssl.data.files import list_folder
    from kssl.encoders.loading import load_encoder
    from kssl.evaluation.features import extract_features, linear_probe_accuracy
    from kssl.evaluation.label_selection import METHODS

    encoder = load_encoder(args.pretrained)
    size = encoder.input_shape[1]
    train = list_folder(args.data, "train", progress=False).load(size, progress=False)
    test = list_folder(args.data, "test", progress=False).load(size, progress=False)
    features = {}
    for name, images in (("train", train), ("test", test)):
        values = extract_features(encoder, images)
        features[name] = values / np.linalg.norm(values, axis=1, keepdims=True)
    classes = train.num_classes
    results = {"pretrained": str(args.pretrained), "data": str(args.data), "train_images": len(train), "rows": []}

    def score(picks):
        picked = train.labels[picks]
        if len(np.unique(picked)) < 2:  # one class: the probe can only predict it
            return float(np.mean(test.labels == picked[0]))
        return linear_probe_accuracy(features["train"][picks], picked, features["test"], test.labels)

    print(f"{'per class':>9}  {'method':<10}  {'accuracy':>16}  {'classes covered':>15}  {'s per pick set':>14}")
    for per_class in [int(x) for x in args.per_class.split(",")]:
        budget = per_class * classes
        repeats = {"random": args.draws, "typiclust": args.seeds, "kcenter": args.seeds, "stratified": args.draws}
        for method, count in repeats.items():
            accuracies, covered, seconds = [], [], []
            for seed in range(count):
                started = time.perf_counter()
                if method == "stratified":
                    picks = stratified(train.labels, per_class, seed)
                else:
                    picks = METHODS[method](features["train"], budget, seed=seed)
                seconds.append(time.perf_counter() - started)
                accuracies.append(score(picks))
                covered.append(len(np.unique(train.labels[picks])))
            mean, half = interval(accuracies)
            row = {"per_class": per_class, "method": method, "accuracies": accuracies, "mean": mean,
                   "interval": half, "classes_covered": covered, "seconds": float(np.mean(seconds))}  # fmt: skip
            results["rows"].append(row)
            print(f"{per_class:>9}  {method:<10}  {mean:>8.1%} +- {half:>5.1%}  "
                  f"{np.mean(covered):>8.1f} of {classes:<3}  {np.mean(seconds):>14.2f}")  # fmt: skip
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
