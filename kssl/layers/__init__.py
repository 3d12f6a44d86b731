"""Layers used on top of encoders."""

from kssl.layers.batch_norm import FusedBatchNormalization
from kssl.layers.heads import ProjectionHead

__all__ = ["FusedBatchNormalization", "ProjectionHead"]
