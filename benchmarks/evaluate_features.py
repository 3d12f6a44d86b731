"""Scores frozen features saved by another library with kssl's kNN and linear probe.

`lightly_reference.py` (run with PyTorch and lightly) saves `train_features`,
`train_labels`, `test_features`, `test_labels` and a JSON `summary` to an `.npz`; this
script applies exactly the evaluation `cifar10_budget.py` uses (`kssl.evaluation.features`:
kNN with k=200, cosine similarity, exp(sim/0.1) votes; scikit-learn logistic regression
on standardised features) and prints the summary with the two accuracies.

    python benchmarks/evaluate_features.py /tmp/lightly.npz [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("features", help=".npz with train/test features and labels")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import numpy as np

    from kssl.evaluation.features import knn_accuracy, linear_probe_accuracy

    if not pathlib.Path(args.features).is_file():
        sys.exit(f"No features file at {args.features}; run lightly_reference.py first.")
    arrays = np.load(args.features)
    missing = {"train_features", "train_labels", "test_features", "test_labels"} - set(arrays.files)
    if missing:
        sys.exit(f"{args.features} lacks {sorted(missing)}; expected the output of lightly_reference.py.")
    splits = [arrays[name] for name in ("train_features", "train_labels", "test_features", "test_labels")]
    results = json.loads(str(arrays["summary"])) if "summary" in arrays.files else {}
    results["knn_accuracy"] = knn_accuracy(*splits)
    results["linear_accuracy"] = linear_probe_accuracy(*splits)
    print(json.dumps(results, indent=2))
    if args.out:
        pathlib.Path(args.out).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
