"""Small builders shared by the tests: tiny encoders and tiny real data."""

import re

import numpy as np
import tensorflow as tf

from kssl.data.sources import load_digits
from kssl.encoders import resnet

IMAGE_SIZE = 16
# The smallest encoder the `kssl` command builds (Conv-4 of 8 filters): what command-line tests train.
TINY_MODEL = ["--encoder", "conv4", "--width", "0.125"]


def tiny_encoder(image_size=IMAGE_SIZE, widths=(8, 8, 16, 16, 32)):
    """A stem and four stages of one convolution, batch norm and ReLU each, named as kssl's
    ResNets name theirs (`stem_*`, `stage{n}_block1_1_*`): what stage-wise fine-tuning
    needs, at less than half the graph of a ResNet-10 (tracing is most of a small test's
    time). Tests of the ResNet itself, or of its block structure, use `tiny_resnet`."""
    import keras

    from kssl.layers import FusedBatchNormalization

    inputs = keras.Input((image_size, image_size, 3), name="images")
    x = inputs
    for index, filters in enumerate(widths):
        name = "stem" if index == 0 else f"stage{index}_block1_1"
        strides = 2 if index > 1 else 1
        x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
        x = FusedBatchNormalization(synchronized=True, momentum=0.9, name=f"{name}_bn")(x)
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.Model(inputs, keras.layers.GlobalAveragePooling2D(name="features")(x), name="tiny_encoder")


def tiny_resnet(image_size=IMAGE_SIZE, depth=10):
    """kssl's smallest ResNet, as the `kssl` command builds it (`TINY_MODEL`)."""
    return resnet(depth, width=0.125, image_size=image_size, stem="cifar")


def digits(split="train", image_size=IMAGE_SIZE):
    return load_digits(image_size=image_size, split=split)


def all_weights(model):
    """Every variable's value (trainable and not, e.g. batch-norm moving statistics) by path."""
    return {v.path: np.array(v.numpy()) for v in model.weights}


# One strategy object per test process: collective-op keys are allocated per strategy,
# and a second MirroredStrategy over the same devices collides with the first one's keys.
_MIRRORED = []


def two_replicas():
    """The process's MirroredStrategy over the two logical CPUs that conftest creates."""
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


def assert_serializable(obj, inputs, tmp_path, call=None):
    """keras-hub's shared checks, for any kssl layer or model: `from_config(get_config())`
    rebuilds an equal object, and a `.keras` round trip keeps its outputs and the value
    of every variable (momentum networks, queues, heads and batch-norm statistics too;
    that training continues alike, optimizer included, is `test_method_contract`'s).

    `call(obj, inputs)` computes the outputs compared (default `obj(inputs)`, inference mode).
    """
    import keras

    if call is None:
        call = (
            (lambda o, x: o(*x, training=False)) if isinstance(inputs, tuple) else (lambda o, x: o(x, training=False))
        )
    expected = np.asarray(call(obj, inputs))
    config = obj.get_config()
    clone = type(obj).from_config(config)
    call(clone, inputs)  # builds it
    assert clone.get_config() == config
    clone.set_weights(obj.get_weights())
    np.testing.assert_allclose(np.asarray(call(clone, inputs)), expected, rtol=1e-6, atol=1e-6)
    if isinstance(obj, keras.Model):
        saved = obj
    elif isinstance(inputs, tuple):  # a layer of several inputs is saved inside a functional model
        symbolic = [keras.Input(x.shape[1:], dtype=str(x.dtype)) for x in inputs]
        saved = keras.Model(symbolic, obj(*symbolic))
    else:  # a layer is saved inside a model
        saved = keras.Sequential([keras.Input(inputs.shape[1:]), obj])
    path = tmp_path / f"{type(obj).__name__}.keras"
    saved.save(path)
    loaded = keras.saving.load_model(path)
    restored = loaded if isinstance(obj, keras.Model) else [x for x in loaded.layers if type(x) is type(obj)][0]
    assert type(restored) is type(obj)
    np.testing.assert_array_equal(np.asarray(call(restored, inputs)), expected)
    assert len(restored.weights) == len(obj.weights)  # by position: a target network repeats its online paths
    for variable, restored_variable in zip(obj.weights, restored.weights):
        np.testing.assert_array_equal(restored_variable.numpy(), variable.numpy(), err_msg=variable.path)


def write_image_folder(root, classes=2, per_class=10, shapes=((12, 12),), formats=("png",), seed=0, distinct=True):
    """Writes `root/<class>/<index>.<format>` images of random pixels; returns `root`.

    `classes` is a count (folders `c0`, `c1`, ...) or a list of names; image `i` takes
    `shapes[i % len(shapes)]` (height, width) and `formats[i % len(formats)]`, so one
    call writes wide, tall, JPEG and PNG files side by side. `distinct=False` encodes one
    image per shape and format and writes its bytes again (thousands of files quickly).
    """
    import io
    import pathlib

    from PIL import Image

    rng = np.random.default_rng(seed)
    names = [f"c{c}" for c in range(classes)] if isinstance(classes, int) else list(classes)
    encoded = {}
    index = 0
    for name in names:
        folder = pathlib.Path(root) / name
        folder.mkdir(parents=True, exist_ok=True)
        for _ in range(per_class):
            shape, extension = tuple(shapes[index % len(shapes)]), formats[index % len(formats)]
            key = (shape, extension)
            if distinct or key not in encoded:
                buffer = io.BytesIO()
                pixels = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(buffer, format="JPEG" if extension == "jpg" else extension.upper())
                encoded[key] = buffer.getvalue()
            (folder / f"{index:05d}.{extension}").write_bytes(encoded[key])
            index += 1
    return pathlib.Path(root)


def model_state(model):
    """Every variable, trainable or not (momentum networks, queues, batch-norm statistics,
    optimizer slots), keyed by path and, for paths that repeat (a momentum copy's
    layers), by occurrence: a loaded model may create its variables in another order."""
    seen, named = {}, {}
    for variable in model.weights:
        path = re.sub(r"^([^/]+)_\d+/", r"\1/", variable.path)  # Keras numbers a second "byol" "byol_1"
        seen[path] = seen.get(path, -1) + 1
        named[f"{path}#{seen[path]}"] = np.array(variable.numpy())
    for i, variable in enumerate(model.optimizer.variables):  # slot names embed numbered paths: by position
        named[f"optimizer#{i}"] = np.array(variable.numpy())
    return named


def assert_same_state(a, b, rtol=1e-5, atol=1e-5):
    # Float32 round-off of a reordered sum reaches ~1e-6 on weights of order 0.1-1 after a
    # step; a wrong gradient scale, a missed replica or a lost queue moves them by far more.
    assert a.keys() == b.keys()
    for path in a:
        np.testing.assert_allclose(a[path], b[path], rtol=rtol, atol=atol, err_msg=path)


def stop_servers(servers, timeout=5):
    """Stops tf.data service servers, waiting at most `timeout` seconds: a server that a
    client still waits on (another test's, on a port a dead worker had) takes half a minute."""
    import threading

    stopping = [threading.Thread(target=server._stop, daemon=True) for server in servers]
    for thread in stopping:
        thread.start()
    for thread in stopping:
        thread.join(timeout=timeout)


class FakeClock:
    """A stand-in for the `time` module where a test would sleep: `sleep` moves the clock
    on at once. Patch a module's `time` with it (`monkeypatch.setattr(module, "time", clock)`)."""

    def __init__(self):
        self.now = 1000.0

    def sleep(self, seconds):
        self.now += seconds

    def monotonic(self):
        return self.now

    perf_counter = time = monotonic


def write_folder(root, classes=("cat", "dog", "fox"), per_class=10, size=12):
    """A folder of `classes` with `per_class` square PNGs of `size` px each; returns `root`."""
    return write_image_folder(root, classes, per_class, shapes=((size, size),))
