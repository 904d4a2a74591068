"""Invertible networks: layers, their composition, the conditional INN τ and its loss.

This subpackage depends on PyTorch only (no Lightning, no experts), so it can be used alone.
"""

from .base import InvertibleModule, SequentialFlow
from .cinn import ConditionalINN, UnconditionalFlow, build_blocks
from .coupling import ConditionalAffineCoupling, ScaleShiftMLP
from .embedder import ConvEmbedder, DenseEmbedder
from .layers import ActNorm, FixedPermutation
from .loss import NLL, nll
from .precision import precision_context, resolve_precision

__all__ = [
    "ActNorm",
    "ConditionalAffineCoupling",
    "ConditionalINN",
    "ConvEmbedder",
    "DenseEmbedder",
    "FixedPermutation",
    "InvertibleModule",
    "NLL",
    "ScaleShiftMLP",
    "SequentialFlow",
    "UnconditionalFlow",
    "build_blocks",
    "nll",
    "precision_context",
    "resolve_precision",
]
