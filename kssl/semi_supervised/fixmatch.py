"""FixMatch (Sohn et al. 2020, https://arxiv.org/abs/2001.07685)."""

from __future__ import annotations

from kssl.losses import fixmatch
from kssl.semi_supervised.base import (
    SemiSupervisedMethod,
    labeled_weak_strong_logits,
    pseudo_label_logs,
    weak_and_strong_views,
)


class FixMatch(SemiSupervisedMethod):
    """Pseudo-labels from a weak view, kept where confident, train a strong view.

    Each unlabeled image gets a weak view (kssl's fine-tuning augmentation) and a strong
    one (kssl's SimCLR view augmentation: crops down to 8% of the image, colour jitter,
    grayscale and blur, batched in `tf.data`; the paper uses RandAugment, of similar
    strength). Where the softmax of the weak view's logits reaches `threshold`, its
    arg-max is the pseudo-label of the strong view's cross-entropy
    (`kssl.losses.fixmatch`); the unlabeled loss is the mean over all unlabeled images.

    Args:
        ratio: unlabeled images per labeled image in a step (mu, 7).
        threshold: the confidence a pseudo-label needs (tau, 0.95).
        weight: weight of the unlabeled loss (lambda_u, 1).
    """

    logged = ("mask_rate", "pseudo_label_balance")

    def __init__(self, ratio: int = 7, threshold: float = 0.95, weight: float = 1.0):
        super().__init__(ratio, weight)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1]. Received: threshold={threshold!r}")
        self.threshold = float(threshold)

    def unlabeled_views(self, image_size: int) -> list:
        return weak_and_strong_views(image_size)

    def logits_and_terms(self, classifier, images, views, teacher=None):
        labeled, weak, strong = labeled_weak_strong_logits(classifier, images, views)
        terms, mask = fixmatch(weak, strong, self.threshold)
        return labeled, terms, pseudo_label_logs(weak, mask)

    def get_config(self) -> dict:
        return {**super().get_config(), "threshold": self.threshold}
