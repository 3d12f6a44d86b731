"""Keras models: SimCLR pretraining and classification on top of an encoder."""

from kssl.models.classifier import Classifier
from kssl.models.simclr import SimCLR

__all__ = ["Classifier", "SimCLR"]
