"""Evaluation of frozen features: weighted kNN and a logistic-regression linear probe."""

from __future__ import annotations

import numpy as np


def extract_features(encoder, images, batch_size: int = 512, verbose: int = 0) -> np.ndarray:
    """Encoder features of the evaluation view of every image, in inference mode.

    `images` is an `ImageSet`, a streamed source, or a uint8 `(N, H, W, 3)` array; each
    image becomes `kssl.data.evaluation_view.EvaluationView` at the encoder's input
    size (its centred square), as in the exported model's `embed` signature.
    """
    import tensorflow as tf

    from kssl.data.pipeline import evaluation_images
    from kssl.data.sources import from_arrays

    if isinstance(images, np.ndarray):
        images = from_arrays(images)
    import keras

    size = encoder.input_shape[1] or images.image_size
    dataset = evaluation_images(images, batch_size, size).prefetch(tf.data.AUTOTUNE)
    # Features leave the model as float32: under mixed_bfloat16, MultiWorkerMirroredStrategy's
    # predict gathers the replicas' outputs with a collective that has no bfloat16 kernel.
    with encoder.distribute_strategy.scope():
        as_float32 = keras.Sequential(
            [keras.Input(encoder.input_shape[1:]), encoder, keras.layers.Activation("linear", dtype="float32")]
        )
    return np.asarray(as_float32.predict(dataset, verbose=verbose), dtype=np.float32)


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

    Example:
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


def evaluate_encoder(encoder, train_set, test_set, k: int = 200, linear: bool = True, batch_size: int = 512) -> dict:
    """kNN and linear-probe accuracy of an encoder's frozen features on labeled `ImageSet`s.

    Returns:
        `{"knn_accuracy": ..., "linear_accuracy": ...}` (the latter only with `linear`).
    """
    train_features = extract_features(encoder, train_set, batch_size)
    test_features = extract_features(encoder, test_set, batch_size)
    results = {"knn_accuracy": knn_accuracy(train_features, train_set.labels, test_features, test_set.labels, k=k)}
    if linear:
        results["linear_accuracy"] = linear_probe_accuracy(
            train_features, train_set.labels, test_features, test_set.labels
        )
    return results


def _normalize(features):
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
