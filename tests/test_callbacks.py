import keras
import numpy as np
import pytest
import tensorflow as tf

from kssl.callbacks import TimeBudget


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
    from kssl.callbacks import StepHistory

    history = StepHistory(every=2)
    history.on_train_begin()
    values = [4.0, 2.0, 3.0, 1.0, 0.0, 2.0]
    for step, _ in enumerate(values, start=1):
        history.on_train_batch_end(step - 1, {"loss": np.mean(values[:step])})  # Keras' running mean
    assert history.steps == [2, 4, 6]
    np.testing.assert_allclose(history.logs["loss"], [3.0, 2.0, 1.0])
