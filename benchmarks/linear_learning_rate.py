"""Does the linear mode underfit at a few labels? Test accuracy of `kssl.finetune(mode="linear")`
at several learning rates and epochs, against a logistic regression on the same frozen
features (`kssl.evaluation.features.linear_probe_accuracy`), over stratified draws.

    python benchmarks/linear_learning_rate.py --pretrained RUN --data ../shared/data/flowers --per-class 10
"""

from __future__ import annotations

import argparse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pretrained", required=True, help="a run folder or an encoder .keras file")
    parser.add_argument("--data", required=True, help="a folder with train/ and test/ class folders")
    parser.add_argument("--per-class", type=int, default=10, help="labels per class")
    parser.add_argument("--draws", type=int, default=3, help="stratified draws (seeds 0, 1, ...)")
    parser.add_argument("--rates", default="1e-3,1e-2,3e-2", help="Adam learning rates, comma-separated")
    parser.add_argument("--epochs", default="100", help="passes over the labels, comma-separated")
    args = parser.parse_args(argv)

    from kssl.data.files import list_folder
    from kssl.data.pipeline import labeled_batches
    from kssl.data.subsets import label_subset
    from kssl.encoders.loading import load_encoder
    from kssl.evaluation.features import extract_features, linear_probe_accuracy
    from kssl.training import copy_model, finetune

    encoder = load_encoder(args.pretrained)
    size = encoder.input_shape[1]
    train = list_folder(args.data, "train", progress=False).load(size, progress=False).at_size(size)
    test = list_folder(args.data, "test", progress=False).load(size, progress=False).at_size(size)
    test_batches, test_features = labeled_batches(test, 256), extract_features(encoder, test)
    for seed in range(args.draws):
        labeled = label_subset(train, args.per_class, seed=seed)
        features = extract_features(encoder, labeled)
        row = {"logistic regression": linear_probe_accuracy(features, labeled.labels, test_features, test.labels)}
        for rate in (float(r) for r in args.rates.split(",")):
            for epochs in (float(e) for e in args.epochs.split(",")):
                classifier, _ = finetune(copy_model(encoder), labeled, mode="linear", learning_rate=rate,
                                         epochs=epochs, seed=seed, verbose=0)  # fmt: skip
                row[f"Adam {rate:g}, {epochs:g} epochs"] = classifier.evaluate(test_batches, verbose=0)[1]
        print(f"{args.per_class} per class, seed {seed}: " + ", ".join(f"{k} {v:.1%}" for k, v in row.items()))


if __name__ == "__main__":
    main()
