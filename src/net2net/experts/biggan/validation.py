"""Argument checks and state-dict reading shared by the BigGAN generator, the dequantisation VAE and the target.

Weight files are read without unpickling code: ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from ..protocols import describe_state_mismatch

__all__ = ["PathLike", "WeightsNotFoundError", "check_flat", "check_state", "check_truncation", "read_state_dict"]

PathLike = str | os.PathLike[str]


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """A weights or config file that does not exist (both a FileNotFoundError and a ValueError)."""


def check_truncation(truncation: object, name: str) -> float:
    """``truncation`` as a float in (0, 1] (a one-element tensor is accepted); ``ValueError`` naming ``name``."""
    if isinstance(truncation, Tensor) and truncation.numel() == 1:
        truncation = truncation.item()
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0.0 < truncation <= 1.0:
        raise ValueError(f"{name}: expected a truncation in (0, 1], received {truncation!r}")
    return float(truncation)


def check_flat(x: object, name: str, dim: int, what: str) -> Tensor:
    """``x`` if it is a floating point ``(B, dim)`` tensor; else a ``TypeError``/``ValueError`` naming ``name``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B, {dim}) ({what}), received {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor ({what}), received dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (B, {dim}) ({what}), received shape {tuple(x.shape)}")
    return x


def read_state_dict(path: PathLike, map_location: str | torch.device, what: str) -> dict[str, Tensor]:
    """A ``{name: tensor}`` dict from safetensors or ``torch.load(weights_only=True)`` (``state_dict`` unwrapped)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"{what} weights not found: '{p}' (weights are never downloaded)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device=str(map_location))
        except Exception as e:  # header or data errors
            raise ValueError(f"cannot read '{p}' as a safetensors file: {e}") from e
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling refused, truncated or non-torch files
        raise ValueError(f"cannot read '{p}' as PyTorch weights (torch.load with weights_only=True): {e}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ValueError(
            f"'{p}' does not hold a state dict: expected a mapping from names to tensors, received {type(obj).__name__}"
        )
    return dict(obj)


def check_state(
    expected: Mapping[str, Tensor], received: Mapping[str, Tensor], source: str, what: str, arch: str
) -> None:
    """Raise a ValueError naming missing/unexpected keys and shape mismatches between two state dicts."""
    problems = describe_state_mismatch(expected, received)
    if problems:
        raise ValueError(
            f"{source}: the weights do not fit {arch}: {problems}. Pass the {what} weights that belong to this "
            "configuration (or the configuration that belongs to these weights)."
        )
