"""Input checks shared by the flows and the translators: clear errors that say what was expected and what came.

A model checked here has ``dim`` (features of the flat target ``z``), ``cond_shape`` (shape of one condition
``z_src``) and, usually, parameters whose dtype the inputs must have.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["check_condition", "check_dtype", "check_flat", "check_float_tensor", "check_int", "check_ints", "check_pair",
           "check_sampling", "check_tensor"]


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` if it is an int (not a bool) ``>= minimum``; else a ``ValueError`` naming ``name`` and ``value``.

    Example:
        >>> check_int("n_blocks", 4)
        4
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_ints(sizes: Mapping[str, Any], owner: str) -> None:
    """:func:`check_int` (positive) for each ``name: value`` of ``sizes``; the error names ``owner: name``."""
    for name, value in sizes.items():
        check_int(f"{owner}: {name}", value)


def check_float_tensor(x: object, name: str, what: str) -> Tensor:
    """``x`` if it is a floating-point tensor; else a ``TypeError`` naming ``name``, saying ``what`` was expected
    (e.g. ``"an image batch (B, C, H, W)"``) and what came instead.

    Example:
        >>> check_float_tensor(torch.zeros(2, 3), "z", "codes (B, D)").shape
        torch.Size([2, 3])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected {what} as a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected {what} of floating-point values, got dtype {x.dtype}; convert it with "
                        ".float()")  # fmt: skip
    return x


def check_sampling(n_samples: Any, temperature: Any) -> None:
    """The arguments of a ``sample`` method: ``n_samples`` a positive int (:func:`check_int`) and ``temperature``
    (the residual's scale, ``v ~ N(0, T² I)``) a finite number ``>= 0``; else a ``ValueError`` saying what came.

    Example:
        >>> check_sampling(4, 0.7)
    """
    check_int("n_samples", n_samples)
    try:
        ok = temperature >= 0 and math.isfinite(temperature)
    except TypeError:  # a string, None, a list, ...: not comparable with a number
        raise TypeError(f"temperature must be a number, got {type(temperature).__name__}") from None
    if not ok:
        raise ValueError(f"temperature must be a finite non-negative number, got {temperature}")


def check_tensor(x: Tensor, tail: tuple[int, ...], name: str = "input") -> None:
    """Raise a clear error unless ``x`` is a finite, non-empty floating ``(B, *tail)`` tensor.

    Arguments:
        x: the tensor to check.
        tail: the expected shape after the batch dimension.
        name: how the tensor is called in the error message.
    """
    shape = f"(B, {', '.join(map(str, tail))})"
    check_float_tensor(x, name, f"shape {shape}")
    if tuple(x.shape[1:]) != tuple(tail) or x.dim() != len(tail) + 1:
        raise ValueError(f"{name}: expected shape {shape}, got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name}: the batch is empty (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        bad = (~torch.isfinite(x)).flatten(1).any(dim=1).nonzero().flatten().tolist()
        raise ValueError(f"{name}: contains NaN or infinite values (rows {bad[:10]}{'...' if len(bad) > 10 else ''})")


def check_flat(x: Tensor, dim: int, name: str = "input") -> None:
    """:func:`check_tensor` for a flat ``(B, dim)`` tensor."""
    check_tensor(x, (dim,), name)


def check_dtype(model: nn.Module, x: Tensor, name: str) -> None:
    """Raise a ``TypeError`` unless ``x`` has the dtype of ``model``'s parameters (a model without any: no check)."""
    ref = next(iter(model.parameters()), None)
    if ref is not None and x.dtype != ref.dtype:
        raise TypeError(f"{name}: expected dtype {ref.dtype} (the model's), got {x.dtype}; use .to({ref.dtype})")


def check_condition(model: Any, z_src: Tensor) -> None:
    """``z_src`` must be a finite ``(B, *model.cond_shape)`` tensor of the model's dtype."""
    check_tensor(z_src, tuple(model.cond_shape), "z_src")
    check_dtype(model, z_src, "z_src")


def check_pair(model: Any, z: Tensor, z_src: Tensor, name: str) -> None:
    """``z`` ``(B, model.dim)`` and ``z_src`` ``(B, *model.cond_shape)``: checked one by one, then their rows."""
    check_flat(z, model.dim, name)
    check_dtype(model, z, name)
    check_condition(model, z_src)
    if z_src.shape[0] != z.shape[0]:
        raise ValueError(f"batch sizes differ: {name} has {z.shape[0]} rows, z_src has {z_src.shape[0]}")
