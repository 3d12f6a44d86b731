"""The semi-supervised seam's own statistics, against NumPy."""

import numpy as np
import pytest

from kssl.semi_supervised.base import pseudo_label_balance


def numpy_balance(labels, mask, classes):
    counts = np.bincount(labels[mask > 0], minlength=classes).astype(float)
    if counts.sum() == 0:
        return 0.0
    shares = counts[counts > 0] / counts.sum()
    return float(-(shares * np.log(shares)).sum() / np.log(classes))


@pytest.mark.parametrize("classes", [2, 5, 10])
def test_the_pseudo_label_balance_is_the_kept_labels_normalised_entropy(classes):
    rng = np.random.default_rng(classes)
    for _ in range(5):
        labels = rng.integers(0, classes, 64)
        mask = (rng.random(64) < rng.random()).astype("float32")
        assert float(pseudo_label_balance(labels, mask, classes)) == pytest.approx(
            numpy_balance(labels, mask, classes), abs=1e-6
        )
    assert float(pseudo_label_balance(np.arange(classes), np.ones(classes, "float32"), classes)) == pytest.approx(1.0)
    assert float(pseudo_label_balance(np.zeros(8, "int64"), np.ones(8, "float32"), classes)) == 0.0
    assert float(pseudo_label_balance(np.arange(8) % classes, np.zeros(8, "float32"), classes)) == 0.0
