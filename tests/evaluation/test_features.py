import numpy as np
import pytest
from helpers import digits, tiny_encoder
from sklearn.neighbors import KNeighborsClassifier

from kssl.evaluation.features import evaluate_encoder, extract_features, knn_accuracy, linear_probe_accuracy


@pytest.mark.parametrize("k", [1, 5, 50])
def test_knn_matches_scikit_learn_with_the_same_weights(rng, k):
    train = rng.normal(size=(300, 12)).astype("float32")
    labels = rng.integers(0, 4, 300)
    test = rng.normal(size=(80, 12)).astype("float32")
    test_labels = rng.integers(0, 4, 80)
    reference = KNeighborsClassifier(
        n_neighbors=k, metric="cosine", algorithm="brute", weights=lambda d: np.exp((1 - d) / 0.1)
    ).fit(train, labels)
    expected = float(np.mean(reference.predict(test) == test_labels))
    assert knn_accuracy(train, labels, test, test_labels, k=k, chunk_size=32) == pytest.approx(expected)


def test_linear_probe_separates_separable_features(rng):
    labels = rng.integers(0, 3, 200)
    features = np.eye(3)[labels] * 5 + rng.normal(scale=0.1, size=(200, 3))
    assert linear_probe_accuracy(features[:150], labels[:150], features[150:], labels[150:]) == 1.0


def test_evaluate_encoder_is_the_two_probes_on_the_encoders_inference_features():
    encoder, train, test = tiny_encoder(), digits("train"), digits("test")
    results = evaluate_encoder(encoder, train, test, k=20)
    train_features = np.asarray(encoder(train.images.astype("float32") / 255.0, training=False))
    test_features = np.asarray(encoder(test.images.astype("float32") / 255.0, training=False))
    assert extract_features(encoder, test, batch_size=64) == pytest.approx(test_features, abs=1e-5)
    assert results["knn_accuracy"] == knn_accuracy(train_features, train.labels, test_features, test.labels, k=20)
    assert results["linear_accuracy"] == pytest.approx(
        linear_probe_accuracy(train_features, train.labels, test_features, test.labels), abs=1 / len(test)
    )
    # Random convolutional features of digits are already far above chance (0.1): measured 0.8-0.9.
    assert results["knn_accuracy"] > 0.6 and results["linear_accuracy"] > 0.6


def test_label_propagation_follows_the_unlabeled_images_where_the_nearest_label_misleads():
    from kssl.evaluation.features import label_propagation_accuracy

    # Two parallel chains of unlabeled images, each labeled at one end only (opposite
    # ends). A test image near the far end of chain 0 is nearer chain 1's label than
    # chain 0's; only spreading the labels along the chains gets it right.
    steps = np.arange(0, 10.01, 0.5)
    chains = [np.stack([steps, np.full_like(steps, 3.0 * c), np.full_like(steps, 100.0)], 1) for c in (0, 1)]
    labeled = np.array([[0.0, 0.0, 100.0], [10.0, 3.0, 100.0]])
    test = np.array([[9.2, 0.1, 100.0], [0.8, 2.9, 100.0]])
    nearest_label = np.argmin(((test[:, None] - labeled[None]) ** 2).sum(-1), axis=1)
    assert nearest_label.tolist() == [1, 0]  # the nearest labeled image is of the other chain
    assert label_propagation_accuracy(labeled, [0, 1], np.concatenate(chains), test, [0, 1], k=3) == 1.0


def test_features_stay_with_their_files_when_a_file_cannot_be_read(tmp_path):
    """The one alignment mechanism: each feature carries its row, so an unreadable file takes
    its row (and label) with it; `extract_features` refuses rather than shift rows."""
    from helpers import write_image_folder

    from kssl.data.files import list_folder
    from kssl.errors import DataError
    from kssl.evaluation.features import features_by_row, readable_features

    root = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=5, shapes=((12, 12), (10, 14)))
    (root / "a" / "00000.png").write_bytes(b"not a png")  # sorts first: every later row would shift
    (root / "b" / "00007.png").write_bytes(b"")
    files = list_folder(root, skip_bad_images=True, progress=False).at_size(8)
    encoder = tiny_encoder(8)
    features, rows = features_by_row(encoder, files, batch_size=4)  # the bad files fall in two batches
    good = [i for i, path in enumerate(files.paths) if not path.endswith("00000.png")]
    assert rows.tolist() == good
    alone = extract_features(encoder, files.subset(good).load(8))
    np.testing.assert_allclose(features, alone, atol=1e-5)
    features, read = readable_features(encoder, files)
    assert list(read.paths) == [files.paths[i] for i in good] and read.labels.tolist() == files.labels[good].tolist()
    with pytest.raises(DataError, match="00000.png' could not be read"):
        extract_features(encoder, files)
    nothing = files.subset([0])
    with pytest.raises(DataError, match="None of the 1 images"):
        readable_features(encoder, nothing)


@pytest.mark.parametrize("classes", [2, 4])
def test_the_linear_head_computes_scikit_learns_logistic_regression_on_raw_features(classes):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from kssl.evaluation.features import linear_head_weights

    rng = np.random.default_rng(classes)
    labels = rng.integers(0, classes, 200)
    features = rng.normal(size=(200, 6)) * rng.uniform(0.5, 5, 6) + rng.normal(size=6) + labels[:, None]
    kernel, bias = linear_head_weights(features, labels, num_classes=classes + 1)  # the last class never seen
    logits = features @ kernel + bias
    probabilities = np.exp(logits - logits.max(1, keepdims=True))
    probabilities /= probabilities.sum(1, keepdims=True)
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)
    np.testing.assert_allclose(probabilities[:, :classes], reference.predict_proba(features), atol=1e-4)
    assert probabilities[:, classes].max() < 1e-12
