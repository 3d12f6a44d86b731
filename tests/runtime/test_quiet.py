"""The `kssl` command hides TensorFlow's C++ log lines, and nothing else."""

import os
import subprocess
import sys
import textwrap

import pytest
from helpers import TINY_MODEL

from kssl.runtime.quiet import is_native_log_line

NATIVE_LINES = [
    "I0000 00:00:1764043200.123456    1234 port.cc:153] oneDNN custom operations are on.",
    "E0000 00:00:1764043200.2 1234 cuda_executor.cc:1228] failed call to cuInit: UNKNOWN ERROR (303)",
    "W0000 00:00:1764043200.3 77 op_level_cost_estimator.cc:699] Error in PredictCost() for the op: op: ...",
    "2026-11-25 03:59:49.123456: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:31] Could not find cuda drivers",
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
]
KEPT_LINES = [
    "UserWarning: Skipped 2 file(s) that are not images",
    "kssl: error: No folder at '/no/such/folder': check the path passed as data.",
    "F0000 00:00:1764043200.4 1234 check.cc:12] Check failed: fatal errors stay visible",
    "Traceback (most recent call last):",
]


@pytest.mark.parametrize("line", NATIVE_LINES)
def test_native_log_lines_are_recognised(line):
    assert is_native_log_line(line)


@pytest.mark.parametrize("line", KEPT_LINES)
def test_other_lines_are_not(line):
    assert not is_native_log_line(line)


def test_filter_drops_native_lines_written_to_file_descriptor_2_and_keeps_the_rest():
    lines = NATIVE_LINES[:2] + KEPT_LINES[:2]
    code = textwrap.dedent(
        f"""
        import os, sys
        from kssl.runtime.quiet import filter_native_logs
        assert filter_native_logs() and filter_native_logs()  # a second call changes nothing
        for line in {lines!r}:
            os.write(2, (line + "\\n").encode())  # as C++ code writes: below Python's sys.stderr
        print("from python", file=sys.stderr)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stderr.splitlines() == KEPT_LINES[:2] + ["from python"]


def test_nothing_written_before_a_crash_is_lost():
    code = "import os; from kssl.runtime.quiet import filter_native_logs; filter_native_logs(); " \
           "os.write(2, b'last words\\n'); os.abort()"  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "last words" in result.stderr


@pytest.mark.slow
def test_the_command_prints_no_native_log_lines_unless_verbose(tmp_path):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "GLOG", "ABSL"))}
    # oneDNN on (kssl turns it on) makes TensorFlow log "oneDNN custom operations are on"
    # on every CPU: there is always a native line to hide.
    environment["TF_ENABLE_ONEDNN_OPTS"] = "1"
    args = ["pretrain", "--image-size", "8", *TINY_MODEL, "--epochs", "0.1", "--batch-size", "32"]

    def stderr_of(*extra, out):
        command = [sys.executable, "-m", "kssl", *args, *extra, "--out", str(tmp_path / out)]
        result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stderr.splitlines()

    quiet = stderr_of(out="quiet")
    assert not [line for line in quiet if is_native_log_line(line)], quiet
    verbose = stderr_of("--verbose", out="verbose")
    assert any(is_native_log_line(line) for line in verbose), verbose
    assert [line for line in verbose if not is_native_log_line(line)] == quiet


def test_new_models_tracing_their_steps_log_no_retracing_warning_but_other_functions_do():
    import logging

    import keras
    import numpy as np

    import kssl.training.fitting  # noqa: F401  (kssl's training and evaluation install the filter)

    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    try:
        for _ in range(8):  # as `kssl finetune` does: a new model per mode, draw and start
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
            model.compile("sgd", "mse")
            model.fit(np.zeros((4, 3)), np.zeros((4, 2)), verbose=0)
            model.predict(np.zeros((4, 3)), verbose=0)
        logger.warning("3 out of the last 3 calls to <function users_own at 0x1> triggered tf.function retracing.")
    finally:
        logger.removeHandler(handler)
    assert [message for message in logged if "retracing" in message] == [  # a user's own function still warns
        "3 out of the last 3 calls to <function users_own at 0x1> triggered tf.function retracing."
    ]
