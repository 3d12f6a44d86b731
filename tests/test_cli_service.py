"""`kssl data-service` as a user starts it: a dispatcher and two workers in processes of
their own on 127.0.0.1, and `kssl pretrain --data-service` training to the weights of the
same command without the service; Ctrl-C stops the servers cleanly."""

import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from helpers import TINY_MODEL, write_image_folder

from kssl.cli import main

pytestmark = pytest.mark.eager_steps  # the command's plumbing: see conftest


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


# Three more TensorFlow processes (about 20 s of CPU): the suite's budget keeps it out of the
# default run; tests/data/test_service.py checks the same with servers in the test's process.
@pytest.mark.slow
def test_pretraining_through_the_service_gives_the_weights_of_local_pretraining(tmp_path, capsys):
    data = write_image_folder(tmp_path / "photos", classes=2, per_class=24, shapes=((14, 20), (18, 12)))
    dispatcher = start(["dispatcher", "--port", "0", "--work-dir", str(tmp_path / "journal")])
    port = port_of(dispatcher)
    workers = [start(["worker", "--dispatcher", f"127.0.0.1:{port}"]) for _ in range(2)]
    try:
        common = ["pretrain", "--data", str(data), "--image-size", "8", *TINY_MODEL, "--epochs", "2",
                  "--batch-size", "16", "--no-knn-monitor", "--no-tensorboard"]  # fmt: skip
        assert main([*common, "--out", str(tmp_path / "local"), "--stream"]) == 0  # while the workers start
        assert all(port_of(worker) for worker in workers)
        assert main([*common, "--out", str(tmp_path / "served"), "--data-service", f"127.0.0.1:{port}"]) == 0
        assert "computed here" not in capsys.readouterr().err  # every step came from the service
    finally:
        for process in [*workers, dispatcher]:
            stop(process)
    local, served = weights(tmp_path / "local" / "encoder.keras"), weights(tmp_path / "served" / "encoder.keras")
    assert len(local) == len(served) > 5
    for a, b in zip(local, served):
        np.testing.assert_array_equal(a, b)


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
