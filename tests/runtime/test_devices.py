"""kssl's one check of the machine's accelerators (`kssl.runtime.devices`)."""

import tensorflow as tf

from kssl.runtime import devices


def test_a_cpu_machine_has_no_gpu_and_a_listed_one_is_found(monkeypatch):
    assert not devices.has_gpu() and not devices.has_accelerator() and devices.gpu_devices() == []
    listed = {"GPU": [], "TPU": ["/physical_device:TPU:0"]}
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: listed.get(kind, []))
    assert not devices.has_gpu() and devices.has_accelerator()  # a TPU is an accelerator, not a GPU
    listed["GPU"] = ["/physical_device:GPU:0"]
    assert devices.has_gpu()
