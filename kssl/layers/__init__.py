"""kssl's layers: fused batch norm, heads, adapters, and the vision-transformer parts."""

from kssl.layers.adapter import ResidualAdapter
from kssl.layers.batch_norm import FusedBatchNormalization
from kssl.layers.heads import ProjectionHead
from kssl.layers.transformer import PatchEmbedding, TransformerBlock

__all__ = ["FusedBatchNormalization", "PatchEmbedding", "ProjectionHead", "ResidualAdapter", "TransformerBlock"]
