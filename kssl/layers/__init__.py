"""Layers used on top of encoders."""

from kssl.layers.heads import ProjectionHead

__all__ = ["ProjectionHead"]
