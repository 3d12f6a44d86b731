"""Conv-4: its feature size, resolution-agnostic blocks, stages that stage-wise modes find,
a `.keras` round trip, and clear errors."""

import numpy as np
import pytest

from kssl.encoders import build_encoder, conv4
from kssl.errors import InputError
from kssl.finetuning.stages import encoder_stages
from kssl.models import Classifier


@pytest.mark.parametrize(("width", "size", "features"), [(0.125, 8, 8), (0.5, 16, 32), (1.0, 33, 64)])
def test_feature_size_follows_the_width_at_any_image_size(width, size, features):
    encoder = conv4(width=width, image_size=size)
    assert encoder.output_shape == (None, features)
    assert encoder(np.zeros((2, size, size, 3), "float32")).shape == (2, features)
    # Four blocks, each halving the resolution (rounding up) with a 2x2 max-pool.
    assert encoder.get_layer("stage4_pool").output.shape[1] == max(1, -(-size // 16))


def test_its_four_blocks_are_stages_for_the_stage_wise_modes(rng):
    encoder = conv4(width=0.125, image_size=8)
    assert encoder_stages(encoder) == [1, 2, 3, 4]
    classifier = Classifier(encoder, num_classes=3, mode="partial", trainable_stages=1)
    assert {v.path.split("/")[0] for v in classifier.encoder.trainable_weights} == {
        "stage4_block1_1_conv",
        "stage4_block1_1_bn",
    }


def test_a_keras_round_trip_keeps_its_outputs(tmp_path, rng):
    import keras

    encoder = conv4(width=0.125, image_size=8)
    images = rng.random((2, 8, 8, 3)).astype("float32")
    encoder.save(tmp_path / "conv4.keras")
    restored = keras.saving.load_model(tmp_path / "conv4.keras")
    np.testing.assert_array_equal(restored(images), encoder(images))
    assert [v.path for v in restored.weights] == [v.path for v in encoder.weights]


def test_bad_sizes_are_clear_errors():
    with pytest.raises(InputError, match="Cannot build conv4 at image size 7"):
        build_encoder("conv4", image_size=7)
    with pytest.raises(ValueError, match="Received: width=0"):
        conv4(width=0)
