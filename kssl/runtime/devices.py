"""kssl's one check of the machine's accelerators: whether it has a GPU (`has_gpu`), a GPU
or a TPU (`has_accelerator`), and the GPUs' device names (`gpu_devices`). The data
planning, the device path, the precision and memory defaults, the doctor and the oneDNN
warning all ask here. Listing physical devices does not initialise TensorFlow's devices."""

from __future__ import annotations


def has_gpu() -> bool:
    """Whether this machine has a GPU: kssl's one accelerator check, with `has_accelerator`
    and `gpu_devices` (the data planning, the device path, the defaults and the doctor)."""
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def has_accelerator() -> bool:
    """Whether this machine has a GPU or a TPU (the training size's default depends on it)."""
    import tensorflow as tf

    return has_gpu() or bool(tf.config.list_physical_devices("TPU"))


def gpu_devices() -> list[str]:
    """The names of this machine's GPUs (empty on a CPU-only machine)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("GPU")]
