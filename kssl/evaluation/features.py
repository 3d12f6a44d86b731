"""Evaluation of frozen features: weighted kNN, a logistic-regression linear probe, and
label propagation from a few labels over a kNN graph."""

from __future__ import annotations

import numpy as np

from kssl.errors import DataError
from kssl.runtime.quiet import quiet_keras_step_retracing

quiet_keras_step_retracing()  # each new model traces its own step once: not retracing


def extract_features(encoder, images, batch_size: int = 512, verbose: int = 0, progress: bool = False) -> np.ndarray:
    """Encoder features of the evaluation view of every image, in inference mode: row `i`
    is image `i`'s.

    `images` is an `ImageSet`, a streamed source, or a uint8 `(N, H, W, 3)` array; each
    image becomes `kssl.data.evaluation_view.EvaluationView` at the encoder's input
    size (its centred square), as in the exported model's `embed` signature.
    `progress=True` shows a bar of the images done (tqdm, on stderr). A streamed file
    that cannot be read is an error naming it: `readable_features` leaves such files out
    and says which images the rows belong to.
    """
    features, rows = features_by_row(encoder, images, batch_size, verbose, progress)
    if len(rows) != len(images):
        raise DataError(f"{unread_message(images, rows)}: delete or replace it, or use readable_features().")
    return features


def readable_features(encoder, images, batch_size: int = 512, verbose: int = 0, progress: bool = False):
    """`(features, read)`: the features of every image that could be read, and `read`, those
    images (`images.subset(rows)`: paths and labels that go with the features, row for row).

    Every caller that meets a listing with computed rows (`kssl select`, `kssl embed`,
    evaluation, label propagation) goes through here, so an unreadable file can never lend
    its name or label to another image's features. None readable is an error.

    Examples:
        >>> import kssl
        >>> digits = kssl.load_digits(image_size=8).subset(range(5))
        >>> features, read = readable_features(kssl.conv4(width=0.125, image_size=8), digits)
        >>> features.shape[0] == len(read) == 5
        True
    """
    features, rows = features_by_row(encoder, images, batch_size, verbose, progress)
    if not len(rows):
        raise DataError(f"None of the {len(images):,} images of {getattr(images, 'source', '') or 'the data'!r} "
                        "could be read: check the files (JPEG, PNG, BMP or GIF).")  # fmt: skip
    return features, images if len(rows) == len(images) else images.subset(rows)


def features_by_row(encoder, images, batch_size: int = 512, verbose: int = 0, progress: bool = False):
    """`(features, rows)`: the features of the images that could be read and each one's row
    in `images` (all rows, in order, unless a streamed file could not be decoded)."""
    import keras
    import tensorflow as tf

    from kssl.data.pipeline import evaluation_images
    from kssl.data.sources import from_arrays
    from kssl.training.progress import ImagesDone

    if isinstance(images, np.ndarray):
        images = from_arrays(images)
    size = encoder.input_shape[1] or images.image_size

    # Each view carries its row through the model, so a file left out of its batch takes its
    # row with it. A batch whose files were all unreadable becomes one blank view of row -1:
    # a model cannot run on an empty batch, and dropping the batch would hide their number.
    @tf.autograph.experimental.do_not_convert  # TensorFlow's own control flow: no AutoGraph needed
    def never_empty(views, rows):
        empty = tf.equal(tf.size(rows), 0)
        views = tf.cond(empty, lambda: tf.zeros([1, size, size, 3], views.dtype), lambda: views)
        return ((views, tf.cond(empty, lambda: tf.constant([-1], tf.int64), lambda: rows)),)

    dataset = evaluation_images(images, batch_size, size, with_rows=True).map(never_empty)
    # Features leave the model as float32: under mixed_bfloat16, MultiWorkerMirroredStrategy's
    # predict gathers the replicas' outputs with a collective that has no bfloat16 kernel.
    with encoder.distribute_strategy.scope():
        views, rows = keras.Input(encoder.input_shape[1:]), keras.Input((), dtype="int64")
        features = keras.layers.Activation("linear", dtype="float32")(encoder(views))
        with_rows = keras.Model([views, rows], [features, keras.layers.Identity(dtype="int64")(rows)])
    callbacks = [ImagesDone(len(images), batch_size)] if progress else []
    features, rows = with_rows.predict(dataset.prefetch(tf.data.AUTOTUNE), verbose=verbose, callbacks=callbacks)
    read = np.asarray(rows, np.int64) >= 0
    return np.asarray(features, dtype=np.float32)[read], np.asarray(rows, np.int64)[read]


def unread_message(images, rows) -> str:
    """Names the images of `images` whose rows are not among `rows` (read): "'a.jpg' could
    not be read", or "'a.jpg' and 2 other images could not be read"."""
    unread = np.setdiff1d(np.arange(len(images)), rows)
    paths = getattr(images, "paths", None)
    first = repr(str(paths[unread[0]])) if paths is not None else f"image {unread[0]}"
    more = f" and {len(unread) - 1:,} other image{'s' * (len(unread) > 2)}" if len(unread) > 1 else ""
    return f"{first}{more} could not be read"


def knn_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    k: int = 200,
    temperature: float = 0.1,
    chunk_size: int = 1024,
) -> float:
    """Weighted kNN accuracy on cosine similarity (the InstDisc / lightly protocol).

    Each test sample's k most similar training samples vote for their class with
    weight `exp(similarity / temperature)`; the class with the largest total wins.

    Examples:
        >>> train = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], "float32")
        >>> knn_accuracy(train, [0, 0, 1, 1], np.array([[1, 0.2], [0.2, 1]]), [0, 1], k=2)
        1.0

    Reference:
        Wu et al. 2018 (InstDisc), https://arxiv.org/abs/1805.01978, section 3.4.
    """
    train = _normalize(train_features)
    test = _normalize(test_features)
    train_labels = np.asarray(train_labels).astype(np.int64)
    test_labels = np.asarray(test_labels).astype(np.int64)
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    k = min(k, len(train))
    correct = 0
    for start in range(0, len(test), chunk_size):
        similarity = test[start : start + chunk_size] @ train.T
        neighbours = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(similarity, neighbours, axis=1) / temperature)
        votes = np.zeros((len(similarity), num_classes))
        np.add.at(votes, (np.arange(len(similarity))[:, None], train_labels[neighbours]), weights)
        correct += int((votes.argmax(1) == test_labels[start : start + chunk_size]).sum())
    return correct / len(test)


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, max_iter: int = 1000) -> float:
    """Test accuracy of a logistic regression on standardised frozen features (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    probe.fit(train_features, train_labels)
    return float(probe.score(test_features, test_labels))


def label_propagation_accuracy(
    labeled_features,
    labeled_labels,
    unlabeled_features,
    test_features,
    test_labels,
    k: int = 20,
    alpha: float = 0.99,
) -> float:
    """Test accuracy of label propagation over a kNN graph of frozen features: the few
    labeled images' labels spread to the unlabeled ones along the graph (Zhou et al.
    2004, "Learning with local and global consistency"; on deep features, Iscen et al.
    2019), and each test image takes the vote of its `k` nearest graph nodes.

    The graph holds the labeled and the unlabeled images (a labeled image may be among
    the unlabeled ones too: its copy is its own nearest neighbour); the test images are
    not in it. Features are L2-normalised, so neighbours are by cosine similarity.
    scikit-learn's `LabelSpreading` (a kNN kernel; `alpha` is Zhou's: how much a node
    takes from its neighbours rather than its own label) does the work.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> centres = np.eye(4)[:2] * 5
        >>> unlabeled = np.concatenate([centres[c] + rng.normal(size=(50, 4)) for c in (0, 1)])
        >>> test = np.concatenate([centres[c] + rng.normal(size=(20, 4)) for c in (0, 1)])
        >>> label_propagation_accuracy(centres, [0, 1], unlabeled, test, np.repeat([0, 1], 20), k=10)
        1.0

    Reference:
        Zhou et al. 2004, https://papers.nips.cc/paper/2506; Iscen et al. 2019,
        https://arxiv.org/abs/1904.04717.
    """
    model = _label_spreading(labeled_features, labeled_labels, unlabeled_features, k, alpha)
    return float(np.mean(model.predict(_normalize(test_features)) == np.asarray(test_labels)))


def propagated_labels(labeled_features, labeled_labels, unlabeled_features, k: int = 20, alpha: float = 0.99):
    """The label each unlabeled image takes from label propagation over the kNN graph of
    the labeled and unlabeled images' frozen features (as in `label_propagation_accuracy`),
    row for row with `unlabeled_features`.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> centres = np.eye(4)[:2] * 5
        >>> unlabeled = np.concatenate([centres[c] + rng.normal(size=(50, 4)) for c in (0, 1)])
        >>> labels = propagated_labels(centres, [0, 1], unlabeled, k=10)
        >>> labels.shape, float(np.mean(labels == np.repeat([0, 1], 50)))
        ((100,), 1.0)
    """
    model = _label_spreading(labeled_features, labeled_labels, unlabeled_features, k, alpha)
    return np.asarray(model.transduction_[len(labeled_features) :], np.int64)


def _label_spreading(labeled_features, labeled_labels, unlabeled_features, k, alpha):
    from sklearn.semi_supervised import LabelSpreading

    labeled = _normalize(labeled_features)
    nodes = np.concatenate([labeled, _normalize(unlabeled_features)])
    targets = np.concatenate([np.asarray(labeled_labels, np.int64), np.full(len(unlabeled_features), -1)])
    model = LabelSpreading(kernel="knn", n_neighbors=min(k, len(nodes)), alpha=alpha, max_iter=1000)
    return model.fit(nodes, targets)


def linear_head_weights(features, labels, num_classes: int, max_iter: int = 1000):
    """`(kernel, bias)` of a Dense layer on the raw `features` (`(d, num_classes)`, `(num_classes,)`)
    that computes the logits of a logistic regression fitted on standardised features
    (scikit-learn, as `linear_probe_accuracy`): the scaling folded into the weights, and a
    class absent from `labels` given logits far below the others.

    Examples:
        >>> rng = np.random.default_rng(0)
        >>> features = np.concatenate([rng.normal(loc=c * 4, size=(20, 3)) for c in (0, 2)])
        >>> kernel, bias = linear_head_weights(features, np.repeat([0, 2], 20), num_classes=3)
        >>> kernel.shape, bias.shape, float(np.mean((features @ kernel + bias).argmax(1) == np.repeat([0, 2], 20)))
        ((3, 3), (3,), 1.0)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, np.float64)
    scaler = StandardScaler().fit(features)
    model = LogisticRegression(max_iter=max_iter).fit(scaler.transform(features), labels)
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one logit for the second class: [0, z] has the same softmax
        coef, intercept = np.concatenate([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
    scaled = coef / scaler.scale_  # (classes, d): the standardisation, folded in
    kernel = np.zeros((features.shape[1], num_classes))
    bias = np.zeros(num_classes)
    kernel[:, model.classes_] = scaled.T
    bias[model.classes_] = intercept - scaled @ scaler.mean_
    absent = np.setdiff1d(np.arange(num_classes), model.classes_)
    bias[absent] = bias[model.classes_].min() - 1e4  # never predicted, whatever the features
    return kernel.astype(np.float32), bias.astype(np.float32)


def evaluate_encoder(encoder, train_set, test_set, k: int = 200, linear: bool = True, batch_size: int = 512) -> dict:
    """kNN and linear-probe accuracy of an encoder's frozen features on labeled `ImageSet`s.

    Returns:
        `{"knn_accuracy": ..., "linear_accuracy": ...}` (the latter only with `linear`).
    """
    train_features, train_set = readable_features(encoder, train_set, batch_size)
    test_features, test_set = readable_features(encoder, test_set, batch_size)
    results = {"knn_accuracy": knn_accuracy(train_features, train_set.labels, test_features, test_set.labels, k=k)}
    if linear:
        results["linear_accuracy"] = linear_probe_accuracy(
            train_features, train_set.labels, test_features, test_set.labels
        )
    return results


def _normalize(features):
    from kssl.evaluation.similarity import l2_normalized  # numpy only

    return l2_normalized(features)
