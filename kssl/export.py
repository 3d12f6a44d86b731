"""Export a trained `Classifier` as a TensorFlow SavedModel, written atomically."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile


def export_saved_model(classifier, path, overwrite: bool = False) -> pathlib.Path:
    """Writes `classifier` as a SavedModel that plain TensorFlow loads without kssl.

    The `serving_default` (and `serve`) signature takes `images`, float32
    `(batch, S, S, 3)` in [0, 1] at the encoder's input size, and returns
    `probabilities`, `(batch, num_classes)` float32 softmax outputs.

    The model is written to a temporary folder beside `path` and renamed into place,
    so an interrupted export leaves nothing half-written. An existing `path` is an
    error unless `overwrite=True`.

    Example (a fresh process needs only TensorFlow)::

        import tensorflow as tf
        model = tf.saved_model.load("saved_models/run/serving/1")
        probabilities = model.signatures["serving_default"](images=images)["probabilities"]
    """
    import keras
    import tensorflow as tf

    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; choose another path or pass overwrite=True.")
    size = classifier.encoder.input_shape[1:]

    @tf.function(input_signature=[tf.TensorSpec((None, *size), tf.float32, name="images")])
    def serve(images):
        logits = tf.cast(classifier(images, training=False), tf.float32)
        return {"probabilities": tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint("serve", serve)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        archive.write_out(str(staging), verbose=False)
        if path.exists():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return path
