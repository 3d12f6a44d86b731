"""Label propagation as a classifier to export: the few labels spread over the kNN graph
of the unlabeled pool's frozen features (`kssl.evaluation.features.propagated_labels`), then a
linear head on the frozen encoder fitted to every labeled and propagated image
(`kssl.evaluation.features.linear_head_weights`). No training steps, so not a method of
`SEMI_SUPERVISED`: a candidate beside them in `kssl run`'s choice, often the best at 1-4
labels per class (BENCHMARKS.md, "A few labels, used well")."""

from __future__ import annotations

import numpy as np

from kssl.evaluation.features import linear_head_weights, propagated_labels


def propagation_head(labeled_features, labels, unlabeled_features, num_classes: int, k: int = 20):
    """`(kernel, bias)` of the linear head on features fitted to the labeled images and the
    unlabeled ones with their propagated labels."""
    spread = propagated_labels(labeled_features, labels, unlabeled_features, k=k)
    features = np.concatenate([np.asarray(labeled_features), np.asarray(unlabeled_features)])
    return linear_head_weights(features, np.concatenate([np.asarray(labels, np.int64), spread]), num_classes)


def propagation_accuracy(head, features, labels) -> float:
    """The accuracy of a head from `propagation_head` on `features` (validation or test)."""
    kernel, bias = head
    return float(np.mean((np.asarray(features) @ kernel + bias).argmax(-1) == np.asarray(labels)))


def propagation_classifier(encoder, head, num_classes: int, class_names=None):
    """A `kssl.models.Classifier` (`mode="linear"`: the encoder frozen) whose head is `head`,
    compiled, ready to evaluate, save and serve like a fine-tuned one.

    Examples:
        >>> import kssl
        >>> digits = kssl.load_digits(image_size=8)
        >>> encoder = kssl.conv4(width=0.125, image_size=8)
        >>> features = kssl.evaluation.features.extract_features(encoder, digits)
        >>> head = propagation_head(features[:30], digits.labels[:30], features[30:300], num_classes=10)
        >>> classifier = propagation_classifier(encoder, head, 10)
        >>> logits = classifier.predict(digits.images[:5].astype("float32") / 255, verbose=0)
        >>> bool(np.allclose(logits, features[:5] @ head[0] + head[1], atol=1e-4))
        True
    """
    from kssl.models import Classifier

    classifier = Classifier(encoder, num_classes, mode="linear", class_names=class_names)
    classifier.head.set_weights(list(head))
    classifier.compile()
    return classifier
