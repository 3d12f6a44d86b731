import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import IMAGE_SIZE, digits, tiny_encoder
from PIL import Image

from kssl.data.evaluation_view import EvaluationView
from kssl.data.pipeline import labeled_batches
from kssl.models import Classifier
from kssl.outputs.export import export_saved_model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    labeled = digits().subset(range(128))
    classifier = Classifier(tiny_encoder(), num_classes=10, mode="full", class_names=[f"digit{i}" for i in range(10)])
    classifier.compile(optimizer=keras.optimizers.Adam(1e-2))
    classifier.fit(labeled_batches(labeled, 32, training=True, repeat=True), epochs=1, steps_per_epoch=3, verbose=0)
    path = export_saved_model(classifier, tmp_path_factory.mktemp("export") / "serving" / "kssl" / "1")
    return classifier, path, labeled.images[:6]


def keras_reference(classifier, images_0_255):
    views = EvaluationView(IMAGE_SIZE)(images_0_255)  # what evaluation measures on
    logits = classifier.predict(views, verbose=0)
    features = classifier.encoder.predict(views, verbose=0)
    return tf.nn.softmax(logits).numpy(), features / np.linalg.norm(features, axis=1, keepdims=True)


def test_saved_model_cli_lists_every_signature_with_dtypes_and_shapes(exported, capsys):
    _, path, _ = exported
    # What `saved_model_cli show --dir PATH --all` prints, by the function that command
    # calls (TensorFlow's private `_show_all`), in this process: a subprocess would spend
    # seconds importing TensorFlow again.
    from tensorflow.python.tools import saved_model_cli

    saved_model_cli._show_all(str(path))
    text = capsys.readouterr().out
    for name in ("serving_default", "predict_uint8", "predict_bytes", "embed"):
        assert f"signature_def['{name}']" in text
    block = text.split("signature_def['predict_bytes']")[1].split("signature_def[")[0]
    assert "inputs['image_bytes'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)" in block
    block = text.split("signature_def['serving_default']")[1].split("signature_def[")[0]
    assert "dtype: DT_FLOAT\n        shape: (-1, -1, -1, 3)" in block
    assert "outputs['class_name'] tensor_info:\n        dtype: DT_STRING" in block
    assert "outputs['class_id'] tensor_info:\n        dtype: DT_INT64" in block


def test_the_saved_model_predicts_like_keras_and_rejects_malformed_bytes(exported):
    # Here in the test process; that a fresh process with TensorFlow alone serves the same
    # (and that `import kssl` then loads its .keras files) is test_served_equals_measured's.
    classifier, path, images = exported
    wide = tf.cast(tf.image.resize(images, (24, 40)), tf.uint8).numpy()  # any shape: the centred square in the graph
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    signatures = tf.saved_model.load(str(path)).signatures
    default = signatures["serving_default"](images=tf.constant(images, tf.float32))
    as_bytes = signatures["predict_bytes"](image_bytes=tf.constant(encoded))["probabilities"].numpy()
    probabilities, embedding = keras_reference(classifier, images)
    np.testing.assert_allclose(default["probabilities"], probabilities, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(as_bytes, probabilities, rtol=1e-4, atol=1e-6)
    as_uint8 = signatures["predict_uint8"](images=tf.constant(wide))["probabilities"]
    np.testing.assert_allclose(as_uint8, keras_reference(classifier, wide)[0], rtol=1e-4, atol=1e-6)
    embed = signatures["embed"](images=tf.constant(images, tf.float32))["embedding"]
    np.testing.assert_allclose(embed, embedding, rtol=1e-4, atol=1e-6)
    assert list(default["class_id"].numpy()) == list(probabilities.argmax(1))
    assert list(default["class_name"].numpy().astype(str)) == [f"digit{i}" for i in probabilities.argmax(1)]
    for bad in (b"not an image", b"", encoded[0][:40], b"\xff\xd8\xff" + bytes(30)):  # cut short, a bare header
        with pytest.raises(tf.errors.InvalidArgumentError):  # one request fails, with TensorFlow's message
            signatures["predict_bytes"](image_bytes=tf.constant([encoded[1], bad]))
    after = signatures["predict_bytes"](image_bytes=tf.constant(encoded))["probabilities"].numpy()
    np.testing.assert_array_equal(after, as_bytes)  # a rejected request leaves the model as it was


def test_export_refuses_to_overwrite(exported):
    classifier, path, _ = exported
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(classifier, path)
    assert sorted(p.name for p in path.iterdir()) == before


def test_tf_serving_warmup_requests_parse_and_run_against_the_saved_model(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    from kssl.outputs.export import WARMUP_BATCH_SIZES, WARMUP_FILE

    _, path, _ = exported
    signatures = tf.saved_model.load(str(path)).signatures
    seen = []
    for record in tf.data.TFRecordDataset(str(path / WARMUP_FILE)):
        request = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log.request
        assert request.model_spec.name == "kssl"
        inputs = {key: tf.make_ndarray(tensor) for key, tensor in request.inputs.items()}
        outputs = signatures[request.model_spec.signature_name](**{k: tf.constant(v) for k, v in inputs.items()})
        batch = len(next(iter(inputs.values())))
        assert all(value.shape[0] == batch for value in outputs.values())
        seen.append((request.model_spec.signature_name, batch))
    assert sorted(seen) == sorted((name, batch) for name in signatures for batch in WARMUP_BATCH_SIZES)


def _classifier(kind):
    from helpers import tiny_resnet

    from kssl.encoders import vit

    if kind == "vit":
        return Classifier(vit(depth=1, width=1 / 12, image_size=16), num_classes=3, mode="linear")
    if kind == "resnet-bfloat16":  # as `kssl run` trains on CPUs with AVX512-BF16
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # conftest sets float32 back
    classifier = Classifier(tiny_resnet(16), num_classes=3, mode="lora" if kind == "lora" else "full")
    for weight in classifier.weights:  # weights away from their start (LoRA's B factors start at 0)
        weight.assign(weight + tf.random.stateless_normal(weight.shape, (1, 2), stddev=0.05, dtype=weight.dtype))
    return classifier.merged() if kind == "lora" else classifier


# A ResNet trained in mixed precision (its LoRA-merged copy is a ResNet in float32): the
# files compute in float32 (ONNX Runtime has no bfloat16 convolution), and match the
# SavedModel of its float32 copy.
@pytest.mark.parametrize("kind", ["resnet-bfloat16", "vit", "lora"])
def test_onnx_and_litert_files_give_the_saved_models_probabilities(kind, tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the test extra installs ONNX Runtime")
    litert = pytest.importorskip("ai_edge_litert.interpreter", reason="the test extra installs LiteRT")
    from kssl.outputs.export import export_file, float32_copy, serving_functions

    classifier = _classifier(kind)
    keras.mixed_precision.set_global_policy("float32")
    assert kind != "lora" or not any("lora" in w.path for w in classifier.weights)
    assert (classifier.encoder.dtype_policy.name == "mixed_bfloat16") == (kind == "resnet-bfloat16")
    rng = np.random.default_rng(0)
    served = serving_functions(float32_copy(classifier))["serving_default"]  # what the SavedModel computes
    onnx = onnxruntime.InferenceSession(str(export_file(classifier, tmp_path / "m.onnx", "onnx")))
    lite = litert.Interpreter(model_path=str(export_file(classifier, tmp_path / "m.tflite", "litert")))
    for shape in ((3, 20, 29, 3), (2, 31, 18, 3), (1, 16, 16, 3)):  # wide, tall, the model's own size
        images = rng.integers(0, 256, shape).astype("float32")
        expected = served(images=tf.constant(images))["probabilities"].numpy()
        from_onnx = onnx.run(["probabilities"], {"images": images})[0]
        from_litert = lite.get_signature_runner()(images=images)["probabilities"]
        np.testing.assert_allclose(from_onnx, expected, atol=1e-4, err_msg=f"onnx {shape}")
        np.testing.assert_allclose(from_litert, expected, atol=1e-4, err_msg=f"litert {shape}")
    assert expected.std() > 1e-3  # the classes differ: a constant output would pass the comparison
