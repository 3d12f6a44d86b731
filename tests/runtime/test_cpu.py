"""kssl turns on TensorFlow's oneDNN CPU kernels when imported first, and says so when they are off;
in any import order, Keras knows kssl's classes; the view pipeline gives Grappler fully defined shapes."""

import os
import platform
import subprocess
import sys
import warnings

import pytest

import kssl.runtime.cpu

REPORT = (
    "import os, sys; import kssl.runtime.cpu; "
    "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), kssl.runtime.cpu.onednn_enabled())"
)


def run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != kssl.runtime.cpu.ONEDNN_VARIABLE}
    environment.update({"TF_CPP_MIN_LOG_LEVEL": "2", **env})
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    assert "PredictCost" not in result.stderr, result.stderr[-2000:]
    if env.get("TF_CPP_MIN_LOG_LEVEL") == "0":  # the logs were on, so the check above could fail
        assert "oneDNN custom operations are on" in result.stderr, result.stderr[-2000:]
    return result.stdout.split()


# Which oneDNN setting each import order leaves, in the same fresh processes that check
# kssl's Keras registration (one TensorFlow start-up per order).
# The first process also traces the view pipeline with TensorFlow's C++ logs on: with an
# unknown box count, Grappler's cost model logged a multi-kilobyte "Error in PredictCost()"
# for every traced CropAndResize (the cause is fixed in kssl.data.augment; a process of its
# own cost one more TensorFlow start).
VIEWS = (
    "from kssl.data.pipeline import view_pairs\nfrom kssl.data.sources import load_digits\n"
    "for _ in view_pairs(load_digits(image_size=16), 64).take(3): pass\n"
)
ORDERS = {
    # name: (code, environment, expected (TF_ENABLE_ONEDNN_OPTS, oneDNN on), registered class)
    "kssl first turns oneDNN on": (
        f"import kssl, keras\n{VIEWS}",
        {"TF_CPP_MIN_LOG_LEVEL": "0"},
        ["1", "True"],
        "FusedBatchNormalization",
    ),  # fmt: skip
    "tensorflow first is left alone": ("import keras, kssl", {}, ["None"], "SimCLR"),
    # TensorFlow calls importlib.util.find_spec("keras") when it is imported, without importing Keras.
    "an explicit choice is kept, a find_spec of keras first": (
        "import importlib.util, kssl\nimportlib.util.find_spec('keras')\nimport tensorflow, keras",
        {"TF_ENABLE_ONEDNN_OPTS": "0"},
        ["0", "False"],
        "ProjectionHead",
    ),
}


@pytest.mark.parametrize("order", ORDERS)
def test_each_import_order_sets_onednn_as_documented_and_keeps_kssls_keras_classes(order):
    code, env, onednn, registered = ORDERS[order]
    if onednn[0] == "1" and platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("oneDNN opts are an x86 TensorFlow feature")
    report = REPORT + f"; print(keras.saving.get_registered_object('kssl>{registered}').__name__)"
    printed = run(f"{code}\n{report}", **env)
    assert printed[: len(onednn)] == onednn and printed[-1] == registered, printed


def test_warns_once_when_onednn_is_off_on_a_cpu(monkeypatch):
    monkeypatch.setattr(kssl.runtime.cpu, "_warned", False)
    monkeypatch.setattr(kssl.runtime.cpu, "onednn_enabled", lambda: False)
    monkeypatch.delenv(kssl.runtime.cpu.ONEDNN_VARIABLE, raising=False)
    with pytest.warns(UserWarning, match="TF_ENABLE_ONEDNN_OPTS=1"):
        assert kssl.runtime.cpu.warn_if_onednn_off()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kssl.runtime.cpu.warn_if_onednn_off()


def test_no_warning_when_the_user_turned_onednn_off(monkeypatch):
    monkeypatch.setattr(kssl.runtime.cpu, "_warned", False)
    monkeypatch.setattr(kssl.runtime.cpu, "onednn_enabled", lambda: False)
    monkeypatch.setenv(kssl.runtime.cpu.ONEDNN_VARIABLE, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kssl.runtime.cpu.warn_if_onednn_off()
