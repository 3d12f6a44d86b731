"""Export a trained `Classifier` as a TensorFlow SavedModel for TF Serving, written atomically.

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

from kssl.atomic import atomic_folder


def serving_functions(classifier):
    """The `tf.function`s exported as signatures, keyed by signature name."""
    import tensorflow as tf

    from kssl.data.evaluation_view import EvaluationView

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


def export_saved_model(classifier, path, overwrite: bool = False) -> pathlib.Path:
    """Writes `classifier` as a SavedModel that plain TensorFlow (or TF Serving) loads without kssl.

    The model goes to a temporary folder beside `path` and is renamed into place, so an
    interrupted export leaves nothing half-written. An existing `path` is an error
    unless `overwrite=True`. For TF Serving, `path` should end in
    `<model-name>/<version>`, e.g. `saved_models/run/serving/kssl/1`.

    Example (a fresh process needs only TensorFlow)::

        import tensorflow as tf
        model = tf.saved_model.load("saved_models/run/serving/kssl/1")
        outputs = model.signatures["serving_default"](images=tf.constant(images_0_255, tf.float32))
        outputs["class_name"]
    """
    import keras

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; choose another path or pass overwrite=True.")
    archive = keras.export.ExportArchive()
    archive.track(classifier)
    for name, function in serving_functions(classifier).items():
        archive.add_endpoint(name, function)
    with atomic_folder(path) as staging:
        archive.write_out(str(staging), verbose=False)
    return path
