"""FreeMatch (Wang et al. 2023, https://arxiv.org/abs/2205.07246): FixMatch with
self-adaptive thresholds and a fairness term."""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.losses import freematch_fairness, freematch_mask
from kssl.runtime import distribute
from kssl.semi_supervised.base import (
    SemiSupervisedMethod,
    labeled_weak_strong_logits,
    pseudo_label_logs,
    weak_and_strong_views,
)

PAPER_MOMENTUM = 0.999  # the paper's lambda, for runs of 2^20 steps


class SelfAdaptiveThresholds(keras.layers.Layer):  # checkpointed with the training wrapper, never saved alone
    """FreeMatch's state: EMAs over the **global** batch of the weak views' mean confidence
    (`time_p`, the global threshold), mean class probabilities (`p_model`, the local
    thresholds) and arg-max histogram (`label_hist`, for the fairness term), each started at
    `1 / C` as in the paper (USB's code starts them at 1). Every replica computes the same
    update from gathered sums, so N replicas equal one device; the variables are checkpointed
    with the training model, so a resumed fine-tuning goes on from them.

    Args:
        num_classes: C.
        momentum: the EMAs' rate lambda (the paper's 0.999).

    Examples:
        >>> import numpy as np
        >>> state = SelfAdaptiveThresholds(2, momentum=0.5)
        >>> state.update(np.array([[0.9, 0.1], [0.7, 0.3]], "float32"))
        >>> [round(float(v), 3) for v in (state.time_p, *state.p_model.numpy(), *state.label_hist.numpy())]
        [0.65, 0.65, 0.35, 0.75, 0.25]
    """

    def __init__(self, num_classes, momentum=PAPER_MOMENTUM, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_classes, self.momentum = int(num_classes), float(momentum)
        start = keras.initializers.Constant(1.0 / self.num_classes)
        self.time_p = self.add_weight(shape=(), initializer=start, trainable=False, name="time_p")
        self.p_model = self.add_weight(shape=(self.num_classes,), initializer=start, trainable=False, name="p_model")
        self.label_hist = self.add_weight(shape=(self.num_classes,), initializer=start, trainable=False,
                                          name="label_hist")  # fmt: skip
        self.built = True

    def update(self, probabilities) -> None:
        """Moves the EMAs towards this step's global-batch statistics of `probabilities`
        (`(n, C)`, the weak views' softmax; no gradient)."""
        probabilities = tf.stop_gradient(tf.cast(probabilities, tf.float32))
        count = distribute.global_sum(tf.cast(tf.shape(probabilities)[0], tf.float32))
        confidence = distribute.global_sum(tf.reduce_sum(tf.reduce_max(probabilities, axis=-1))) / count
        mean = distribute.global_sum(tf.reduce_sum(probabilities, axis=0)) / count
        labels = tf.one_hot(tf.argmax(probabilities, axis=-1), self.num_classes)
        histogram = distribute.global_sum(tf.reduce_sum(labels, axis=0)) / count
        m = self.momentum
        new = [m * tf.convert_to_tensor(v) + (1 - m) * x for v, x in
               ((self.time_p, confidence), (self.p_model, mean), (self.label_hist, histogram))]  # fmt: skip
        distribute.update_variables([self.time_p, self.p_model, self.label_hist], new,
                                    lambda variable, value: variable.assign(value))  # fmt: skip

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "momentum": self.momentum}


def run_momentum(steps: int) -> float:
    """The EMA rate for a run of `steps`: the thresholds' statistics settle (1 - 1/e of the
    way) within the first 5% of the run, as the paper's 0.999 do within 0.1% of its 2^20
    steps; never slower than 0.999, never faster than 0.9. With 0.999 in a run of 536 steps
    the threshold had moved from 1/C = 0.10 to 0.26 only by the end, and kept 99.98% of the
    pseudo-labels (BENCHMARKS.md, CIFAR-10 at 4 labels a class).

    Examples:
        >>> run_momentum(536), run_momentum(2**20), run_momentum(50)
        (0.9627, 0.999, 0.9)
    """
    return round(min(PAPER_MOMENTUM, max(0.9, 1 - 20 / max(int(steps), 1))), 4)


class FreeMatch(SemiSupervisedMethod):
    """FixMatch whose confidence threshold adapts to the model's learning status, per class.

    Views as FixMatch's (a weak view gives the pseudo-label, the strong view learns it).
    After each step's forward pass the EMAs of `SelfAdaptiveThresholds` move towards the
    weak views' statistics; a pseudo-label is kept where the weak view's confidence reaches
    `time_p * p_model(c) / max p_model` for its class c (`kssl.losses.freematch_mask`): low
    while the model is unsure (more unlabeled images train), rising as it learns, lower for
    classes it finds hard. The fairness term (`kssl.losses.freematch_fairness`, weight
    `fairness_weight`) compares the kept strong views' mean prediction with the EMA's class
    distribution, each normalised by its histogram; it is computed on the global batch, and
    each replica's share carries exactly its part of the gradient.

    Args:
        ratio: unlabeled images per labeled image in a step (mu, 7).
        weight: weight of the unlabeled loss (lambda_u, 1).
        momentum: the EMAs' rate (lambda); None (the default): `run_momentum` of the
            run's length, the paper's 0.999 when it is not known.
        fairness_weight: weight of the fairness term (lambda_f; USB's 0.01).
    """

    logged = ("mask_rate", "pseudo_label_balance", "threshold")

    def __init__(self, ratio: int = 7, weight: float = 1.0, momentum: float | None = None,
                 fairness_weight: float = 0.01):  # fmt: skip
        super().__init__(ratio, weight)
        if momentum is not None and not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1). Received: momentum={momentum!r}")
        if not fairness_weight >= 0:
            raise ValueError(f"fairness_weight must be >= 0. Received: fairness_weight={fairness_weight!r}")
        self.momentum = None if momentum is None else float(momentum)
        self.fairness_weight = float(fairness_weight)
        self.thresholds, self.run_steps = None, None

    def set_run_length(self, steps: int) -> None:
        self.run_steps = int(steps)

    @property
    def effective_momentum(self) -> float:
        """The EMA rate used: `momentum` if given, else `run_momentum` of the run's length."""
        if self.momentum is not None:
            return self.momentum
        return PAPER_MOMENTUM if self.run_steps is None else run_momentum(self.run_steps)

    def state(self, num_classes: int, unlabeled_images: int | None = None):
        self.thresholds = SelfAdaptiveThresholds(num_classes, self.effective_momentum, name="freematch_thresholds")
        return self.thresholds

    def unlabeled_views(self, image_size: int) -> list:
        return weak_and_strong_views(image_size)

    def logits_and_terms(self, classifier, images, views, teacher=None):
        labeled_logits, weak_logits, strong_logits = labeled_weak_strong_logits(classifier, images, views)
        unlabeled = tf.shape(weak_logits)[0]
        state = self.thresholds
        state.update(tf.nn.softmax(weak_logits))  # USB's order: update, then mask with the new values
        mask = freematch_mask(weak_logits, state.time_p, state.p_model)
        pseudo_labels = tf.argmax(weak_logits, axis=-1)
        terms = mask * tf.nn.sparse_softmax_cross_entropy_with_logits(labels=pseudo_labels, logits=strong_logits)
        share = self.fairness_weight * self._fairness_share(strong_logits, mask) if self.fairness_weight else 0.0
        threshold = tf.fill([unlabeled], tf.convert_to_tensor(state.time_p))
        return labeled_logits, terms, {**pseudo_label_logs(weak_logits, mask), "threshold": threshold}, share

    def _fairness_share(self, strong_logits, mask):
        """This replica's share of the fairness term of the global batch: the shares add up
        to it, and so do their gradients (the mean probability of the kept strong views is a
        global mean; each replica's share moves it through its own rows only)."""
        probabilities = tf.nn.softmax(strong_logits, axis=-1)
        kept = mask[:, None]
        local_sum = tf.reduce_sum(kept * probabilities, axis=0)
        kept_count = distribute.global_sum(tf.reduce_sum(mask))
        classes = tf.one_hot(tf.argmax(probabilities, -1), tf.shape(probabilities)[-1])
        histogram = distribute.global_sum(tf.reduce_sum(kept * classes, axis=0))
        mean = distribute.global_sum(tf.stop_gradient(local_sum)) / tf.maximum(kept_count, 1.0)
        replicas = float(distribute.num_replicas())
        # The global mean's value, with the gradient of this replica's rows scaled so that the
        # replicas' shares (each a 1/R of the term) add up to the term's gradient.
        moving = mean + replicas * (local_sum - tf.stop_gradient(local_sum)) / tf.maximum(kept_count, 1.0)
        term = freematch_fairness(moving, histogram / tf.maximum(kept_count, 1.0), self.thresholds.p_model,
                                  self.thresholds.label_hist)  # fmt: skip
        return tf.where(kept_count > 0, term / replicas, 0.0)

    def get_config(self) -> dict:
        return {**super().get_config(), "momentum": self.momentum, "fairness_weight": self.fairness_weight}
