"""Any Keras image model as the start: a head of probabilities cut, a feature map pooled, a
model of any input size built at the asked size with its weights; through the commands."""

import keras
import numpy as np
import pytest
from helpers import write_image_folder

from kssl.app.cli import main
from kssl.encoders.from_model import encoder_from_model
from kssl.errors import InputError

pytestmark = pytest.mark.eager_steps  # the commands' plumbing: see conftest


def any_size_classifier():
    """A tiny ImageNet-like model: preprocessing inside, any input size, a softmax head."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((None, None, 3), name="images")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="preprocessing")(inputs)
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="stem_conv")(x)
    features = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(0.2, name="top_dropout")(features)
    outputs = keras.layers.Dense(7, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny_imagenet")


def test_a_probability_head_is_cut_and_the_model_is_built_at_the_asked_size_with_its_weights(rng):
    model = any_size_classifier()
    encoder, notes = encoder_from_model(model, image_size=12)
    assert encoder.input_shape == (None, 12, 12, 3) and encoder.output_shape == (None, 6)
    assert notes == ["cut its classification head (predictions: 7 classes, softmax)",
                     "built at 12 px (it takes images of any size)"]  # fmt: skip
    images = rng.random((2, 12, 12, 3)).astype("float32")
    pooled = keras.Model(model.input, model.get_layer("avg_pool").output)(images)
    np.testing.assert_allclose(encoder(images), pooled, atol=1e-6)
    assert [layer.name for layer in encoder.layers][:3] == ["images", "preprocessing", "stem_conv"]  # flat


def test_a_feature_map_is_pooled_and_sizes_are_checked(rng):
    backbone = keras.Sequential([keras.Input((10, 10, 3)), keras.layers.Conv2D(5, 3)], name="backbone")
    encoder, notes = encoder_from_model(backbone)
    assert encoder.output_shape == (None, 5) and notes == ["pooled its 8x8x5 feature map (global average)"]
    images = rng.random((1, 10, 10, 3)).astype("float32")
    np.testing.assert_allclose(encoder(images), np.mean(backbone(images), axis=(1, 2)), atol=1e-6)
    with pytest.raises(InputError, match="takes 10-px images"):
        encoder_from_model(backbone, image_size=12)
    with pytest.raises(InputError, match="takes images of any size: pass --image-size"):
        encoder_from_model(any_size_classifier())
    with pytest.raises(InputError, match="not RGB images"):
        encoder_from_model(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))


def test_the_commands_start_from_a_model_file_of_any_size(tmp_path, capsys):
    start = tmp_path / "imagenet.keras"
    any_size_classifier().save(start)
    data = write_image_folder(tmp_path / "photos" / "train", classes=("a", "b"), per_class=8, shapes=((20, 24),))
    write_image_folder(tmp_path / "photos" / "test", classes=("a", "b"), per_class=4, shapes=((20, 24),), seed=1)
    assert data.parent.name == "photos"
    assert main(["evaluate", "--pretrained", str(start), "--data", str(data.parent), "--image-size", "12"]) == 0
    printed = capsys.readouterr().out
    assert "image size: 12 px (as asked" in printed and "cut its classification head" in printed
    assert "knn_accuracy" in printed and "pretraining" not in printed
    out = tmp_path / "adapted"
    assert main(["pretrain", "--encoder", str(start), "--data", str(data.parent), "--image-size", "12",
                 "--epochs", "1", "--batch-size", "8", "--out", str(out)]) == 0  # fmt: skip
    adapted = keras.saving.load_model(out / "encoder.keras")
    assert adapted.input_shape == (None, 12, 12, 3) and adapted.output_shape == (None, 6)
    capsys.readouterr()
    assert main(["evaluate", "--pretrained", str(out), "--data", str(data.parent)]) == 0
    assert "image size: 12 px (from the encoder file (encoder.keras))" in capsys.readouterr().out
    assert main(["evaluate", "--pretrained", str(start), "--data", str(data.parent)]) == 0  # at the data's size
    assert "image size: 20 px (" in capsys.readouterr().out  # the data's default, as for kssl's encoders


def test_embed_and_similar_take_a_model_of_any_size_at_the_asked_size(tmp_path, capsys):
    import shutil

    start = tmp_path / "imagenet.keras"
    any_size_classifier().save(start)
    photos = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=3, shapes=((20, 24),))
    out = tmp_path / "e.npz"
    assert main(["embed", "--pretrained", str(start), "--data", str(photos), "--out", str(out)]) == 2
    assert "takes images of any size: pass --image-size" in capsys.readouterr().err
    assert (
        main(["embed", "--pretrained", str(start), "--data", str(photos), "--out", str(out), "--image-size", "12"]) == 0
    )
    query = tmp_path / "query.png"  # not in the file: embedded by its model at the recorded size
    shutil.copy(photos / "b" / "00004.png", query)
    assert main(["similar", "--embeddings", str(out), "--query", str(query), "--top", "1",
                 "--out", str(tmp_path / "s.png")]) == 0  # fmt: skip
    first = capsys.readouterr().out.splitlines()[-2].split()
    assert float(first[1]) > 0.9999 and first[2].endswith("b/00004.png")


def test_a_keras_hub_preset_folder_is_a_start_offline(tmp_path, capsys, rng):
    keras_hub = pytest.importorskip("keras_hub", reason="keras-hub is an optional extra (pip install keras-hub)")
    from kssl.encoders import build_encoder

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64],
        stackwise_num_blocks=[1],
        stackwise_num_strides=[1],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    )  # the smallest ResNet keras-hub builds
    preset = tmp_path / "preset"
    backbone.save_to_preset(str(preset))
    converter = keras_hub.layers.ResNetImageConverter(image_size=None, scale=1 / 255.0, offset=None)
    converter.save_to_preset(str(preset))
    encoder = build_encoder(f"keras_hub:{preset}", image_size=12)
    images = rng.random((2, 12, 12, 3)).astype("float32")
    expected = np.mean(backbone(converter(images * 255.0)), axis=(1, 2))  # kssl's [0, 1] -> 0-255 -> converter
    np.testing.assert_allclose(encoder(images), expected, atol=1e-5)
    data = write_image_folder(tmp_path / "photos", classes=("a", "b"), per_class=6, shapes=((12, 12),))
    out = tmp_path / "adapted"
    assert main(["pretrain", "--encoder", f"keras_hub:{preset}", "--data", str(data), "--image-size", "12",
                 "--epochs", "1", "--batch-size", "8", "--out", str(out)]) == 0  # fmt: skip
    assert main(["evaluate", "--pretrained", str(out), "--data", str(data)]) == 0  # loads its keras-hub layers
    assert "knn_accuracy" in capsys.readouterr().out
    assert main(["pretrain", "--encoder", "keras_hub:/no/such/preset", "--data", str(data), "--image-size", "12",
                 "--out", str(tmp_path / "x")]) == 2  # fmt: skip
    assert "keras-hub could not load the preset" in capsys.readouterr().err
