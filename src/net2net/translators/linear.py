"""A closed-form baseline: ``z_tgt = W z_src + b + L v`` with ``v ~ N(0, I)`` (linear-Gaussian "latent space
translation"). The mean is the least-squares fit, ``L`` the Cholesky factor of the residuals' covariance: exact NLL,
exact residual ``v = L⁻¹(z_tgt − W z_src − b)`` and its exact inverse."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..flows.checks import check_condition, check_pair
from .interface import Translator, gaussian_log_prob

__all__ = ["LinearGaussianTranslator"]


class LinearGaussianTranslator(Translator):
    """``p(z_tgt | z_src) = N(W z_src + b, L Lᵀ)``, ``L`` lower triangular with a positive diagonal.

    :meth:`fit_closed_form` sets all parameters from training pairs (the maximum-likelihood solution, up to the
    ridge terms); they are also ordinary parameters, so the NLL can be minimised by gradient steps too.

    Arguments:
        dim: features of ``z_tgt``.
        cond_dim: features of a flat ``z_src``; give this or ``cond_shape``.
        cond_shape: shape of a spatial ``z_src`` (flattened for the linear map).
        ridge: relative ridge of the least squares and the covariance (times the mean variance), for stability.

    Example:
        >>> t = LinearGaussianTranslator(dim=3, cond_dim=2)
        >>> c = torch.randn(500, 2); z = c @ torch.ones(2, 3) + 0.1 * torch.randn(500, 3)
        >>> t.fit_closed_form(z, c)
        >>> bool(t.log_prob(z, c).mean() > 0)
        True
    """

    kind = "linear"
    closed_form = True

    def __init__(
        self, dim: int, cond_dim: int | None = None, cond_shape: Sequence[int] | None = None, ridge: float = 1e-6
    ) -> None:
        super().__init__()
        if (cond_dim is None) == (cond_shape is None):
            raise ValueError("give exactly one of cond_dim (flat condition) or cond_shape (spatial condition)")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"LinearGaussianTranslator: dim must be a positive int, got {dim!r}")
        if not ridge >= 0:
            raise ValueError(f"LinearGaussianTranslator: ridge must be >= 0, got {ridge!r}")
        shape = (cond_dim,) if cond_dim is not None else tuple(cond_shape)  # type: ignore[arg-type]
        self.cond_shape = tuple(int(s) for s in shape)
        self.dim, self.ridge = dim, float(ridge)
        features = math.prod(self.cond_shape)
        self.weight = nn.Parameter(torch.zeros(dim, features))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.log_diag = nn.Parameter(torch.zeros(dim))  # log of L's diagonal
        self.lower = nn.Parameter(torch.zeros(dim, dim))  # L's strictly lower triangle (the rest is unused)
        self._params: dict[str, Any] = {"dim": dim, "ridge": self.ridge}
        if cond_dim is not None:
            self._params["cond_dim"] = int(cond_dim)
        else:
            self._params["cond_shape"] = list(self.cond_shape)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def cholesky(self) -> Tensor:
        """``L``, ``(dim, dim)``: the Cholesky factor of the conditional covariance."""
        return torch.tril(self.lower, -1) + torch.diag(self.log_diag.exp())

    def mean(self, z_src: Tensor) -> Tensor:
        """``W z_src + b``, ``(B, dim)``."""
        check_condition(self, z_src)
        return z_src.flatten(1) @ self.weight.T + self.bias  # (B, *cond_shape) -> (B, F) -> (B, D)

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, z_tgt, z_src, "z_tgt")
        r = (z_tgt - self.mean(z_src)).T  # (D, B)
        return torch.linalg.solve_triangular(self.cholesky(), r, upper=False).T

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, v, z_src, "v")
        return self.mean(z_src) + v @ self.cholesky().T

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return gaussian_log_prob(self.residual(z_tgt, z_src)) - self.log_diag.sum()

    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return -self.log_prob(z_tgt, z_src)

    @torch.no_grad()
    def fit_closed_form(self, z_tgt: Tensor, z_src: Tensor) -> None:
        """Least squares for ``W, b`` and the Cholesky factor of the residuals' (maximum-likelihood) covariance,
        computed in float64."""
        check_pair(self, z_tgt, z_src, "z_tgt")
        n = z_tgt.shape[0]
        x = z_src.flatten(1).double()  # (N, F)
        y = z_tgt.double()  # (N, D)
        x_mean, y_mean = x.mean(0), y.mean(0)
        xc, yc = x - x_mean, y - y_mean
        gram = xc.T @ xc / n  # (F, F)
        gram += self.ridge * gram.diagonal().mean().clamp_min(1e-12) * torch.eye(gram.shape[0], dtype=gram.dtype)
        weight = torch.linalg.solve(gram, xc.T @ yc / n).T  # (D, F)
        res = yc - xc @ weight.T  # (N, D)
        cov = res.T @ res / n
        cov += self.ridge * cov.diagonal().mean().clamp_min(1e-12) * torch.eye(self.dim, dtype=cov.dtype)
        chol = torch.linalg.cholesky(cov)
        self.weight.copy_(weight)
        self.bias.copy_(y_mean - weight @ x_mean)
        self.log_diag.copy_(chol.diagonal().log())
        self.lower.copy_(torch.tril(chol, -1))
