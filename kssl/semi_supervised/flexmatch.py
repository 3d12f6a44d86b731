"""FlexMatch (Zhang et al. 2021, https://arxiv.org/abs/2110.08263): FixMatch with
class-wise thresholds from curriculum pseudo-labelling."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.losses import flexmatch_thresholds
from kssl.runtime import distribute
from kssl.semi_supervised.base import (
    SemiSupervisedMethod,
    labeled_weak_strong_logits,
    pseudo_label_logs,
    weak_and_strong_views,
)


class ConfidentPredictions(keras.layers.Layer):  # checkpointed with the training wrapper, never saved alone
    """FlexMatch's state: each unlabeled image's latest confident prediction (-1 before its
    first), updated from the **global** batch (every replica gathers the batch's rows and
    predictions, and applies the same updates), so N replicas equal one device; checkpointed
    with the training model, so a resumed fine-tuning goes on from it.

    Args:
        unlabeled_images: N, the size of the unlabeled pool.

    Examples:
        >>> import numpy as np
        >>> state = ConfidentPredictions(4)
        >>> state.update(np.array([2, 0]), np.array([1, 0]), np.array([1.0, 0.0]))
        >>> state.selected.numpy().tolist()
        [-1, -1, 1, -1]
    """

    def __init__(self, unlabeled_images, **kwargs):
        super().__init__(**kwargs)
        self.unlabeled_images = int(unlabeled_images)
        self.selected = self.add_weight(shape=(self.unlabeled_images,), initializer=keras.initializers.Constant(-1),
                                        dtype="int32", trainable=False, name="selected")  # fmt: skip
        self.built = True

    def update(self, rows, predictions, confident) -> None:
        """Sets the prediction of the images at `rows` (`(n,)`) where `confident` is 1."""
        rows, predictions = tf.cast(rows, tf.int32), tf.cast(predictions, tf.int32)
        confident = tf.cast(confident, tf.float32)
        rows, predictions, confident = (distribute.all_gather(t) for t in (rows, predictions, confident))
        keep = confident > 0
        new = tf.tensor_scatter_nd_update(
            tf.convert_to_tensor(self.selected),
            tf.boolean_mask(rows, keep)[:, None],
            tf.boolean_mask(predictions, keep),
        )
        distribute.update_variables([self.selected], [new], lambda variable, value: variable.assign(value))

    def get_config(self):
        return {**super().get_config(), "unlabeled_images": self.unlabeled_images}


class FlexMatch(SemiSupervisedMethod):
    """FixMatch whose threshold is lowered per class by how well the model learns it.

    Views and loss as FixMatch's; the pseudo-label of a weak view is kept where its
    confidence reaches its class's threshold (`kssl.losses.flexmatch_thresholds`, from the
    state before this step): a class whose images are seldom predicted confidently yet gets
    a lower threshold, and before any image is (the warm-up) every pseudo-label is kept.
    After the forward pass, the images whose confidence reaches `threshold` record their
    prediction (`ConfidentPredictions`).

    Args:
        ratio: unlabeled images per labeled image in a step (mu, 7).
        threshold: the fixed threshold tau (0.95).
        weight: weight of the unlabeled loss (lambda_u, 1).
    """

    logged = ("mask_rate", "pseudo_label_balance")
    needs_rows = True

    def __init__(self, ratio: int = 7, threshold: float = 0.95, weight: float = 1.0):
        super().__init__(ratio, weight)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1]. Received: threshold={threshold!r}")
        self.threshold = float(threshold)
        self.predictions = None

    def state(self, num_classes: int, unlabeled_images: int | None = None):
        self.num_classes = num_classes
        self.predictions = ConfidentPredictions(unlabeled_images, name="flexmatch_predictions")
        return self.predictions

    def unlabeled_views(self, image_size: int) -> list:
        return weak_and_strong_views(image_size)

    def logits_and_terms(self, classifier, images, views, teacher=None, rows=None):
        labeled_logits, weak_logits, strong_logits = labeled_weak_strong_logits(classifier, images, views)
        weak_probabilities = tf.nn.softmax(weak_logits)
        confidence, pseudo_labels = tf.reduce_max(weak_probabilities, -1), tf.argmax(weak_probabilities, -1)
        thresholds = flexmatch_thresholds(self.predictions.selected, self.num_classes, self.threshold)
        mask = tf.cast(confidence >= tf.gather(thresholds, pseudo_labels), tf.float32)
        self.predictions.update(rows, pseudo_labels, tf.cast(confidence >= self.threshold, tf.float32))
        terms = mask * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=pseudo_labels, logits=strong_logits)
        return labeled_logits, terms, pseudo_label_logs(weak_logits, mask)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}
