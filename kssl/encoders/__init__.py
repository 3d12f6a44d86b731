"""Image encoders: models mapping images to one feature vector each."""

from kssl.encoders.resnet import ENCODER_NAMES, build_encoder, resnet

__all__ = ["ENCODER_NAMES", "build_encoder", "resnet"]
