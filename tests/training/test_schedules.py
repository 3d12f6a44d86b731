"""`warmup_cosine` against the formula written out in NumPy, and its argument checks."""

import numpy as np
import pytest

from kssl.training.schedules import warmup_cosine


@pytest.mark.parametrize("warmup, final", [(0, 0.0), (10, 0.0), (25, 0.1)])
def test_the_schedule_is_a_linear_warmup_then_a_cosine_to_its_final_fraction(warmup, final):
    peak, total = 0.3, 100
    schedule = warmup_cosine(peak, total_steps=total, warmup_steps=warmup, final_fraction=final)
    steps = np.arange(0, total + 1)
    progress = np.clip((steps - warmup) / (total - warmup), 0, 1)
    cosine = peak * (final + (1 - final) * 0.5 * (1 + np.cos(np.pi * progress)))
    expected = np.where(steps < warmup, peak * steps / max(warmup, 1), cosine)
    measured = np.array([float(schedule(int(step))) for step in steps])
    np.testing.assert_allclose(measured, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("args, match", [((0.0, 10), "peak_learning_rate"), ((0.1, 0), "total_steps"),
                                         ((0.1, 10, 10), "warmup_steps")])  # fmt: skip
def test_a_schedule_that_cannot_be_is_refused_naming_the_value(args, match):
    with pytest.raises(ValueError, match=match):
        warmup_cosine(*args)
