"""Invertible networks: layers, their composition, the conditional INN τ and its loss.

This subpackage depends on PyTorch only (no Lightning, no experts), so it can be used alone.
"""

from .checks import check_flat, check_tensor
from .cinn import ConditionalINN, UnconditionalFlow, build_blocks
from .coupling import ConditionalAffineCoupling, ScaleShiftMLP
from .embedder import ConvEmbedder, DenseEmbedder
from .invertible import InvertibleModule, SequentialFlow
from .layers import ActNorm, FixedPermutation
from .loss import NLL, nll
from .precision import precision_context, resolve_precision
from .weights import load_cinn, save_cinn

__all__ = [
    "NLL",
    "ActNorm",
    "ConditionalAffineCoupling",
    "ConditionalINN",
    "ConvEmbedder",
    "DenseEmbedder",
    "FixedPermutation",
    "InvertibleModule",
    "ScaleShiftMLP",
    "SequentialFlow",
    "UnconditionalFlow",
    "build_blocks",
    "check_flat",
    "check_tensor",
    "load_cinn",
    "nll",
    "precision_context",
    "resolve_precision",
    "save_cinn",
]
