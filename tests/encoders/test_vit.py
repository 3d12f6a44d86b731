"""ViT encoders: shapes, patch sizes, names, and use wherever kssl takes an encoder."""

import numpy as np
import pytest
from helpers import digits

from kssl.encoders import build_encoder, vit
from kssl.errors import InputError


def test_features_are_the_token_width_and_patches_tile_the_image():
    encoder = vit(depth=2, width=0.25, image_size=32)
    assert encoder.output_shape == (None, 192)
    assert encoder.get_layer("patch_embedding").patch_size == 4  # an 8 x 8 grid at 32 px
    assert encoder(np.zeros((2, 32, 32, 3), "float32")).shape == (2, 192)
    assert [layer.name for layer in encoder.layers if layer.name.startswith("stage")] == [
        "stage1_block",
        "stage2_block",
    ]


def test_a_patch_size_that_does_not_divide_the_image_is_refused_with_the_choices():
    with pytest.raises(InputError, match=r"patch size 5 does not divide the image size 32.*\[2, 4, 8, 16\]"):
        vit(image_size=32, patch_size=5)


def test_build_encoder_knows_vits_and_lists_them_for_unknown_names():
    assert build_encoder("ViT3", image_size=16, width=1 / 12).name == "vit3_w0.0833333_p2"
    with pytest.raises(InputError, match="resnet18, resnet34, resnet50, vit<depth>"):
        build_encoder("vit")


def test_vit_serves_as_a_classifier_encoder_frozen_or_partly_unfrozen():
    from numpy_references import numpy_weighted_knn_accuracy

    from kssl.evaluation.features import evaluate_encoder, extract_features
    from kssl.models import Classifier

    encoder = vit(depth=2, width=1 / 12, image_size=16)
    partial = Classifier(encoder, num_classes=10, mode="partial", trainable_stages=1)
    trainable = {w.path.split("/")[0] for w in partial.encoder.trainable_weights}
    assert trainable == {"stage2_block"}
    data = digits().subset(range(60))
    scores = evaluate_encoder(encoder, data, data, k=5)
    features = extract_features(encoder, data)
    assert features.shape == (60, 64) and features.std(axis=0).min() > 0  # no dead feature
    expected = numpy_weighted_knn_accuracy(features, data.labels, features, data.labels, k=5)
    assert scores["knn_accuracy"] == pytest.approx(expected)
    assert scores["linear_accuracy"] >= 0.9  # 60 images in 64 varied dimensions: nearly separable (chance 0.1)


def test_a_vit_classifier_exports_a_saved_model_that_predicts_like_keras(tmp_path):
    import tensorflow as tf

    from kssl.models import Classifier
    from kssl.outputs.export import export_saved_model

    classifier = Classifier(vit(depth=1, width=1 / 12, image_size=16), num_classes=10, mode="linear")
    path = export_saved_model(classifier, tmp_path / "serving" / "kssl" / "1")
    images = digits().images[:4]
    served = tf.saved_model.load(str(path)).signatures["serving_default"](images=tf.cast(images, tf.float32))
    expected = tf.nn.softmax(classifier.predict(images.astype("float32") / 255.0, verbose=0)).numpy()
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-4, atol=1e-5)
