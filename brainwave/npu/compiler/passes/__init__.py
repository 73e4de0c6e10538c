"""The compiler's passes, in the order `run_passes` applies them (docs/compiler.md explains each one and how to
add one). Each runs until it matches nowhere before the next starts."""
from __future__ import annotations

from ..ir import Graph
from .base import Pass, apply
from .batchnorm_to_depthwise import BatchNormToDepthwise
from .dense_to_conv import DenseToConv
from .drop_linear import DropLinear
from .fold_batchnorm import FoldBatchNorm
from .fold_zero_padding import FoldZeroPadding
from .fuse_activation import FuseActivation
from .fuse_residual import FuseResidual

DEFAULT_PASSES: tuple[Pass, ...] = (
    DenseToConv(),           # dense layers are convs from here on
    FoldZeroPadding(),
    FoldBatchNorm(),         # before residual and activation fusion: the batch norm comes first
    BatchNormToDepthwise(),  # what did not fold
    FuseResidual(),
    FuseActivation(),
    DropLinear(),            # after fusion, so a fused linear activation still names its layer
)


def run_passes(graph: Graph, passes: tuple[Pass, ...] = DEFAULT_PASSES) -> Graph:
    for rewrite in passes:
        apply(graph, rewrite)
    return graph


__all__ = ["DEFAULT_PASSES", "Pass", "apply", "run_passes", "BatchNormToDepthwise", "DenseToConv", "DropLinear",
           "FoldBatchNorm", "FoldZeroPadding", "FuseActivation", "FuseResidual"]
