"""The 95% interval of a mean over a few draws: what kssl reports for every accuracy
averaged over independent draws of the labeled images.

With 3 to 5 draws, the normal approximation (1.96 standard errors) is far too narrow:
Student's t with n - 1 degrees of freedom gives the interval a mean of n independent
draws has (4.30 standard errors for 3 draws).
"""

from __future__ import annotations

import numpy as np


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float | None, float | None]:
    """`(mean, low, high)`: the mean of `values` and its two-sided Student-t interval.

    One value has no interval: `(value, None, None)`.

    Examples:
        >>> mean, low, high = mean_interval([0.60, 0.70, 0.80])
        >>> round(mean, 3), round(low, 3), round(high, 3)
        (0.7, 0.452, 0.948)
    """
    from scipy.stats import t

    values = np.asarray(values, np.float64)
    if values.ndim != 1 or len(values) == 0:
        raise ValueError(f"mean_interval needs a non-empty list of numbers. Received: {values.tolist()!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1). Received: {confidence!r}")
    mean = float(values.mean())
    if len(values) == 1:
        return mean, None, None
    half_width = float(t.ppf((1 + confidence) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return mean, mean - half_width, mean + half_width


def accuracy_standard_error(accuracy: float, images: int) -> float:
    """The standard error of an accuracy measured on `images` held-out images (a binomial
    proportion), with Laplace's rule of succession, (k + 1) / (n + 2), in place of the
    accuracy, so that 10 of 10 right still has an error (a perfect score on a few images
    is not a certainty): what kssl's one-standard-error choices compare a margin with.

    Examples:
        >>> round(accuracy_standard_error(0.5, 100), 4), round(accuracy_standard_error(1.0, 10), 3)
        (0.05, 0.087)
    """
    if images < 1:
        raise ValueError(f"images must be >= 1. Received: images={images!r}")
    smoothed = (accuracy * images + 1) / (images + 2)
    return float(np.sqrt(smoothed * (1 - smoothed) / images))
