"""Negative log-likelihood of a flow's output under the standard normal base distribution."""

from __future__ import annotations

import math
from typing import NamedTuple

from torch import Tensor

__all__ = ["NLL", "nll"]


class NLL(NamedTuple):
    """Per-sample negative log-likelihood, Gaussian constant included.

    Attributes:
        per_sample: ``0.5 * ||v||^2 + D/2 * log(2 pi) - logdet`` in nats, shape ``(B,)``.
        nats_per_dim: ``per_sample / D``.
        bits_per_dim: ``per_sample / (D * ln 2)``.
    """

    per_sample: Tensor
    nats_per_dim: Tensor
    bits_per_dim: Tensor


def nll(v: Tensor, logdet: Tensor) -> NLL:
    """NLL of ``z`` given ``v, logdet = flow(z, ...)`` under ``v ~ N(0, I)`` (Eq. 4).

    Arguments:
        v: the flow's output, ``(B, D)``.
        logdet: ``log |det dv/dz|``, ``(B,)``.

    Example:
        >>> import torch
        >>> stats = nll(torch.zeros(2, 4), torch.zeros(2))
        >>> round(stats.nats_per_dim[0].item(), 4)  # 0.5 * log(2 pi)
        0.9189
    """
    if v.dim() != 2 or logdet.shape != (v.shape[0],):
        raise ValueError(f"nll: expected v of shape (B, D) and logdet of shape (B,), got {tuple(v.shape)} and {tuple(logdet.shape)}")
    dim = v.shape[1]
    per_sample = 0.5 * v.square().sum(1) + 0.5 * dim * math.log(2 * math.pi) - logdet
    nats = per_sample / dim
    return NLL(per_sample, nats, nats / math.log(2))
