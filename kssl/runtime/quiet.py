"""Keeps TensorFlow's C++ log lines out of the `kssl` command's output, and its spurious
retracing warning about Keras' step functions out of any kssl output.

TensorFlow's C++ runtime writes its logs straight to file descriptor 2: oneDNN notices,
"Could not find cuda drivers" and `cuInit` errors on machines without a GPU, grappler's
cost-model complaints. `TF_CPP_MIN_LOG_LEVEL=3` does not silence all of them: some are
written before absl's logging is initialised (measured with TensorFlow 2.21), so no
environment variable alone keeps a terminal readable.

`filter_native_logs()` therefore points file descriptor 2 at a pipe read by a small
child process, which passes every line on to the real stderr except C++ log lines of
severity INFO, WARNING and ERROR (FATAL lines, which come with a crash, pass).
Python's warnings and tracebacks, kssl's messages and Keras' progress bar are untouched.
The child outlives a crash of the command, so nothing written before it is lost.
"""

from __future__ import annotations

import atexit
import os
import re
import subprocess
import sys

# absl's format, "I0000 00:00:1764043200.123456   1234 port.cc:153] ...", and TensorFlow's
# older one, "2026-11-25 03:59:49.123456: I tensorflow/core/...cc:42] ...".
NATIVE_LOG_LINE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+:\d+\]"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # the second line of TensorFlow's cpu_feature_guard notice
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\.)"
)

_FILTER_PROGRAM = f"""
import re, sys
pattern = re.compile({NATIVE_LOG_LINE.pattern!r})
out = sys.stderr.buffer
for line in sys.stdin.buffer:
    if not pattern.match(line.decode("utf-8", "replace")):
        out.write(line)
        out.flush()
"""

# Before TensorFlow is imported, these quiet what they can at the source.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3", "GLOG_minloglevel": "3", "ABSL_MIN_LOG_LEVEL": "3"}


def is_native_log_line(line: str) -> bool:
    """Whether `line` is a TensorFlow C++ log line of severity INFO, WARNING or ERROR.

    Examples:
        >>> is_native_log_line("E0000 00:00:1764043200.1 1234 cuda_executor.cc:1228] failed call to cuInit")
        True
        >>> is_native_log_line("UserWarning: the image folder has 3 unreadable files")
        False
    """
    return bool(NATIVE_LOG_LINE.match(line))


_filtering = False


def filter_native_logs() -> bool:
    """Filters this process's file descriptor 2 until it exits; returns whether it does.

    Calling it again changes nothing. Does nothing (and returns False) where the
    descriptor cannot be redirected.
    """
    global _filtering
    if _filtering:
        return True
    try:
        sys.stderr.flush()
        original = os.dup(2)
        reader, writer = os.pipe()
        child = subprocess.Popen([sys.executable, "-c", _FILTER_PROGRAM], stdin=reader, stderr=original, close_fds=True)
    except OSError:
        return False
    _filtering = True
    os.close(reader)
    os.dup2(writer, 2)
    os.close(writer)
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)

    def restore():
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(original, 2)  # the pipe's last writer closes: the child reads to the end and exits
        os.close(original)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()

    atexit.register(restore)
    return True


class KerasStepRetracingFilter:
    """Drops TensorFlow's "triggered tf.function retracing" warning about Keras' own step
    functions (the `TensorFlowTrainer` methods that make the train, test and predict steps).

    kssl builds a new model for every fine-tuning mode, draw and start (and for each
    evaluation), and each traces its own step once. TensorFlow counts the traces of the
    same Python function across those distinct models and calls it excessive retracing;
    here it is neither a bug nor avoidable. The warning about any other function passes.

    Examples:
        >>> import logging
        >>> record = lambda text: logging.LogRecord("tensorflow", logging.WARNING, "", 0, text, None, None)
        >>> keep = KerasStepRetracingFilter().filter
        >>> keep(record("5 out of the last 5 calls to <function TensorFlowTrainer.make_predict_function."
        ...             "<locals>.one_step_on_data_distributed at 0x7f> triggered tf.function retracing."))
        False
        >>> keep(record("5 out of the last 5 calls to <function my_step at 0x7f> triggered tf.function retracing."))
        True
    """

    def filter(self, record) -> bool:
        message = record.getMessage()
        return not ("triggered tf.function retracing" in message and "TensorFlowTrainer." in message)


def quiet_keras_step_retracing() -> None:
    """Adds `KerasStepRetracingFilter` to TensorFlow's logger, once."""
    import logging

    logger = logging.getLogger("tensorflow")
    if not any(isinstance(f, KerasStepRetracingFilter) for f in logger.filters):
        logger.addFilter(KerasStepRetracingFilter())
