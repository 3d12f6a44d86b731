"""`kssl data-service` as a user starts it: a dispatcher and two workers in processes of
their own on 127.0.0.1, a `kssl pretrain --data-service` killed with SIGKILL together with
one of the workers, and the same command again resuming to the weights of local training;
Ctrl-C stops the servers cleanly. (This is also the suite's SIGKILL test of a command: its
checkpoints and resume do not depend on where the batches come from.)"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from helpers import TINY_MODEL, write_image_folder

from kssl.app.cli import main


def start(args):
    return subprocess.Popen([sys.executable, "-m", "kssl", "data-service", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip


def port_of(process):
    line = process.stdout.readline()  # "... listening on HOST:PORT ..." once it serves
    match = re.search(r"listening on [^:]+:(\d+)", line)
    assert match, line
    return int(match[1])


def stop(process):
    process.send_signal(signal.SIGINT)  # Ctrl-C
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "kssl data-service: stopped" in out, out


def weights(path):
    import keras

    return keras.saving.load_model(path).get_weights()


@pytest.mark.slow  # four TensorFlow processes (~1 minute), run by CI; test_checkpointing resumes in-process
def test_a_killed_run_and_a_killed_worker_resume_through_the_service_to_the_local_weights(tmp_path, capsys):
    data = write_image_folder(tmp_path / "photos", classes=2, per_class=24, shapes=((14, 20), (18, 12)))
    dispatcher = start(["dispatcher", "--port", "0", "--work-dir", str(tmp_path / "journal")])
    port = port_of(dispatcher)
    workers = [start(["worker", "--dispatcher", f"127.0.0.1:{port}"]) for _ in range(2)]
    try:
        args = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--epochs", "4",
                "--batch-size", "16", "--checkpoint-every", "2", "--no-knn-monitor", "--no-tensorboard"]  # fmt: skip
        assert main([*args, "--stream", "--out", str(tmp_path / "local")]) == 0  # while the servers start
        assert all(port_of(worker) for worker in workers)
        served = [*args, "--data-service", f"127.0.0.1:{port}", "--data-service-timeout", "5",
                  "--out", str(tmp_path / "served")]  # fmt: skip
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        victim = subprocess.Popen([sys.executable, "-m", "kssl", *served], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        checkpoint = tmp_path / ".served.partial" / "checkpoints" / "pretrain" / "checkpoint"
        deadline = time.time() + 300
        while not checkpoint.exists() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        workers[0].kill()  # SIGKILL, as a machine that dies
        victim.kill()
        assert victim.wait() == -signal.SIGKILL and workers[0].wait() == -signal.SIGKILL
        assert checkpoint.exists() and not (tmp_path / "served").exists()
        capsys.readouterr()
        # The same command again. The dispatcher never forgets a worker: it gives the dead
        # one tasks of the new job too, which the trainer's client skips.
        assert main(served) == 0
        assert "resuming the interrupted run" in capsys.readouterr().out
    finally:
        for process in [*workers[1:], dispatcher]:
            stop(process)
    local, resumed = weights(tmp_path / "local" / "encoder.keras"), weights(tmp_path / "served" / "encoder.keras")
    assert len(local) == len(resumed) > 5
    for a, b in zip(local, resumed):  # the first steps ran in another process: float rounding at most
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.eager_steps  # the command's plumbing: see conftest
def test_an_unreachable_dispatcher_stops_the_command_with_exit_code_2(tmp_path, capsys):
    import socket

    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    data = write_image_folder(tmp_path / "photos", classes=2, per_class=8)
    args = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--epochs", "1", "--batch-size", "8",
            "--data-service", f"127.0.0.1:{port}", "--data-service-timeout", "1",
            "--out", str(tmp_path / "x")]  # fmt: skip
    assert main(args) == 2
    assert f"No tf.data service dispatcher answers at 127.0.0.1:{port}" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / ".x.partial").exists()
