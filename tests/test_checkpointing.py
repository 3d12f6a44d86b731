"""Kill-and-resume: a pretraining run killed with SIGKILL and started again ends where an
uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

SCRIPT = textwrap.dedent(
    """
    import sys, time
    import keras, numpy as np, tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    from kssl.data.sources import load_digits
    from kssl.encoders import resnet
    from kssl.training import pretrain

    checkpoint_dir, out, pause = sys.argv[1] or None, sys.argv[2], float(sys.argv[3])

    class Pause(keras.callbacks.Callback):  # slows the first run down so the kill lands mid-run
        def on_train_batch_end(self, batch, logs=None):
            time.sleep(pause)

    images = load_digits(image_size=8).subset(range(256))
    model, _ = pretrain(images, resnet(18, width=0.125, image_size=8), epochs=2, batch_size=32,
                        checkpoint_dir=checkpoint_dir, checkpoint_every=2, callbacks=[Pause()], verbose=0)
    np.savez(out, *[np.asarray(w.numpy()) for w in model.weights])
    """
)


def run_script(tmp_path, *args):
    return subprocess.Popen([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=tmp_path, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    reference = run_script(tmp_path, "", tmp_path / "reference.npz", 0)
    checkpoints = tmp_path / "checkpoints"
    victim = run_script(tmp_path, checkpoints, tmp_path / "never.npz", 0.4)
    deadline = time.time() + 240
    while not (checkpoints / "checkpoint").exists() and victim.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (tmp_path / "never.npz").exists()

    resumed = run_script(tmp_path, checkpoints, tmp_path / "resumed.npz", 0)
    for process in (reference, resumed):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err.decode()[-3000:]
    expected, actual = np.load(tmp_path / "reference.npz"), np.load(tmp_path / "resumed.npz")
    assert len(expected.files) == len(actual.files) > 50
    for name in expected.files:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_steps_are_counted_exactly_with_several_steps_per_execution(tmp_path):
    """Keras calls on_train_batch_end once per `steps_per_execution` steps: the checkpoint
    still records every step, and saves at the first call past each multiple."""
    import keras

    from kssl.checkpointing import StepCheckpoint

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
