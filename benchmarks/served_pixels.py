"""Served against measured pixels on real photos: how often the exported model's prediction
differs from the one kssl measured, with the evaluation view of before (bilinear sampling:
measured on the in-memory copy at 1.5x the view, served from the original) and of now
(one antialiased resampling of the original, measured and served alike).

For each test photo: its features as measured (`kssl.evaluation.features.extract_features` on the
test split loaded into memory) and as served (the encoder on the view the SavedModel's
`predict_bytes` computes from the file's bytes). A kNN classifier (k=20) on the measured
training features then predicts each test photo from both; the table counts the photos
whose two predictions differ, and the kNN accuracy of each.

    python benchmarks/served_pixels.py --data ../shared/data/flowers \\
        --encoder ../shared/data/pretrained/efficientnet_lite0_imagenet.keras --image-size 32,64,96
"""

from __future__ import annotations

import argparse
import time


def old_views(images, heights, widths, size):
    """The view before issue 42: the centred square sampled bilinearly (`crop_and_resize`)."""
    import tensorflow as tf

    from kssl.data.augment import as_uint8, crop_windows

    heights, widths = tf.cast(heights, tf.float32), tf.cast(widths, tf.float32)
    side = tf.minimum(heights, widths)
    windows = tf.stack([(heights - side) / 2.0, (widths - side) / 2.0, side - 1.0, side - 1.0], axis=1)
    return as_uint8(crop_windows(tf.convert_to_tensor(images), windows, size))


def features(encoder, views):
    import numpy as np

    return np.concatenate([np.asarray(encoder(views[i : i + 128] / 255.0, training=False))
                           for i in range(0, len(views), 128)])  # fmt: skip


def compare(encoder, root, size):
    import numpy as np
    import tensorflow as tf

    from kssl.data.evaluation_view import EvaluationView
    from kssl.data.files import list_folder
    from kssl.data.orientation import decode_image
    from kssl.evaluation.features import knn_accuracy

    train_files, test_files = list_folder(root, "train", progress=False), list_folder(root, "test", progress=False)
    train, test = train_files.load(size, progress=False), test_files.load(size, progress=False)
    view = EvaluationView(size)
    originals = [decode_image(tf.io.read_file(str(p))) for p in test_files.paths]
    rows = {}
    for name in ("before", "now"):
        if name == "before":
            stored = [old_views(s.images, s.shape_array()[:, 0], s.shape_array()[:, 1], size).numpy()
                      for s in (train, test)]  # fmt: skip
            served = np.stack([old_views(o[None], [o.shape[0]], [o.shape[1]], size).numpy()[0] for o in originals])
        else:
            stored = [s.square(size) for s in (train, test)]
            served = np.stack([view.crop(o[None]).numpy()[0] for o in originals])
        bank, measured = (features(encoder, v.astype("float32")) for v in stored)
        from_files = features(encoder, served.astype("float32"))
        predictions = []
        for queries in (measured, from_files):
            bank_n = bank / np.linalg.norm(bank, axis=1, keepdims=True)
            similarity = queries / np.linalg.norm(queries, axis=1, keepdims=True) @ bank_n.T
            top = np.argsort(-similarity, axis=1)[:, :20]
            votes = np.zeros((len(queries), train.num_classes))
            np.add.at(votes, (np.arange(len(queries))[:, None], train.labels[top]),
                      np.exp(np.take_along_axis(similarity, top, 1) / 0.1))  # fmt: skip
            predictions.append(votes.argmax(1))
        norms = np.linalg.norm(measured, axis=1) * np.linalg.norm(from_files, axis=1)
        cosine = np.sum(measured * from_files, 1) / norms
        rows[name] = {
            "differ": int(np.sum(predictions[0] != predictions[1])),
            "of": len(test),
            "measured_knn": knn_accuracy(bank, train.labels, measured, test.labels, k=20),
            "served_knn": knn_accuracy(bank, train.labels, from_files, test.labels, k=20),
            "lowest_cosine": float(cosine.min()),
        }
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a folder with train/ and test/ class folders")
    parser.add_argument("--encoder", required=True, help="an encoder .keras file (any input size)")
    parser.add_argument("--image-size", default="32,64,96", help="comma-separated view sizes")
    args = parser.parse_args(argv)
    import keras

    import kssl  # noqa: F401  (registers kssl's layers)

    encoder = keras.saving.load_model(args.encoder)
    print("| view | measured on | differ (before) | differ (now) | kNN measured / served (before) "
          "| kNN measured / served (now) | lowest cosine (before / now) | seconds |")  # fmt: skip
    print("| ---: | --- | ---: | ---: | --- | --- | --- | ---: |")
    for size in (int(s) for s in args.image_size.split(",")):
        start = time.perf_counter()
        rows = compare(encoder, args.data, size)
        before, now = rows["before"], rows["now"]
        print(f"| {size} px | {now['of']} test photos | {before['differ']} | {now['differ']} | "
              f"{before['measured_knn']:.1%} / {before['served_knn']:.1%} | {now['measured_knn']:.1%} / "
              f"{now['served_knn']:.1%} | {before['lowest_cosine']:.4f} / {now['lowest_cosine']:.4f} | "
              f"{time.perf_counter() - start:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
