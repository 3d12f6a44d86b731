from helpers import tiny_resnet

from kssl.encoders import vit
from kssl.finetuning.stages import encoder_stages, stage_end_layers, stage_of


def test_stage_names_of_kssl_and_keras_applications_families():
    assert stage_of("conv3_block2_1_conv") == 3  # ResNet / ResNetV2
    assert stage_of("block5c_project_bn") == 5  # EfficientNet / V2
    assert stage_of("convnext_tiny_stage_2_block_1_depthwise_conv") == 2
    assert stage_of("expanded_conv_7_project") == 7  # MobileNetV3
    assert stage_of("post_bn") is None and stage_of("stem_conv") is None


def test_stages_and_their_last_layers():
    encoder = tiny_resnet()
    assert encoder_stages(encoder) == [1, 2, 3, 4]
    assert stage_end_layers(encoder) == {n: f"stage{n}_block1_out" for n in (1, 2, 3, 4)}
    assert encoder_stages(vit(3, width=0.125, image_size=16)) == [1, 2, 3]
