import io
import subprocess
import sys
import textwrap

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


def test_fresh_process_with_only_tensorflow_predicts_like_keras_and_plain_import_kssl_loads_its_keras_files(
    exported, tmp_path
):
    classifier, path, images = exported
    keras_files = [str(tmp_path / "classifier.keras"), str(tmp_path / "encoder.keras")]
    classifier.save(keras_files[0])
    classifier.encoder.save(keras_files[1])
    wide = tf.cast(tf.image.resize(images, (24, 40)), tf.uint8).numpy()  # any shape: the centred square in the graph
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    np.savez(tmp_path / "inputs.npz", images=images, large=wide, encoded=np.array(encoded, dtype=object))
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import tensorflow as tf
        inputs = np.load({str(tmp_path / "inputs.npz")!r}, allow_pickle=True)
        model = tf.saved_model.load({str(path)!r})
        sig = model.signatures
        out = {{}}
        default = sig["serving_default"](images=tf.constant(inputs["images"], tf.float32))
        out["default"] = default["probabilities"].numpy()
        out["names"] = default["class_name"].numpy().astype(str)
        out["ids"] = default["class_id"].numpy()
        out["uint8"] = sig["predict_uint8"](images=tf.constant(inputs["large"]))["probabilities"].numpy()
        good = tf.constant(list(inputs["encoded"]))
        out["bytes"] = sig["predict_bytes"](image_bytes=good)["probabilities"].numpy()
        out["embed"] = sig["embed"](images=tf.constant(inputs["images"], tf.float32))["embedding"].numpy()
        try:
            sig["predict_bytes"](image_bytes=tf.constant([b"not an image"]))
            out["malformed"] = "accepted"
        except tf.errors.InvalidArgumentError:
            out["malformed"] = "rejected"
        out["after"] = sig["predict_bytes"](image_bytes=good)["probabilities"].numpy()
        out["kssl_imported"] = any(m.startswith("kssl") for m in sys.modules)
        # Then, in the same process, `import kssl` alone is enough to load its .keras files
        # (its classes register themselves with Keras; no kssl.models import needed).
        import kssl, keras
        out["loaded"] = [type(keras.saving.load_model(p)).__name__ for p in {keras_files!r}]
        np.savez({str(tmp_path / "out.npz")!r}, **out)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    probabilities, embedding = keras_reference(classifier, images)
    np.testing.assert_allclose(out["default"], probabilities, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["bytes"], probabilities, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["uint8"], keras_reference(classifier, wide)[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["embed"], embedding, rtol=1e-4, atol=1e-6)
    assert list(out["ids"]) == list(probabilities.argmax(1))
    assert list(out["names"]) == [f"digit{i}" for i in probabilities.argmax(1)]
    assert str(out["malformed"]) == "rejected"
    np.testing.assert_array_equal(out["after"], out["bytes"])
    assert not bool(out["kssl_imported"])
    assert list(out["loaded"]) == ["Classifier", "Functional"]


def test_export_refuses_to_overwrite(exported):
    classifier, path, _ = exported
    before = sorted(p.name for p in path.iterdir())
    with pytest.raises(FileExistsError, match="already exists"):
        export_saved_model(classifier, path)
    assert sorted(p.name for p in path.iterdir()) == before
