import io
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import FakeClock

from kssl.training.callbacks import TimeBudget


def test_budget_stops_an_endless_epoch_and_drives_the_learning_rate():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    data = tf.data.Dataset.from_tensors((np.ones((4, 2), "float32"), np.ones((4, 1), "float32"))).repeat()
    budget = TimeBudget(minutes=0.02, peak_learning_rate=0.5)
    model.fit(data, epochs=1, steps_per_epoch=10**8, callbacks=[budget], verbose=0)
    assert budget.elapsed >= 1.2  # the whole 1.2 s budget ran
    assert budget.steps > 2
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-6)  # the end of the cosine


def test_schedule_shape():
    budget = TimeBudget(minutes=1, peak_learning_rate=1.0, warmup_fraction=0.1)
    assert budget.learning_rate_at(0.05) == pytest.approx(0.5)
    assert budget.learning_rate_at(0.1) == pytest.approx(1.0)
    assert budget.learning_rate_at(0.55) == pytest.approx(0.5)
    assert budget.learning_rate_at(1.0) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="minutes"):
        TimeBudget(0)


def test_step_history_recovers_per_interval_means_from_running_means():
    from kssl.training.curves import StepHistory

    history = StepHistory(every=2)
    history.on_train_begin()
    values = [4.0, 2.0, 3.0, 1.0, 0.0, 2.0]
    for step, _ in enumerate(values, start=1):
        history.on_train_batch_end(step - 1, {"loss": np.mean(values[:step])})  # Keras' running mean
    assert history.steps == [2, 4, 6]
    np.testing.assert_allclose(history.logs["loss"], [3.0, 2.0, 1.0])


@pytest.mark.parametrize("steps, expected_steps", [(3, [3]), (7, [5, 7])])
def test_step_history_ends_where_training_ended(steps, expected_steps):
    from kssl.training.curves import StepHistory

    history = StepHistory(every=5)
    history.on_train_begin()
    values = np.arange(steps, dtype=float)[::-1]
    for step in range(1, steps + 1):
        history.on_train_batch_end(step - 1, {"loss": np.mean(values[:step])})
    history.on_train_end()
    assert history.steps == expected_steps  # a run under 5 steps had no curve and no final_loss
    starts = [0, *expected_steps[:-1]]
    np.testing.assert_allclose(history.logs["loss"], [values[a:b].mean() for a, b in zip(starts, expected_steps)])


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_budget_progress_shows_minutes_left_and_an_estimated_total_of_steps(monkeypatch):
    from kssl.training.progress import BudgetProgress

    clock = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: clock[0])
    budget = TimeBudget(minutes=10)
    stream = io.StringIO()
    progress = BudgetProgress(budget, initial_step=40, stream=stream)
    budget.on_train_begin()
    for _ in range(10):  # 10 steps of 6 s: one line per tenth of the budget (60 s)
        clock[0] += 6.0
        budget.on_train_batch_end(0)
        progress.on_train_batch_end(0, {"loss": np.float32(2.5)})
    progress.on_train_end()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "Unknown" not in stream.getvalue()
    # 50 steps reached (40 before a resume); 9 steps in 54 s after the first -> 1/6 step/s;
    # 9 minutes left -> about 90 more steps.
    assert lines[-1] == "[##..................]  1:00 of 10:00, 9:00 left | step 50 of ~140 | 0.2 steps/s | loss 2.500"


def test_budget_progress_rewrites_one_line_in_a_terminal():
    from kssl.training.progress import BudgetProgress

    stream = FakeTerminal()
    progress = BudgetProgress(TimeBudget(minutes=1), stream=stream)
    progress.budget.on_train_begin()
    progress.on_train_batch_end(0, {"loss": 1.0})
    progress.on_train_end()
    assert stream.getvalue().startswith("\r[") and stream.getvalue().count("\n") == 1


def test_paused_time_is_not_charged_to_the_budget(monkeypatch):
    import kssl.training.callbacks

    clock = FakeClock()
    monkeypatch.setattr(kssl.training.callbacks, "time", clock)
    budget = TimeBudget(minutes=1)
    budget.on_train_begin()
    clock.sleep(2.0)
    with budget.paused():
        clock.sleep(30.0)
    clock.sleep(1.0)
    assert budget.elapsed == 3.0
