"""Small builders shared by the tests: tiny encoders and tiny real data."""

import numpy as np
import tensorflow as tf

from kssl.data.sources import load_digits
from kssl.encoders import resnet

IMAGE_SIZE = 16


def tiny_encoder(image_size=IMAGE_SIZE, depth=18):
    return resnet(depth, width=0.125, image_size=image_size, stem="cifar")


def digits(split="train", image_size=IMAGE_SIZE):
    return load_digits(image_size=image_size, split=split)


def all_weights(model):
    """Every variable's value (trainable and not, e.g. batch-norm moving statistics) by path."""
    return {v.path: np.array(v.numpy()) for v in model.weights}


# One strategy object per test process: collective-op keys are allocated per strategy,
# and a second MirroredStrategy over the same devices collides with the first one's keys.
_MIRRORED = []


def two_replicas():
    """The process's MirroredStrategy over the two logical CPUs that conftest creates."""
    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]
