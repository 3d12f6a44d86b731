"""The seam of semi-supervised fine-tuning: a method (`SemiSupervisedMethod`: the views
of each unlabeled image, the per-image loss terms) and the model that trains a
`Classifier` with it (`SemiSupervisedTraining`).

Each step takes a batch of labeled images and `ratio` times as many unlabeled ones
(`kssl.data.pipeline.semi_supervised_batches`); the loss is the labeled cross-entropy
plus `weight` times the method's unlabeled loss, each a mean over the **global** batch
(`kssl.runtime.distribute.global_mean`), so a step on N replicas equals the step on one device.
Labeled and unlabeled images go through the classifier in one batch, as in FixMatch's
reference implementation: batch normalisation sees them together.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from kssl.runtime import distribute
from kssl.runtime.loss_scaling import loss_scaled


class SemiSupervisedMethod:
    """A semi-supervised loss on unlabeled images, for `SemiSupervisedTraining`.

    Subclasses set `logged` (the names of per-image values they report), `needs_teacher`
    and `needs_rows` (the unlabeled images' rows in the pool reach `logits_and_terms` as
    `rows=`), and implement `unlabeled_views` and `logits_and_terms`.

    Args:
        ratio: unlabeled images per labeled image in a step.
        weight: weight of the unlabeled loss against the labeled cross-entropy.
    """

    logged: tuple[str, ...] = ()
    needs_teacher = False
    needs_rows = False

    def __init__(self, ratio: int = 7, weight: float = 1.0):
        if isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 1:
            raise ValueError(f"ratio must be a whole number >= 1. Received: ratio={ratio!r}")
        if not weight >= 0:
            raise ValueError(f"weight must be >= 0. Received: weight={weight!r}")
        self.ratio, self.weight = ratio, float(weight)

    def unlabeled_views(self, image_size: int) -> list:
        """The `ViewAugmentation`s of each unlabeled image, one per view."""
        raise NotImplementedError

    def logits_and_terms(self, classifier, images, views, teacher=None):
        """`(labeled logits, per-unlabeled-image terms, {name: per-image values})` of one
        training forward pass; `views` are the unlabeled images' views, in `unlabeled_views`
        order. A fourth element, if any, is this replica's share of a loss on the whole
        global batch (weighted; the replicas' shares add up to it), such as FreeMatch's
        fairness term."""
        raise NotImplementedError

    def set_run_length(self, steps: int) -> None:
        """Told the run's length in steps before `state` is built, for methods whose
        settings follow it (FreeMatch's EMA rate); does nothing by default."""

    def state(self, num_classes: int, unlabeled_images: int | None = None):
        """A Keras layer of the method's own variables that change every step (FreeMatch's
        thresholds, FlexMatch's pseudo-label of each of the `unlabeled_images`), built in
        the training model's strategy scope and checkpointed with it; None (the default)
        when it has none."""
        return None

    def get_config(self) -> dict:
        return {"ratio": self.ratio, "weight": self.weight}


def weak_view(image_size: int):
    """The weak view: kssl's fine-tuning augmentation of labeled images (a random resized
    crop of 25-100% of the image and a flip), the view the classifier learns from labels."""
    from kssl.data.augment import ViewAugmentation

    return ViewAugmentation(image_size, crop_area=(0.25, 1.0), jitter_strength=0.0, grayscale_probability=0.0,
                            blur_probability=0.0)  # fmt: skip


def weak_and_strong_views(image_size: int) -> list:
    """FixMatch's views of an unlabeled image: the weak view and kssl's SimCLR view as the
    strong one (crops down to 8%, colour jitter, grayscale, blur)."""
    from kssl.data.augment import ViewAugmentation

    return [weak_view(image_size), ViewAugmentation(image_size)]


def labeled_weak_strong_logits(classifier, images, views):
    """`(labeled, weak, strong)` logits of one training forward pass over the labeled
    images and the unlabeled images' weak and strong views (batch norm sees them together);
    weak and strong in float32, no gradient through the weak ones."""
    weak, strong = views
    labeled, unlabeled = tf.shape(images)[0], tf.shape(weak)[0]
    logits = classifier(tf.concat([images, weak, strong], 0), training=True)
    weak_logits = tf.stop_gradient(tf.cast(logits[labeled : labeled + unlabeled], tf.float32))
    return logits[:labeled], weak_logits, tf.cast(logits[labeled + unlabeled :], tf.float32)


def pseudo_label_balance(pseudo_labels, mask, num_classes: int):
    """How evenly the kept pseudo-labels of the **global** batch spread over the classes:
    the entropy of their class histogram over log(num_classes), 1 when every class has as
    many, 0 when all are one class (or none is kept). A collapse towards a few classes, the
    usual way a pseudo-labelling run goes wrong, shows here before it shows in accuracy.

    Examples:
        >>> float(pseudo_label_balance(tf.constant([0, 1, 2, 2]), tf.constant([1.0, 1.0, 0.0, 0.0]), 4))
        0.5
    """
    kept = tf.cast(mask, tf.float32)[:, None] * tf.one_hot(pseudo_labels, num_classes)
    histogram = distribute.global_sum(tf.reduce_sum(kept, axis=0))
    shares = histogram / tf.maximum(tf.reduce_sum(histogram), 1.0)
    entropy = -tf.reduce_sum(tf.math.multiply_no_nan(tf.math.log(shares), shares))
    return entropy / tf.math.log(float(max(num_classes, 2)))


def pseudo_label_logs(weak_logits, mask) -> dict:
    """What a pseudo-labelling method logs: the share of unlabeled images whose pseudo-label
    was kept (`mask_rate`) and the kept pseudo-labels' `pseudo_label_balance`."""
    balance = pseudo_label_balance(tf.argmax(weak_logits, -1), mask, weak_logits.shape[-1])
    return {"mask_rate": mask, "pseudo_label_balance": balance}


class SemiSupervisedTraining(keras.Model):
    """Trains `classifier` (any fine-tuning mode's `Classifier`) on labeled and unlabeled
    batches with `method`; the classifier is what is evaluated, saved and served.

    Fit it on `((images, labels), unlabeled_views)` batches whose unlabeled views are
    `(B, ratio, H, W, 3)`: every labeled row carries its `ratio` unlabeled images, so a
    batch splits over replicas and workers by rows like any other.

    Args:
        classifier: the `kssl.models.Classifier` to train.
        method: a `SemiSupervisedMethod`.
        teacher: for methods that need one (distillation): a trained classifier, frozen.
        unlabeled_images: the size of the unlabeled pool, for methods that keep state per
            image (`needs_rows`: FlexMatch); their batches carry the rows after the views.

    Examples:
        >>> import numpy as np, tensorflow as tf, kssl
        >>> from kssl.semi_supervised.fixmatch import FixMatch
        >>> classifier = kssl.Classifier(kssl.conv4(width=0.125, image_size=8), num_classes=3, mode="full")
        >>> model = SemiSupervisedTraining(classifier, FixMatch(ratio=2, threshold=0.0))
        >>> model.compile(optimizer="adam")
        >>> batch = ((np.zeros((4, 8, 8, 3), "float32"), np.array([0, 1, 2, 0])),
        ...          (np.zeros((4, 2, 8, 8, 3), "float32"), np.ones((4, 2, 8, 8, 3), "float32")))
        >>> logs = model.fit(tf.data.Dataset.from_tensors(batch), verbose=0).history
        >>> sorted(logs)
        ['accuracy', 'labeled_loss', 'loss', 'mask_rate', 'pseudo_label_balance', 'unlabeled_loss']
        >>> logs["mask_rate"], logs["pseudo_label_balance"]  # zero images: one pseudo-label, kept by all
        ([1.0], [0.0])
    """

    def __init__(self, classifier, method: SemiSupervisedMethod, teacher=None, unlabeled_images=None, **kwargs):
        super().__init__(**kwargs)
        if method.needs_teacher and teacher is None:
            raise ValueError(f"{type(method).__name__} needs a teacher: a fine-tuned classifier.")
        self.classifier, self.method, self.teacher = classifier, method, teacher
        if method.needs_rows and unlabeled_images is None:
            raise ValueError(
                f"{type(method).__name__} keeps a pseudo-label per unlabeled image: pass unlabeled_images."
            )
        self.method_state = method.state(classifier.num_classes, unlabeled_images)  # tracked: saved by checkpoints
        if teacher is not None:
            teacher.trainable = False
        names = ("loss", "labeled_loss", "unlabeled_loss", *method.logged)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy]

    @property
    def optimized_variables(self):
        return self.classifier.optimized_variables

    @property
    def encoder(self):
        """The classifier's encoder (what a mode's schedule, e.g. gradual unfreezing, changes)."""
        return self.classifier.encoder

    def call(self, images, training=False):
        return self.classifier(images, training=training)

    def compile(self, optimizer="adam", **kwargs):
        """`keras.Model.compile` (no loss: the method's); the optimizer is built for every
        variable the classifier's mode may train, as `Classifier.compile` does."""
        super().compile(optimizer=loss_scaled(optimizer, self.classifier.dtype_policy), **kwargs)
        if not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.optimized_variables)

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Built in __init__ and compile; Keras' symbolic build (a real batch averaged across
        # replicas) fails under MultiWorkerMirroredStrategy, as for kssl's other models.
        return

    def train_step(self, data):
        (images, labels), unlabeled = data
        # (B, ratio, H, W, 3) -> (B * ratio, H, W, 3): each replica's rows carry their own.
        flat = [tf.reshape(part, tf.concat([[-1], tf.shape(part)[2:]], 0)) for part in unlabeled]
        views, extra = (flat[:-1], {"rows": flat[-1]}) if self.method.needs_rows else (flat, {})
        variables = self.classifier.trainable_variables
        with tf.GradientTape() as tape:
            logits, terms, logged, *share = self.method.logits_and_terms(self.classifier, images, views, self.teacher,
                                                                         **extra)  # fmt: skip
            logits = tf.cast(logits, tf.float32)
            labeled_terms = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = distribute.global_mean(labeled_terms) + self.method.weight * distribute.global_mean(terms)
            if share:
                loss += share[0]
            if self.classifier.anchors:  # L2-SP: the whole penalty on every replica, so its share
                loss += self.classifier.l2_sp_penalty() / distribute.num_replicas()
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        labeled_count, unlabeled_count = tf.shape(labeled_terms)[0], tf.shape(terms)[0]
        labeled_loss, unlabeled_loss = tf.reduce_mean(labeled_terms), tf.reduce_mean(terms)
        self.trackers["loss"].update_state(labeled_loss + self.method.weight * unlabeled_loss, labeled_count)
        self.trackers["labeled_loss"].update_state(labeled_loss, labeled_count)
        self.trackers["unlabeled_loss"].update_state(unlabeled_loss, unlabeled_count)
        for name, values in logged.items():
            self.trackers[name].update_state(tf.reduce_mean(values), unlabeled_count)
        self.accuracy.update_state(labels, logits)
        return distribute.step_logs(self.metrics)
