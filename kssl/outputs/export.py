"""Export a trained `Classifier`: a TensorFlow SavedModel for TF Serving, an ONNX file for
ONNX Runtime, or a LiteRT (TFLite) file for phones and edge devices, each written atomically.

The SavedModel:

Signatures (all images are RGB; pixel values 0-255; any height and width). Inside the
graph every image goes through `kssl.data.evaluation_view.EvaluationView`, the view kssl
measured accuracy on: its largest centred square, resized to the encoder's input size.

- `serving_default`: `images`, float32 `(batch, H, W, 3)` -> `probabilities` float32
  `(batch, classes)`, `class_id` int64 `(batch,)`, `class_name` string `(batch,)`.
- `predict_uint8`: `images`, uint8 `(batch, H, W, 3)` -> the same outputs.
- `predict_bytes`: `image_bytes`, string `(batch,)` of encoded JPEG/PNG/BMP/GIF -> the same.
- `embed`: `images`, float32 `(batch, H, W, 3)` -> `embedding` float32 `(batch, D)`,
  the L2-normalised encoder features, for retrieval.

The `_bytes` suffix is what makes TF Serving's REST API decode `{"b64": "..."}` values.
A string that is not an image fails that request with `InvalidArgumentError`; the
loaded model (and the server) carry on.
"""

from __future__ import annotations

import pathlib
import warnings

import keras
import numpy as np
import tensorflow as tf

from kssl import defaults
from kssl.data.evaluation_view import EvaluationView
from kssl.outputs.atomic import atomic_file, atomic_folder

# The suffix of each format's file (a SavedModel is a folder). ONNX and LiteRT go
# through Keras' `model.export`.
EXPORT_FORMATS = dict(zip(defaults.EXPORT_FORMATS, ("", ".onnx", ".tflite")))


def serving_functions(classifier):
    """The `tf.function`s exported as signatures, keyed by signature name."""
    view = EvaluationView(classifier.encoder.input_shape[1])
    names = classifier.class_names or [str(i) for i in range(classifier.num_classes)]
    class_names = tf.constant(names)

    any_size = (None, None, None, 3)
    size = view.image_size

    # One graph of the classifier that the three predicting signatures call (a function
    # call inside their graphs), instead of a trace of it in each: export took 5.7 s for
    # a tiny classifier, most of it tracing. No AutoGraph: kssl's graph code uses
    # TensorFlow's own control flow (see kssl.data.pipeline).
    @tf.function(input_signature=[tf.TensorSpec((None, size, size, 3), tf.uint8, name="views")], autograph=False)
    def predictions(views):
        logits = tf.cast(classifier(view.finish(views), training=False), tf.float32)
        probabilities = tf.nn.softmax(logits, axis=-1)
        class_id = tf.argmax(probabilities, axis=-1)
        return {"probabilities": probabilities, "class_id": class_id, "class_name": tf.gather(class_names, class_id)}

    @tf.function(input_signature=[tf.TensorSpec(any_size, tf.float32, name="images")], autograph=False)
    def serving_default(images):
        return predictions(view.crop(images))

    @tf.function(input_signature=[tf.TensorSpec(any_size, tf.uint8, name="images")], autograph=False)
    def predict_uint8(images):
        return predictions(view.crop(images))

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")], autograph=False)
    def predict_bytes(image_bytes):
        views = tf.map_fn(
            view.decode_and_crop, image_bytes, fn_output_signature=tf.TensorSpec((size, size, 3), tf.uint8)
        )
        return predictions(views)

    @tf.function(input_signature=[tf.TensorSpec(any_size, tf.float32, name="images")], autograph=False)
    def embed(images):
        features = tf.cast(classifier.encoder(view(images), training=False), tf.float32)
        return {"embedding": tf.math.l2_normalize(features, axis=-1)}

    return {
        "serving_default": serving_default,
        "predict_uint8": predict_uint8,
        "predict_bytes": predict_bytes,
        "embed": embed,
    }


def export_saved_model(classifier, path, overwrite: bool = False, model_name: str = "kssl") -> pathlib.Path:
    """Writes `classifier` as a SavedModel that plain TensorFlow (or TF Serving) loads without kssl.

    The model goes to a temporary folder beside `path` and is renamed into place, so an
    interrupted export leaves nothing half-written. An existing `path` is an error
    unless `overwrite=True`. For TF Serving, `path` should end in
    `<model-name>/<version>`, e.g. `saved_models/run/serving/kssl/1`. The folder holds
    TF Serving's warm-up requests for `model_name` (`warmup_requests`).

    Example (a fresh process needs only TensorFlow)::

        import tensorflow as tf
        model = tf.saved_model.load("saved_models/run/serving/kssl/1")
        outputs = model.signatures["serving_default"](images=tf.constant(images_0_255, tf.float32))
        outputs["class_name"]
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; choose another path or pass overwrite=True.")
    archive = keras.export.ExportArchive()
    archive.track(classifier)
    for name, function in serving_functions(classifier).items():
        archive.add_endpoint(name, function)
    with atomic_folder(path) as staging:
        archive.write_out(str(staging), verbose=False)
        write_warmup_requests(staging, classifier.encoder.input_shape[1], model_name)
    return path


# TF Serving runs these requests when it loads a version, before it serves it, so the
# first user request does not pay for the graph's first run (allocations, oneDNN's kernel
# choice): https://www.tensorflow.org/tfx/serving/saved_model_warmup
WARMUP_FILE = pathlib.Path("assets.extra") / "tf_serving_warmup_requests"
WARMUP_BATCH_SIZES = (1, 8)


def warmup_requests(image_size: int, model_name: str = "kssl") -> list:
    """TF Serving `PredictionLog`s: each signature of `serving_functions` at each batch size of
    `WARMUP_BATCH_SIZES`, on seeded noise images of the model's size (PNGs for `predict_bytes`)."""
    import io

    from PIL import Image
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    rng = np.random.default_rng(0)
    logs = []
    for batch in WARMUP_BATCH_SIZES:
        pixels = rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8)
        encoded = []
        for image in pixels:
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        inputs = {
            "serving_default": {"images": pixels.astype(np.float32)},
            "predict_uint8": {"images": pixels},
            "predict_bytes": {"image_bytes": np.asarray(encoded, dtype=object)},
            "embed": {"images": pixels.astype(np.float32)},
        }
        for signature, arrays in inputs.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            for key, array in arrays.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(folder, image_size: int, model_name: str = "kssl") -> pathlib.Path:
    """Writes `warmup_requests` as `folder/assets.extra/tf_serving_warmup_requests` (TFRecords)."""
    path = pathlib.Path(folder) / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in warmup_requests(image_size, model_name):
            writer.write(log.SerializeToString())
    return path


# An example of TF Serving's --batching_parameters_file: requests that arrive within 2 ms
# of each other run as one batch, padded up to the next allowed size (each size a graph
# run TF Serving keeps warm). Tune max_batch_size and the timeout to your traffic.
BATCHING_PARAMETERS = """\
# TF Serving batching (tensorflow_model_server --enable_batching --batching_parameters_file=THIS_FILE).
# Requests arriving within batch_timeout_micros run together, padded to the next allowed batch size;
# the last allowed size must equal max_batch_size. On a CPU, num_batch_threads = the number of cores.
# Requests batch together only if their images have the same height and width (no padding: zeros would
# move the centred square): send encoded images to predict_bytes (any sizes batch), or resize on the client.
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
max_enqueued_batches { value: 100 }
num_batch_threads { value: %d }
allowed_batch_sizes: 1
allowed_batch_sizes: 2
allowed_batch_sizes: 4
allowed_batch_sizes: 8
allowed_batch_sizes: 16
allowed_batch_sizes: 32
"""


def write_batching_parameters(root, overwrite: bool = False) -> pathlib.Path:
    """Writes the example `batching_parameters.txt` in the serving root `root` (beside the
    model folders), its thread count this machine's cores; an existing file is kept unless
    `overwrite` (it may be the user's own tuning)."""
    import os

    path = pathlib.Path(root) / "batching_parameters.txt"
    if path.exists() and not overwrite:
        return path
    with atomic_file(path, suffix=".txt") as tmp:
        tmp.write_text(BATCHING_PARAMETERS % (os.cpu_count() or 1))
    return path


class ProbabilitiesModel(keras.Model):
    """A Keras model of `classifier` for ONNX and LiteRT (`model.export` exports `call`): float32
    images `(batch, H, W, 3)` of pixel values 0-255, one size per batch, -> class
    probabilities `(batch, classes)`, with the evaluation view inside the graph
    (`EvaluationView`: the centred square, resampled with antialiasing, rounded to uint8 levels).
    """

    def __init__(self, classifier, **kwargs):
        super().__init__(name="probabilities", **kwargs)
        self.classifier = classifier
        self.view = EvaluationView(classifier.encoder.input_shape[1])

    def call(self, images):
        views = self.view(images)  # matrix products: builtin operations of ONNX and LiteRT too
        logits = tf.cast(self.classifier(views, training=False), tf.float32)
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}


def float32_copy(model):
    """`model` itself when every layer computes in float32, else a copy that does (the same
    weights; mixed-precision policies in its config replaced by float32): ONNX Runtime and
    LiteRT run no bfloat16 convolutions, and Keras' ONNX export asks for float32."""
    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers()):
        return model

    def as_float32(node, key=None):
        if isinstance(node, dict):
            name = node.get("config", {}).get("name") if node.get("class_name", "").endswith("DTypePolicy") else None
            if isinstance(name, str) and name.startswith("mixed_"):
                return {**node, "config": {**node["config"], "name": "float32"}}
            return {k: as_float32(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [as_float32(v) for v in node]
        return "float32" if key == "dtype" and isinstance(node, str) and node.startswith("mixed_") else node

    copy = keras.saving.deserialize_keras_object(as_float32(keras.saving.serialize_keras_object(model)))
    copy.set_weights(model.get_weights())
    return copy


def export_file(classifier, path, format: str, overwrite: bool = False) -> pathlib.Path:
    """Writes `classifier` as an ONNX (`format="onnx"`, a `.onnx` path) or LiteRT
    (`format="litert"`, a `.tflite` path) file through Keras' `model.export`, atomically.

    The file takes float32 `images` `(batch, H, W, 3)`, pixel values 0-255 (each batch of
    one size; any size), and gives `probabilities` `(batch, classes)`; the evaluation view
    is inside it, as in the SavedModel. It computes in float32: a classifier trained in
    mixed precision (bfloat16 on CPUs that have it) is exported as a float32 copy, whose
    probabilities differ from the SavedModel's by bfloat16's rounding. Class names are not in the file: they are the
    run's `config.json`/`metrics.json` classes, in the classifier's order
    (`classifier.class_names`). Needs tf2onnx for ONNX (`pip install tf2onnx`); LiteRT
    needs only TensorFlow to write, and `ai-edge-litert` (or TensorFlow) to run.

    Example (in the process that runs it, ONNX Runtime only)::

        import onnxruntime
        session = onnxruntime.InferenceSession("saved_models/run/serving/kssl-v1.onnx")
        probabilities = session.run(None, {"images": images_0_255.astype("float32")})[0]
    """
    suffix = EXPORT_FORMATS[format]
    path = pathlib.Path(path)
    if path.suffix != suffix:
        raise ValueError(f"A {format} file is named *{suffix}. Received: {str(path)!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; choose another path or pass overwrite=True.")
    model = ProbabilitiesModel(float32_copy(classifier))
    size = model.view.image_size
    model(tf.zeros((1, size, size, 3)))  # built: Keras exports built models only
    signature = [tf.TensorSpec((None, None, None, 3), tf.float32, name="images")]
    if format == "onnx":
        _teach_tf2onnx_erfc()
    with atomic_file(path, suffix=suffix) as tmp, warnings.catch_warnings():
        # Keras' own tf2onnx patch probes `np.object`, which NumPy 2 warns about: not ours to fix.
        warnings.filterwarnings("ignore", message=".*np.object.*", category=FutureWarning)
        model.export(str(tmp), format=format, input_signature=signature, verbose=False)
    return path


def _teach_tf2onnx_erfc() -> None:
    """Registers a tf2onnx converter for TensorFlow's `Erfc` as `1 - Erf(x)`.

    TensorFlow's exact GELU (kssl's ViTs) computes `0.5 * x * erfc(-x / sqrt(2))`; tf2onnx
    1.17 has no `Erfc` converter and writes the op as is, which ONNX Runtime then refuses
    ("No Op registered for Erfc"). ONNX has `Erf` from opset 9.
    """
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    if getattr(_teach_tf2onnx_erfc, "done", False):
        return

    @tf_op("Erfc")
    class Erfc:
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
            one = ctx.make_const(utils.make_name("one"), np.array(1, dtype=dtype)).output[0]
            erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=node.name, name="erf")
            output, shapes, dtypes = node.output[0], node.output_shapes, node.output_dtypes
            ctx.remove_node(node.name)
            ctx.make_node("Sub", [one, erf.output[0]], outputs=[output], name=node.name, shapes=shapes, dtypes=dtypes)

    _teach_tf2onnx_erfc.done = True
