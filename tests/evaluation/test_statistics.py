import numpy as np
import pytest
from scipy import stats

from kssl.evaluation.statistics import mean_interval


@pytest.mark.parametrize("values", [[0.6, 0.7, 0.8], [0.31, 0.24, 0.41, 0.35, 0.29], [0.5, 0.5]])
def test_the_interval_is_students_t_over_the_draws(values):
    mean, low, high = mean_interval(values)
    sem = np.std(values, ddof=1) / np.sqrt(len(values))
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=sem) if sem else (mean, mean)
    assert mean == pytest.approx(np.mean(values)) and (low, high) == pytest.approx(expected)
    # The tabulated t quantiles (2 and 4 degrees of freedom), not the normal 1.96.
    table = {3: 4.303, 5: 2.776}
    if len(values) in table:
        assert (high - low) / 2 == pytest.approx(table[len(values)] * sem, rel=1e-3)


def test_one_draw_has_no_interval_and_no_draw_is_an_error():
    assert mean_interval([0.42]) == (0.42, None, None)
    with pytest.raises(ValueError, match="non-empty"):
        mean_interval([])
