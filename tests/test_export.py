import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import IMAGE_SIZE, digits, tiny_encoder
from PIL import Image

from kssl.data.evaluation_view import EvaluationView
from kssl.data.pipeline import labeled_batches
from kssl.export import export_saved_model
from kssl.models import Classifier


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
    with pytest.raises(tf.errors.InvalidArgumentError):
        signatures["predict_bytes"](image_bytes=tf.constant([b"not an image"]))
    after = signatures["predict_bytes"](image_bytes=tf.constant(encoded))["probabilities"].numpy()
    np.testing.assert_array_equal(after, as_bytes)  # a rejected request leaves the model as it was


def test_export_refuses_to_overwrite(exported):
    classifier, path, _ = exported
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(classifier, path)
    assert sorted(p.name for p in path.iterdir()) == before
