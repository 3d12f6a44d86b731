"""ResNet encoders: feature sizes, stems, per-stage widths, and clear errors."""

import numpy as np
import pytest

from kssl.encoders import build_encoder, resnet


def _conv_filters(encoder, prefix):
    return {layer.filters for layer in encoder.layers if layer.name.startswith(prefix) and hasattr(layer, "filters")}


@pytest.mark.parametrize(
    ("depth", "width", "features"), [(10, 0.125, 64), (18, 0.125, 64), (34, 0.125, 64), (50, 0.125, 256)]
)
def test_feature_size_follows_depth_and_width(depth, width, features):
    encoder = resnet(depth, width=width, image_size=16)
    assert encoder.output_shape == (None, features)
    assert encoder(np.zeros((2, 16, 16, 3), "float32")).shape == (2, features)


@pytest.mark.parametrize(("depth", "blocks"), [(10, 1), (18, 2)])
def test_each_stage_has_the_depths_number_of_basic_blocks(depth, blocks):
    names = {layer.name.split("_")[1] for layer in resnet(depth, width=0.125, image_size=8).layers if
             layer.name.startswith("stage")}  # fmt: skip
    assert names == {f"block{i + 1}" for i in range(blocks)}


def test_cifar_stem_keeps_resolution_and_imagenet_stem_downsamples_four_times():
    cifar = resnet(18, width=0.125, image_size=32, stem="cifar")
    imagenet = resnet(18, width=0.125, image_size=32, stem="imagenet")
    assert cifar.get_layer("stage1_block1_1_conv").output.shape[1] == 32
    assert imagenet.get_layer("stage1_block1_1_conv").output.shape[1] == 8
    assert resnet(18, width=0.125, image_size=96).get_layer("stem_pool") is not None  # "auto" above 64 px


def test_stage_widths_set_each_stage_and_the_feature_size():
    encoder = resnet(18, image_size=16, stage_widths=(8, 16, 24, 40))
    assert encoder.output_shape == (None, 40)
    assert _conv_filters(encoder, "stem") == {8}
    for stage, filters in enumerate((8, 16, 24, 40), start=1):
        assert _conv_filters(encoder, f"stage{stage}_") == {filters}
    assert encoder.name == "resnet18_8-16-24-40"
    bottleneck = resnet(50, image_size=16, stage_widths=(8, 8, 8, 16))
    assert bottleneck.output_shape == (None, 64)


def test_stage_widths_default_matches_the_width_multiplier():
    by_width = resnet(18, width=0.25, image_size=16)
    by_stages = resnet(18, image_size=16, stage_widths=(16, 32, 64, 128))
    assert [w.shape for w in by_width.weights] == [w.shape for w in by_stages.weights]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(depth=20), "depth must be one of"),
        (dict(width=0), "width must be a positive"),
        (dict(image_size=4), "image_size must be at least 8"),
        (dict(stem="vit"), "stem must be"),
        (dict(stage_widths=(8, 16, 32)), "four positive integers"),
        (dict(stage_widths=(8, 16, 32, 0)), "four positive integers"),
        (dict(stage_widths=(8, 16, 32, 4.5)), "four positive integers"),
    ],
)
def test_bad_arguments_name_the_problem(kwargs, message):
    kwargs = dict(dict(depth=18, width=0.125, image_size=16), **kwargs)
    with pytest.raises(ValueError, match=message):
        resnet(**kwargs)


def test_build_encoder_by_name_and_unknown_names():
    assert build_encoder("ResNet18", image_size=16, width=0.125).output_shape == (None, 64)
    with pytest.raises(ValueError, match="Available encoders: conv4, resnet10, resnet18, resnet34, resnet50"):
        build_encoder("vgg16")
