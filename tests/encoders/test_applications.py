import keras
import numpy as np
import pytest
from helpers import digits

from kssl.encoders import build_encoder
from kssl.encoders.applications import from_keras_applications
from kssl.errors import InputError
from kssl.finetuning.stages import encoder_stages
from kssl.models import Classifier

IMAGES = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    """A weights file as a user would save it (no download: made here, offline)."""
    keras.utils.set_random_seed(7)
    backbone = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg"
    )
    path = tmp_path_factory.mktemp("weights") / "mobilenet_v3_small.weights.h5"
    backbone.save_weights(path)
    return path, backbone


def test_a_locally_saved_weights_file_loads_and_changes_the_features(weights_file):
    path, backbone = weights_file
    fresh = build_encoder("keras:MobileNetV3Small", image_size=32)
    loaded = build_encoder("keras:MobileNetV3Small", image_size=32, weights=str(path))
    # MobileNetV3 normalises inside the model: it takes 0-255, kssl encoders take [0, 1].
    expected = np.asarray(backbone(IMAGES * 255))
    np.testing.assert_allclose(loaded(IMAGES), expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    assert np.abs(np.asarray(fresh(IMAGES)) - expected).max() > 0.1 * np.abs(expected).max()


def test_each_family_gets_its_own_preprocessing_inside_the_encoder():
    keras.utils.set_random_seed(1)
    encoder = from_keras_applications("ResNet50V2", image_size=32)
    backbone = keras.applications.ResNet50V2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    backbone.set_weights(encoder.get_weights())
    np.testing.assert_allclose(encoder(IMAGES), backbone(IMAGES * 2 - 1), atol=1e-5)  # ResNetV2 takes [-1, 1]


def test_offline_imagenet_failure_says_where_to_put_the_file(monkeypatch):
    def offline(fname, origin=None, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: None -- [Errno -2] Name or service not known")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(InputError) as error:
        from_keras_applications("ResNet50V2", weights="imagenet", image_size=32)
    message = str(error.value)
    assert "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert ".keras/models" in message and "--weights PATH" in message


def test_bad_backbones_and_weights_are_clear_errors(weights_file, tmp_path):
    with pytest.raises(InputError, match="Did you mean 'ResNet50V2'"):
        build_encoder("keras:resnet50v2")
    with pytest.raises(InputError, match="No weights file"):
        build_encoder("keras:MobileNetV3Small", image_size=32, weights=str(tmp_path / "missing.h5"))
    with pytest.raises(InputError, match="do not fit keras.applications.EfficientNetB0"):
        build_encoder("keras:EfficientNetB0", image_size=32, weights=str(weights_file[0]))
    with pytest.raises(InputError, match="--weights applies to keras.applications"):
        build_encoder("resnet18", weights="imagenet")


@pytest.mark.eager_steps
def test_partial_mode_and_a_momentum_method_continue_from_a_keras_backbone(weights_file):
    from kssl.training import pretrain

    encoder = build_encoder("keras:MobileNetV3Small", image_size=32, weights=str(weights_file[0]))
    assert len(encoder_stages(encoder)) >= 10  # MobileNetV3's blocks
    classifier = Classifier(encoder, num_classes=3, mode="partial", trainable_stages=2)
    trained = {v.path.split("/")[0] for v in classifier.encoder.trainable_weights}
    assert trained and all(name.startswith(("expanded_conv_9", "expanded_conv_10")) for name in trained)
    images = digits(image_size=32).subset(range(16))
    # BYOL: its target network is a clone of the backbone, the hardest case for a
    # keras.applications model (plain methods train the encoder as it is).
    for method in ("byol",):
        start = build_encoder("keras:MobileNetV3Small", image_size=32, weights=str(weights_file[0]))
        before = start.get_layer("conv").get_weights()[0].copy()
        model, _ = pretrain(images, start, epochs=1, batch_size=8, method=method, verbose=0)
        assert model.optimizer.iterations.numpy() == 2
        assert not np.array_equal(model.encoder.get_layer("conv").get_weights()[0], before)
