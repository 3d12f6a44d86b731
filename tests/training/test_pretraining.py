"""The one-call recipes: step counts, time budgets and their resume, and the recipe they use."""

import dataclasses

import keras
import numpy as np
import pytest
from helpers import digits, tiny_encoder

from kssl.methods import recipe_for
from kssl.training import finetune, pretrain
from kssl.training.callbacks import TimeBudget


@pytest.fixture(scope="module")
def images():
    return digits().subset(range(128))


def test_epochs_give_the_step_count_and_the_recipes_schedule(images):
    model, history = pretrain(images, tiny_encoder(), epochs=1, batch_size=32, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 4 and len(history.history["loss"]) == 1
    schedule = model.optimizer._learning_rate  # warmup + cosine over the 4 steps, peak 0.3 x 32/256
    expected = recipe_for("simclr").schedule(32, 4)
    assert [float(schedule(s)) for s in range(5)] == pytest.approx([float(expected(s)) for s in range(5)])
    assert model.optimizer.weight_decay == pytest.approx(5e-4) and model.optimizer.nesterov


def test_a_changed_recipe_reaches_the_optimizer(images):
    recipe = dataclasses.replace(recipe_for("simclr"), optimizer="adamw", learning_rate=1e-3, weight_decay=1e-4)
    model, _ = pretrain(images, tiny_encoder(), epochs=0.25, batch_size=32, recipe=recipe, verbose=0)
    assert isinstance(model.optimizer, keras.optimizers.AdamW)
    assert model.optimizer.weight_decay == pytest.approx(1e-4)


def test_a_time_budget_stops_training_and_ends_its_cosine(images, capsys):
    budget = TimeBudget(minutes=0.04)
    model, _ = pretrain(images, tiny_encoder(), budget_minutes=budget, batch_size=32, verbose=1)
    assert budget.agreed_elapsed >= budget.seconds and budget.steps > 1
    assert budget.peak_learning_rate == pytest.approx(0.3 * 32 / 256)  # the recipe's peak drives the budget
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-3)  # end of the cosine
    out = capsys.readouterr().out
    assert "left | step" in out and "Unknown" not in out  # the budget's progress line, not Keras' bar


def test_a_resumed_time_budget_spends_only_what_is_left(images, tmp_path):
    first = TimeBudget(minutes=0.02)
    model, _ = pretrain(images, tiny_encoder(), budget_minutes=first, batch_size=32, verbose=0,
                        checkpoint_dir=tmp_path, checkpoint_every=1000)  # fmt: skip
    steps_first = int(model.optimizer.iterations.numpy())
    # Same run, longer budget: it restores the step and the time already spent.
    second = TimeBudget(minutes=0.04)
    model, _ = pretrain(images, tiny_encoder(), budget_minutes=second, batch_size=32, verbose=0,
                        checkpoint_dir=tmp_path, checkpoint_every=1000)  # fmt: skip
    assert second.initial_elapsed == pytest.approx(first.agreed_elapsed)
    assert second.initial_elapsed >= first.seconds
    assert int(model.optimizer.iterations.numpy()) == steps_first + second.steps
    # A budget already spent trains no further.
    spent = TimeBudget(minutes=0.02)
    _, history = pretrain(images, tiny_encoder(), budget_minutes=spent, batch_size=32, verbose=0,
                          checkpoint_dir=tmp_path)  # fmt: skip
    assert history is None and spent.steps == 0


def test_finetune_trains_a_classifier_that_beats_chance(images):
    test = digits("test")
    classifier, history = finetune(tiny_encoder(), images, epochs=15, batch_size=32, learning_rate=3e-3, verbose=0)
    accuracy = classifier.evaluate(*_arrays(test), verbose=0, return_dict=True)["accuracy"]
    # 10 classes: chance is 0.1. Measured 0.46 (ResNet-10 at 1/8 width, one thread, Intel
    # Xeon); 3x chance leaves room for other CPUs' rounding.
    assert accuracy > 0.3
    assert history.history["loss"][-1] < np.log(10)


def _arrays(image_set):
    return image_set.images.astype("float32") / 255.0, image_set.labels


def test_a_diverging_loss_stops_at_its_step_and_no_checkpoint_keeps_the_broken_weights(images, tmp_path):
    import tensorflow as tf

    from kssl.errors import DivergedError

    with pytest.raises(DivergedError, match=r"the loss was nan at step [23] of 8 .*try 3.3e\+05") as error:
        pretrain(images, tiny_encoder(), epochs=2, batch_size=32, method="vicreg", learning_rate=1e6, verbose=0,
                 checkpoint_dir=tmp_path, checkpoint_every=1)  # fmt: skip
    assert "nothing of it is saved" in str(error.value)
    reader = tf.train.load_checkpoint(str(tmp_path))  # the last step before the loss broke
    values = [reader.get_tensor(name) for name in reader.get_variable_to_shape_map()]
    floats = [v for v in values if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    assert len(floats) > 20 and all(np.isfinite(v).all() for v in floats)


def test_a_weight_average_ends_finetune_with_the_numpy_average_of_its_steps(images):
    class Trajectory(keras.callbacks.Callback):  # the weights after every step, before the average replaces them
        def on_train_batch_end(self, batch, logs=None):
            steps.append([w.numpy().copy() for w in self.model.trainable_weights])

    steps = []
    keras.utils.set_random_seed(0)
    classifier, _ = finetune(tiny_encoder(), images.subset(range(64)), epochs=3, batch_size=32, ema_momentum=0.6,
                             callbacks=[Trajectory()], verbose=0)  # fmt: skip
    assert len(steps) == 6
    average = steps[0]  # Keras' first step takes the weights as they are, then averages
    for weights in steps[1:]:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, weights)]
    for got, expected in zip(classifier.trainable_weights, average):
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(classifier.trainable_weights[-1].numpy(), steps[-1][-1])
    with pytest.raises(Exception, match=r"ema_momentum must be in \[0, 1\)"):
        finetune(tiny_encoder(), images, ema_momentum=1.0)
