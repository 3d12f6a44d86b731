"""Distillation with unlabeled images, SimCLRv2's third step (Chen et al. 2020b,
https://arxiv.org/abs/2006.10029, section 2.3)."""

from __future__ import annotations

import tensorflow as tf

from kssl.losses import distillation
from kssl.semi_supervised.base import SemiSupervisedMethod, weak_view


class Distillation(SemiSupervisedMethod):
    """A student matches a fine-tuned teacher's softened predictions on unlabeled images.

    The teacher is the classifier fine-tuned on the labels (frozen, in inference mode);
    the student is the same architecture and mode, starting from the pretrained encoder.
    Its loss is the labeled cross-entropy plus `weight` times the distillation loss
    (`kssl.losses.distillation`) on a view of each unlabeled image (kssl's fine-tuning
    augmentation; the teacher sees the same view).

    Args:
        ratio: unlabeled images per labeled image in a step (7).
        temperature: tau of both softmaxes (SimCLRv2's best: 1).
        weight: weight of the distillation loss (1).
    """

    needs_teacher = True

    def __init__(self, ratio: int = 7, temperature: float = 1.0, weight: float = 1.0):
        super().__init__(ratio, weight)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0. Received: temperature={temperature!r}")
        self.temperature = float(temperature)

    def unlabeled_views(self, image_size: int) -> list:
        return [weak_view(image_size)]

    def logits_and_terms(self, classifier, images, views, teacher=None):
        (view,) = views
        labeled = tf.shape(images)[0]
        logits = classifier(tf.concat([images, view], 0), training=True)
        terms = distillation(logits[labeled:], teacher(view, training=False), self.temperature)
        return logits[:labeled], terms, {}

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}
