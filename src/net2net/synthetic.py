"""A conditional density problem with a known answer, for tests, benchmarks and the docs.

``z_tgt = A z_src + b + L eps`` with ``z_src ~ N(0, I)`` and ``eps ~ N(0, I)``: the conditional
density ``p(z_tgt | z_src) = N(A z_src + b, L L^T)`` and its entropy are known in closed form, so a
trained cINN can be compared against the true NLL, and its residual ``v`` against ``L^-1 (z_tgt - A z_src - b)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["LinearGaussian"]


class LinearGaussian:
    """``z_tgt = A z_src + b + L eps``: a conditional Gaussian with random A, b and lower-triangular L.

    Arguments:
        dim: features of ``z_tgt``.
        cond_dim: features of ``z_src``.
        seed: seed of A, b and L.
        noise_scale: typical size of the diagonal of ``L`` (controls how much ``z_src`` determines).

    Example:
        >>> problem = LinearGaussian(dim=4, cond_dim=3, seed=0)
        >>> z_tgt, z_src = problem.sample(100)
        >>> problem.conditional_nll(z_tgt, z_src).shape
        torch.Size([100])
    """

    def __init__(self, dim: int, cond_dim: int, seed: int = 0, noise_scale: float = 0.5) -> None:
        g = torch.Generator().manual_seed(seed)
        self.dim, self.cond_dim = dim, cond_dim
        self.A = torch.randn(dim, cond_dim, generator=g, dtype=torch.float64) / math.sqrt(cond_dim)
        self.b = torch.randn(dim, generator=g, dtype=torch.float64)
        diag = noise_scale * torch.exp(0.5 * torch.randn(dim, generator=g, dtype=torch.float64))
        lower = 0.3 * noise_scale * torch.randn(dim, dim, generator=g, dtype=torch.float64).tril(-1)
        self.L = torch.diag(diag) + lower

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """``n`` pairs ``(z_tgt, z_src)`` in float32, shapes ``(n, dim)`` and ``(n, cond_dim)``."""
        z_src = torch.randn(n, self.cond_dim, generator=generator, dtype=torch.float64)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        z_tgt = z_src @ self.A.T + self.b + eps @ self.L.T
        return z_tgt.float(), z_src.float()

    def true_residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """``eps = L^-1 (z_tgt - A z_src - b)``, the residual of the true model."""
        r = (z_tgt.double() - z_src.double() @ self.A.T - self.b).T  # (dim, n)
        return torch.linalg.solve_triangular(self.L, r, upper=False).T

    def conditional_entropy(self) -> float:
        """``H(z_tgt | z_src) = 0.5 * log det(2 pi e L L^T)`` in nats (all dimensions)."""
        return 0.5 * self.dim * math.log(2 * math.pi * math.e) + float(torch.log(torch.diagonal(self.L).abs()).sum())

    def conditional_nll(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """Exact ``-log p(z_tgt | z_src)`` per sample, in nats."""
        eps = self.true_residual(z_tgt, z_src)
        logdet = float(torch.log(torch.diagonal(self.L).abs()).sum())
        return 0.5 * eps.square().sum(1) + 0.5 * self.dim * math.log(2 * math.pi) + logdet
