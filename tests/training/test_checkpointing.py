"""Resume: a pretraining run interrupted and started again ends where an uninterrupted run
ends (kill -9 through the command: tests/app/test_cli.py)."""

import numpy as np
import pytest


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
    # In-process: the run dies by an exception in step 6, after its checkpoint of step 4 (kill -9 of
    # the command and its resume: tests/app/test_cli.py). Started again with the same
    # checkpoint folder, it trains only the steps left and ends with the same weights.
    import keras
    from helpers import tiny_encoder

    from kssl.data.sources import load_digits
    from kssl.training import pretrain
    from kssl.training.curves import StepHistory

    images = load_digits(image_size=8).subset(range(128))

    class Crash(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 5:  # step 6: its curve point is recorded, its checkpoint is not
                raise RuntimeError("the machine went away")

    def run(checkpoint_dir=None, callbacks=()):
        keras.utils.set_random_seed(0)
        # The curve as `kssl run` keeps it (pretraining.png), beside the checkpoints.
        curve = StepHistory(every=2, path=None if checkpoint_dir is None else tmp_path / "curve.json")
        model, history = pretrain(images, tiny_encoder(8), epochs=2, batch_size=32,
                                  checkpoint_dir=checkpoint_dir, checkpoint_every=2,
                                  callbacks=[curve, *callbacks], verbose=0)  # fmt: skip
        return model, history, curve

    reference, _, whole = run()
    with pytest.raises(RuntimeError, match="went away"):
        run(tmp_path / "checkpoints", [Crash()])  # dies after step 6; the last checkpoint is step 4's
    resumed, history, curve = run(tmp_path / "checkpoints")
    assert int(resumed.optimizer.iterations.numpy()) == 8 and history.params["steps"] == 4  # 4 steps were left
    # The resumed run's curve is the whole run's: steps 2 and 4 from before the crash (its point at
    # step 6, past the checkpoint, is dropped), 6 and 8 after.
    assert curve.steps == whole.steps == [2, 4, 6, 8]
    for name, values in whole.logs.items():
        np.testing.assert_allclose(curve.logs[name], values, rtol=1e-5, atol=1e-6, err_msg=name)
    expected, actual = reference.get_weights(), resumed.get_weights()
    assert len(expected) == len(actual) > 25
    for a, b in zip(actual, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_steps_are_counted_exactly_with_several_steps_per_execution(tmp_path):
    """Keras calls on_train_batch_end once per `steps_per_execution` steps: the checkpoint
    still records every step, and saves at the first call past each multiple."""
    import keras

    from kssl.training.checkpointing import StepCheckpoint

    def make_model():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
        return model

    model = make_model()
    model.fit(np.ones((18, 2)), np.ones((18, 1)), batch_size=2, verbose=0,
              callbacks=[StepCheckpoint(tmp_path, every_steps=4)])  # fmt: skip
    assert int(model.optimizer.iterations.numpy()) == 9
    saved = sorted(int(p.name.split("-")[1].split(".")[0]) for p in tmp_path.glob("ckpt-*.index"))
    assert saved == [6, 9]  # past 4 at step 6, past 8 at step 9 (the last two kept), and the end
    fresh = make_model()
    assert StepCheckpoint(tmp_path).restore(fresh) == 9
    np.testing.assert_array_equal(fresh.get_weights()[0], model.get_weights()[0])


def test_a_damaged_checkpoint_gives_way_to_the_one_before_it_and_none_readable_is_an_error(tmp_path, capsys):
    import keras

    from kssl.errors import DataError
    from kssl.training.checkpointing import StepCheckpoint

    def make_model():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
        return model

    x, y = np.ones((8, 2)), np.ones((8, 1))
    make_model().fit(x, y, batch_size=2, verbose=0, callbacks=[StepCheckpoint(tmp_path, every_steps=2)])
    data = sorted(tmp_path.glob("ckpt-*.data-*"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    assert [p.name.split(".")[0] for p in data] == ["ckpt-2", "ckpt-4"]  # the last two kept
    data[-1].write_bytes(data[-1].read_bytes()[:10])  # the newest cut short
    assert StepCheckpoint(tmp_path).restore(make_model()) == 2
    assert "resuming from" in capsys.readouterr().out
    data[0].write_bytes(b"")
    with pytest.raises(DataError, match="None of the checkpoints in .* can be read"):
        StepCheckpoint(tmp_path).restore(make_model())
