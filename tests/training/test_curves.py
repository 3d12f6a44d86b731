"""A run's curves (`kssl.training.curves`): the mean over each interval recovered exactly from
Keras' running means, and a resumed run's curve going on from its saved points."""

import numpy as np

from kssl.training.curves import StepHistory, save_points, saved_points


def feed(history, losses, start=0):
    """Keras' logs for `losses`: the running mean since the epoch began, after each step."""
    history.on_train_begin()
    for batch, _ in enumerate(losses):
        history.on_train_batch_end(batch, {"loss": float(np.mean(losses[: batch + 1]))})
    history.on_train_end()


def test_each_point_is_the_mean_over_its_own_steps_not_the_running_mean():
    losses = [5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0]
    history = StepHistory(every=3)  # not attached to a model: steps count from 0
    feed(history, losses)
    assert history.steps == [3, 6, 7]
    np.testing.assert_allclose(history.logs["loss"], [4.0, 4 / 3, 1.0])  # not 4.0, 2.67, 2.43


def test_saved_points_keep_what_a_resumed_run_had_done(tmp_path):
    path = tmp_path / "checkpoints" / "curve.json"
    save_points(path, [5, 10, 15], {"loss": [3.0, 2.0, 1.0]})
    assert saved_points(path, 10) == ([5, 10], {"loss": [3.0, 2.0]})
    assert saved_points(path, 0) == ([], {"loss": []})


class _Resumed:
    """A model whose optimizer is at step 10, as a run restored from a checkpoint is."""

    optimizer = type("Optimizer", (), {"iterations": type("Step", (), {"numpy": lambda self: 10})()})()


def test_a_resumed_run_s_curve_goes_on_from_its_checkpoint(tmp_path):
    path = tmp_path / "curve.json"
    save_points(path, [5, 10, 15], {"loss": [3.0, 2.0, 1.5]})  # step 15 was after the checkpoint: dropped
    history = StepHistory(every=5, path=path)
    history.set_model(_Resumed())
    feed(history, [1.0] * 5)
    assert history.steps == [5, 10, 15] and history.logs["loss"] == [3.0, 2.0, 1.0]
    assert saved_points(path, 100) == ([5, 10, 15], {"loss": [3.0, 2.0, 1.0]})
