"""DINO's first few hundred steps on the embedded digits: the teacher's entropy and kNN.

A small, fast probe of how DINO starts (BENCHMARKS.md, "DINO's uniform teacher"): it
pretrains `kssl.DINO` on the first 1,000 of the embedded digits at 16 px (Conv-4 at
width 0.25, float32, no local crops by default), prints the teacher's entropy and the
loss every 20 steps, and the kNN accuracy (k=200) on the other 437 digits after
training and for the same encoder randomly initialised. `--option KEY=VALUE` sets a
DINO option (`kssl.methods.METHODS["dino"]`), `--learning-rate` the peak rate.

`--write-folder DIR` instead writes the same images as DIR/train/<digit>/ and
DIR/test/<digit>/ PNGs, for `lightly_dino.py` to run lightly's DINO on them:

    python benchmarks/dino_start.py --option prototypes=256
    python benchmarks/dino_start.py --option prototypes=256 --option momentum=0.9995
    python benchmarks/dino_start.py --write-folder /tmp/digits
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=40, help="passes over the 1,000 training digits")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a DINO option")
    parser.add_argument("--learning-rate", type=float, default=None, help="peak learning rate (default: the recipe's)")
    parser.add_argument("--write-folder", default=None, help="write the digits as a train/test folder and stop")
    return parser.parse_args(argv)


TRAIN = 1000


def write_folder(images, root: pathlib.Path) -> None:
    from PIL import Image

    for index, (image, label) in enumerate(zip(images.images, images.labels)):
        folder = root / ("train" if index < TRAIN else "test") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index}.png")


def main(argv=None):
    args = parse_args(argv)
    import keras

    import kssl
    from kssl.encoders import conv4
    from kssl.evaluation.features import extract_features, knn_accuracy
    from kssl.methods import method_spec
    from kssl.training import pretrain

    images = kssl.load_digits(image_size=16)
    if args.write_folder:
        write_folder(images, pathlib.Path(args.write_folder))
        print(f"wrote {len(images)} digits to {args.write_folder}")
        return
    options = {"local_crops": 0, **method_spec("dino").parse_options(args.option, "--option", "DINO")}
    keras.utils.set_random_seed(0)
    train, test = images.subset(range(TRAIN)), images.subset(range(TRAIN, len(images)))
    encoder = conv4(width=0.25, image_size=16)

    def knn():
        train_features, test_features = extract_features(encoder, train), extract_features(encoder, test)
        return knn_accuracy(train_features, train.labels, test_features, test.labels)

    curve = []

    class Curve(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch % 20 == 0:
                curve.append({"step": batch, "teacher_entropy": float(logs["teacher_entropy"]),
                              "loss": float(logs["loss"])})  # fmt: skip
                print(f"step {batch}: teacher entropy {curve[-1]['teacher_entropy']:.3f}, "
                      f"loss {curve[-1]['loss']:.3f}", flush=True)  # fmt: skip

    random_knn = knn()
    model, _ = pretrain(train, encoder, method="dino", epochs=args.epochs, batch_size=args.batch_size, verbose=0,
                        method_options=options, learning_rate=args.learning_rate, callbacks=[Curve()])  # fmt: skip
    result = {"options": options, "log_k": math.log(model.prototypes), "knn": knn(), "random_knn": random_knn,
              "curve": curve}  # fmt: skip
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}))


if __name__ == "__main__":
    main()
