"""kssl's layers: fused batch norm, heads (DINO's prototypes too), DINO's centre, adapters, and the
vision-transformer parts."""

from kssl.layers.adapter import ResidualAdapter
from kssl.layers.batch_norm import FusedBatchNormalization
from kssl.layers.centre import Centre
from kssl.layers.heads import DINOHead, ProjectionHead, Prototypes
from kssl.layers.transformer import PatchEmbedding, TransformerBlock

__all__ = [
    "Centre",
    "DINOHead",
    "FusedBatchNormalization",
    "PatchEmbedding",
    "ProjectionHead",
    "Prototypes",
    "ResidualAdapter",
    "TransformerBlock",
]
