"""kssl turns on TensorFlow's oneDNN CPU kernels when imported first, and says so when they are off."""

import os
import platform
import subprocess
import sys
import warnings

import pytest

import kssl.cpu

REPORT = "import os, sys; import kssl.cpu; print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), kssl.cpu.onednn_enabled())"


def run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != kssl.cpu.ONEDNN_VARIABLE}
    environment.update(env, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.split()


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN opts are an x86 TensorFlow feature")
def test_importing_kssl_before_tensorflow_turns_onednn_on():
    assert run("import kssl, tensorflow; " + REPORT) == ["1", "True"]


def test_an_explicit_user_choice_is_kept():
    assert run("import kssl, tensorflow; " + REPORT, TF_ENABLE_ONEDNN_OPTS="0") == ["0", "False"]


def test_tensorflow_imported_first_is_left_alone():
    assert run("import tensorflow, kssl; " + REPORT)[0] == "None"


def test_warns_once_when_onednn_is_off_on_a_cpu(monkeypatch):
    monkeypatch.setattr(kssl.cpu, "_warned", False)
    monkeypatch.setattr(kssl.cpu, "onednn_enabled", lambda: False)
    monkeypatch.delenv(kssl.cpu.ONEDNN_VARIABLE, raising=False)
    with pytest.warns(UserWarning, match="TF_ENABLE_ONEDNN_OPTS=1"):
        assert kssl.cpu.warn_if_onednn_off()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kssl.cpu.warn_if_onednn_off()


def test_no_warning_when_the_user_turned_onednn_off(monkeypatch):
    monkeypatch.setattr(kssl.cpu, "_warned", False)
    monkeypatch.setattr(kssl.cpu, "onednn_enabled", lambda: False)
    monkeypatch.setenv(kssl.cpu.ONEDNN_VARIABLE, "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not kssl.cpu.warn_if_onednn_off()
