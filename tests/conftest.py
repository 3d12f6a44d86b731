"""Shared test set-up: quiet TensorFlow, fixed seeds, and the path to the shared data."""

import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Folder listings and image caches go to a throw-away folder, not the user's ~/.cache.
os.environ.setdefault("KSSL_CACHE_DIR", tempfile.mkdtemp(prefix="kssl-test-cache-"))
# Each test process (and the processes it starts) computes on one thread: the pytest-xdist
# workers (`pytest_xdist_auto_num_workers`) fill the cores, and every step is
# deterministic without TF_DETERMINISTIC_OPS (the SIGKILL test compares a run in this
# process with one resumed in another). One inter-op thread too: the tests' graphs are too
# small to run ops side by side, and the hand-offs cost more (measured: the fine-tuning and
# model tests ran 12-15% faster).
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
sys.path.insert(0, str(pathlib.Path(__file__).parent))

from kssl.runtime.cpu import prefer_onednn  # noqa: E402

prefer_onednn()  # what `import kssl` before TensorFlow does for users

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so tf.distribute tests can run 2 replicas on this machine.
# This must happen before TensorFlow initialises its devices, hence here.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)
import numpy as np  # noqa: E402
import pytest  # noqa: E402

SHARED_CIFAR10 = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)
    yield


@pytest.fixture(autouse=True)
def _float32_policy():
    # The `kssl` command sets Keras' global dtype policy for its process (mixed_bfloat16
    # on CPUs with AVX512-BF16); tests that run it in-process must not pass it on.
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(autouse=True)
def _eager_steps(request):
    # Tests of the command's plumbing (files, messages, choices) mark themselves
    # `eager_steps`: each fit then runs without tracing its step, a third faster at test
    # scale. What users run is traced: the contract tests trace every method's, mode's and
    # semi-supervised step, and the notebooks, the SIGKILL and the two-worker tests run
    # the command in processes of their own, traced.
    if request.node.get_closest_marker("eager_steps") is None:
        yield
        return
    tf.config.run_functions_eagerly(True)
    try:
        yield
    finally:
        tf.config.run_functions_eagerly(False)


# The longest tests start first: one of them started last would leave the other workers
# idle at the end of the run (pytest-xdist's worksteal balances the rest).
LONGEST_FIRST = ("test_multiworker.py", "test_cli.py", "test_notebooks.py", "test_files.py", "test_device.py")


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (-p no:xdist) there is no such hook
def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject's): a worker per core and one more, as many as the RAM holds.

    The tests often wait with a core idle (for the processes they start, a notebook kernel,
    files), so a spare worker fills the gaps. Measured on the 2-core AVX2 EPYC on 2026-12-07,
    the same commit in a fresh clone: 2 workers 12:56 (162% CPU), 3 workers 10:35 (195%),
    with the same 21 CPU-minutes. A worker peaks at ~2.5 GB: one per 3 GB of RAM at most.
    """
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores + 1, psutil.virtual_memory().total // (3 * 2**30)))


def pytest_configure(config):
    # CI runs the README's test command with CI=true: there the `slow` set (end-to-end runs that
    # repeat what faster tests check) runs too, so a change that breaks only them does not land,
    # while a developer's run stays short. An explicit `-m` is kept as given.
    if os.environ.get("CI", "").lower() in ("1", "true") and config.option.markexpr == "not slow":
        config.option.markexpr = ""


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # stable: the rest keep their order
