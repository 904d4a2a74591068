"""Invertible layers without subnetworks: ActNorm and a fixed permutation."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .invertible import InvertibleModule

__all__ = ["ActNorm", "FixedPermutation", "actnorm_ready"]


class ActNorm(InvertibleModule):
    """Per-feature affine normalisation with data-dependent initialisation (Glow's actnorm).

    ``y = (x + loc) * exp(log_scale)`` along dimension 1. The first forward pass in training mode
    sets ``loc`` and ``log_scale`` so that this batch leaves with zero mean and unit variance
    per feature; the ``initialized`` buffer records it, so a reloaded model does not initialise
    again. Under ``torch.distributed`` the statistics are reduced over all processes, so that
    every process starts from the same parameters.

    Inputs are ``(B, D)``; ``(B, D, H, W)`` is accepted too (statistics per channel, log-det
    multiplied by ``H * W``), which the convolutional embedder uses.

    Arguments:
        dim: the number of features (channels) ``D``.
        eps: added to the standard deviation at initialisation.
    """

    initialized: Tensor

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__(dim)
        self.eps = eps
        self.loc = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def _check(self, x: Tensor) -> None:
        if x.dim() < 2 or x.shape[1] != self.dim:
            raise ValueError(f"ActNorm: expected shape (B, {self.dim}, ...), got {tuple(x.shape)}")

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Set ``loc`` and ``log_scale`` from the batch ``x`` (reduced over processes when distributed)."""
        self._check(x)
        flat = x.detach().transpose(0, 1).reshape(self.dim, -1).double()  # (D, B*H*W)
        if flat.shape[1] < 2:
            raise ValueError(
                "ActNorm data-dependent initialisation needs at least 2 values per feature, got a batch of "
                f"shape {tuple(x.shape)}: make the first training batch larger than 1"
            )
        # sums, not means, so that processes with different batch sizes reduce correctly
        stats = torch.stack([flat.sum(1), flat.square().sum(1), flat.new_full((self.dim,), flat.shape[1])])
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        mean = stats[0] / stats[2]
        var = (stats[1] / stats[2] - mean.square()).clamp_min(0.0)
        self.loc.copy_(-mean.to(self.loc.dtype))
        self.log_scale.copy_(-torch.log(var.sqrt() + self.eps).to(self.log_scale.dtype))
        self.initialized.fill_(True)

    def _shape(self, x: Tensor) -> tuple[int, ...]:
        return (1, self.dim) + (1,) * (x.dim() - 2)

    def _logdet(self, x: Tensor) -> Tensor:
        spatial = math.prod(x.shape[2:])  # 1 for flat inputs
        return (self.log_scale.sum() * spatial).expand(x.shape[0])

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(x)
        if not bool(self.initialized):
            if not self.training:
                raise RuntimeError(
                    "ActNorm is not initialised: run one forward pass in training mode (model.train()) "
                    "on real data, or load a trained checkpoint, before evaluating"
                )
            self.initialize(x)
        shape = self._shape(x)
        y = (x + self.loc.view(shape)) * self.log_scale.exp().view(shape)
        return y, self._logdet(x)

    def inverse(self, z: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        self._check(z)
        if not bool(self.initialized):
            raise RuntimeError(
                "ActNorm is not initialised, so the flow cannot be inverted yet: train it (the first "
                "forward pass in training mode initialises it) or load a trained checkpoint"
            )
        shape = self._shape(z)
        x = z * (-self.log_scale).exp().view(shape) - self.loc.view(shape)
        return x, -self._logdet(z)


class FixedPermutation(InvertibleModule):
    """A fixed random permutation of the features, stored in buffers (survives save/load).

    Arguments:
        dim: the number of features ``D``.
        seed: seed of the generator that draws the permutation.
    """

    perm: Tensor
    inv_perm: Tensor

    def __init__(self, dim: int, seed: int = 0) -> None:
        super().__init__(dim)
        # drawn on the CPU (the generator's device) also under torch.device("meta") or "cuda": a meta randperm imports
        # torch's symbolic shapes and sympy (about 1 s of `net2net translate`, which builds a meta cINN to check shapes)
        perm = torch.randperm(dim, generator=torch.Generator().manual_seed(seed), device="cpu")
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return z[:, self.inv_perm], z.new_zeros(z.shape[0])


def actnorm_ready(module: nn.Module) -> bool:
    """Whether every :class:`ActNorm` inside ``module`` has done its data-dependent initialisation."""
    return all(bool(m.initialized) for m in module.modules() if isinstance(m, ActNorm))
