"""`kssl doctor`: checks that training on this machine's devices computes what one device does.

Runs, on whatever devices exist (GPUs, else the CPU split into two logical devices),
a few SimCLR steps and a few fine-tuning steps on one device and on all of them, in
float32 and in the device's mixed precision, and with XLA where kssl allows it (one
GPU). The multi-replica run starts from the same weights and sees the same global
batches as the single-device one; the table gives both speeds and the largest weight
difference after the steps. It is the first thing to run on a new GPU machine: a
difference far above float rounding means the replicas do not compute the global batch
(data split, batch-norm synchronisation, gathered negatives, loss scaling). A last row
finishes a batch of views on the last device (`kssl.data.device`, what `pretrain` does
on a GPU) and compares them with the host pipeline's views of the same seed.

Examples:
    >>> from kssl.app.doctor import tolerance
    >>> tolerance("float32"), tolerance("mixed_float16")
    (0.001, 0.05)
"""

from __future__ import annotations

import time

import numpy as np

from kssl import defaults
from kssl.data.augment import ViewAugmentation
from kssl.data.device import finish_unfinished
from kssl.data.pipeline import labeled_batches, view_pairs
from kssl.data.sources import from_arrays
from kssl.runtime.cpu import cpu_model
from kssl.runtime.devices import gpu_devices, has_gpu
from kssl.runtime.precision import set_precision


def tolerance(precision: str) -> float:
    """The largest relative difference of one step's weight update accepted, per precision."""
    return 1e-3 if precision == "float32" else 5e-2


def ensure_devices() -> list[str]:
    """The devices to train on: every GPU, else two logical CPU devices (made if possible)."""
    import tensorflow as tf

    if has_gpu():
        return gpu_devices()
    physical = tf.config.list_physical_devices("CPU")
    if len(physical) == 1:
        try:
            tf.config.set_logical_device_configuration(physical[0], [tf.config.LogicalDeviceConfiguration()] * 2)
        except RuntimeError:  # TensorFlow already initialised its devices: as they are
            pass
    return [device.name for device in tf.config.list_logical_devices("CPU")]


def _task_data(task: str, image_size: int, batch_size: int):
    """One fixed global batch of random images (well conditioned: no constant channels)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    images = from_arrays(rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8),
                         rng.integers(0, 10, batch_size), [str(i) for i in range(10)])  # fmt: skip
    if task == "simclr":
        batch = next(iter(view_pairs(images, batch_size, seed=0)))
    else:
        batch = next(iter(labeled_batches(images, batch_size, training=True, seed=0, repeat=True)))
    return tf.data.Dataset.from_tensors(batch).repeat()  # the same global batch every step


def _build(task: str, image_size: int, strategy, jit_compile: bool, weights=None):
    import keras

    import kssl

    with strategy.scope():
        keras.utils.set_random_seed(0)
        encoder = kssl.resnet(18, width=0.25, image_size=image_size)
        # Plain SGD: a step's update is proportional to the gradient (Adam's first step is
        # about lr * sign(g), which turns rounding-level gradients into full-size updates).
        optimizer = keras.optimizers.SGD(0.01)
        if task == "simclr":
            model = kssl.SimCLR(encoder)
        else:
            model = kssl.Classifier(encoder, num_classes=10, mode="full")
        model.compile(optimizer=optimizer, jit_compile=jit_compile)
        if weights is not None:
            model.set_weights(weights)
    return model


def _speed(model, data, steps):
    start = time.perf_counter()
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def check(task, precision, jit_compile, devices, strategy, steps=5, image_size=32, batch_size=64) -> dict:
    """One row of the doctor's table: `task` ("simclr" or "finetune") on 1 device and on `strategy`.

    Both models start from the same weights and take one step on the same global batch;
    the difference of their updates, relative to the update's size, is the check. Then
    each trains `steps` more steps for its speed.
    """
    import tensorflow as tf

    set_precision(precision)
    data = _task_data(task, image_size, batch_size)
    single = _build(task, image_size, tf.distribute.OneDeviceStrategy(devices[0]), jit_compile)
    start = single.get_weights()
    many = _build(task, image_size, strategy, False, start)
    single.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    many.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    update = max(float(np.max(np.abs(a - w))) for a, w in zip(single.get_weights(), start))
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), many.get_weights()))
    relative = difference / max(update, 1e-30)
    return {
        "task": task,
        "precision": precision,
        "xla": jit_compile,
        "replicas": strategy.num_replicas_in_sync,
        "single_steps_per_s": _speed(single, data, steps),
        "replicas_steps_per_s": _speed(many, data, steps),
        "max_weight_difference": difference,
        "relative_difference": relative,
        "ok": relative <= tolerance(precision),
    }


def view_tolerance() -> float:
    """The largest difference accepted between views finished on a device and on the host (a quarter level)."""
    return 1e-3


def check_augmentation(device: str, image_size: int = 32, batch_size: int = 64, repeats: int = 5) -> dict:
    """Views finished on `device` vs the host's views of the same seed, and both speeds (views/s)."""
    import tensorflow as tf

    from kssl.data.pipeline import view_pairs

    stored = int(image_size * 1.5)
    pixels = np.random.default_rng(0).integers(0, 256, (batch_size, stored, stored, 3), dtype=np.uint8)
    images = from_arrays(pixels).at_size(image_size)
    every_branch = ViewAugmentation(image_size, blur_probability=0.5, solarize_probability=0.2)

    def pairs(on_device):
        return view_pairs(images, batch_size, every_branch, seed=0, on_device=on_device)

    host = next(iter(pairs(False)))
    unfinished = next(iter(pairs(True)))
    with tf.device(device):
        unfinished = tf.nest.map_structure(tf.identity, unfinished)  # on the device before timing
        finish = tf.function(finish_unfinished)
        finished = finish(unfinished)
        start = time.perf_counter()
        for _ in range(repeats):
            finished = finish(unfinished)
        _ = [v.numpy() for v in finished]
        device_rate = 2 * batch_size * repeats / (time.perf_counter() - start)
    iterator = iter(pairs(False).repeat())
    next(iterator)
    start = time.perf_counter()
    for _ in range(repeats):
        next(iterator)
    host_rate = 2 * batch_size * repeats / (time.perf_counter() - start)
    difference = max(float(np.max(np.abs(a.numpy() - b.numpy()))) for a, b in zip(host, finished))
    return {
        "device": device,
        "host_views_per_s": host_rate,
        "device_views_per_s": device_rate,
        "max_view_difference": difference,
        "ok": difference <= view_tolerance(),
    }


def run_doctor(steps: int = defaults.DOCTOR_STEPS, image_size: int = defaults.DOCTOR_IMAGE_SIZE,
               batch_size: int = defaults.DOCTOR_BATCH_SIZE, precisions=None, out=print) -> list[dict]:  # fmt: skip
    """Runs every check and prints the table; returns its rows.

    `precisions` defaults to float32 and the device's mixed precision. Run it as
    `kssl doctor` (tested in `tests/app/test_cli.py`); in Python, in a fresh process before
    any other TensorFlow work: the CPU can then still be split into two logical
    devices, and no other MirroredStrategy over the same devices exists (two in one
    process can reuse each other's collective keys, which aborts their collectives):

        rows = kssl.app.doctor.run_doctor(steps=5)
        assert all(row["ok"] for row in rows)
    """
    import keras
    import tensorflow as tf

    from kssl.runtime.precision import has_gpu, precision_choice

    devices = ensure_devices()
    # One strategy for every check: collectives of several MirroredStrategy objects in one
    # process can share instance keys (measured: a shape mismatch aborted the second check).
    strategy = tf.distribute.MirroredStrategy(devices)
    previous_policy = keras.config.dtype_policy()

    gpu = has_gpu()
    if precisions is None:
        mixed = precision_choice(gpu=gpu)[0]
        precisions = ["float32"] + ([mixed] if mixed != "float32" else [])
    xla_options = [False, True] if gpu else [False]
    hardware = f"{len(devices)} GPU(s)" if gpu else f"CPU ({cpu_model()}) as {len(devices)} logical devices"
    out(f"kssl doctor: {hardware}; {steps} steps of batch {batch_size} at {image_size} px per check")
    out("  step difference: the largest weight difference after one step from the same weights on the same")
    out("  global batch, relative to the step's largest update (float rounding: ~1e-6 in float32)")
    out("  XLA is checked on one GPU only: kssl turns it off for several replicas and on CPUs")
    header = f"{'task':9s} {'precision':15s} {'XLA':4s} {'1 device':>12s} {'replicas':>18s} {'step difference':>16s}"
    out(header)
    rows = []
    for precision in precisions:
        for jit_compile in xla_options:
            for task in ("simclr", "finetune"):
                row = check(task, precision, jit_compile, devices, strategy, steps, image_size, batch_size)
                rows.append(row)
                verdict = "ok" if row["ok"] else f"MISMATCH (> {tolerance(precision):g})"
                out(
                    f"{task:9s} {precision:15s} {'on' if jit_compile else 'off':4s} "
                    f"{row['single_steps_per_s']:8.2f} st/s "
                    f"{row['replicas']:2d} x {row['replicas_steps_per_s']:7.2f} st/s "
                    f"{row['relative_difference']:16.1e}  {verdict}"
                )
    keras.config.set_dtype_policy(previous_policy)
    augmentation = check_augmentation(devices[-1], image_size, batch_size)
    verdict = "ok" if augmentation["ok"] else f"MISMATCH (> {view_tolerance():g})"
    out(
        f"views finished on {augmentation['device']}: {augmentation['device_views_per_s']:.0f} views/s there "
        f"(the host's whole augmentation: {augmentation['host_views_per_s']:.0f} views/s); largest difference "
        f"from the host's views {augmentation['max_view_difference']:.1e}  {verdict}"
    )
    rows.append({"task": "augmentation", **augmentation})
    return rows
