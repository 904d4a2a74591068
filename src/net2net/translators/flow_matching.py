"""Conditional flow matching: a continuous flow trained by regression, sampled by an ODE solver.

The probability path is the straight line ``x_t = (1 − t) x_0 + t x_1`` from noise ``x_0 ~ N(0, I)`` (``t = 0``) to
the (standardised) target code ``x_1`` (``t = 1``); a velocity network ``u(x_t, t, H(z_src))`` is regressed onto
``x_1 − x_0`` (Lipman et al. 2023, with σ_min = 0). Sampling solves ``dx/dt = u`` from 0 to 1, the residual solves
it backwards from 1 to 0 (fixed-step RK4 in both directions, so ``from_residual(residual(z))`` returns ``z`` up to
the solver's error), and the likelihood follows the instantaneous change of variables
``log p_1(x_1) = log p_0(x_0) − ∫_0^1 div u(x_t, t) dt`` with the exact divergence (the trace of the autograd
Jacobian, fine at ``D ≤ 128``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import jacrev, vmap

from ..flows.checks import check_ints, check_pair
from ..flows.embedder import build_embedder, condition_params
from ..flows.layers import ActNorm
from .interface import Translator, gaussian_log_prob

__all__ = ["FlowMatchingTranslator"]


class FlowMatchingTranslator(Translator):
    """Conditional flow matching with a dense velocity network and a fixed-step RK4 solver.

    ``z_tgt`` is standardised by a per-feature affine map set from the first training batch (an
    :class:`~net2net.flows.ActNorm` whose parameters are then frozen: the regression loss would otherwise shrink
    them); its log-determinant enters :meth:`log_prob`.

    Arguments:
        dim: features of ``z_tgt``.
        cond_dim: features of a flat ``z_src``; give this or ``cond_shape``.
        cond_shape: ``(C, H, W)`` of a spatial ``z_src`` (convolutional embedder).
        hidden_dim: width of the velocity network (and, by default, of the dense embedder).
        depth: hidden layers of the velocity network.
        embedding_dim: features of ``h = H(z_src)``.
        embedder_hidden_dim: width of the dense embedder (defaults to ``hidden_dim``).
        embedder_depth: hidden layers of the dense embedder.
        time_features: sine/cosine pairs of the time embedding (frequencies π, 2π, ...).
        ode_steps: RK4 steps from 0 to 1 (4 velocity evaluations each).

    Example:
        >>> t = FlowMatchingTranslator(dim=4, cond_dim=3, hidden_dim=32, embedding_dim=8, ode_steps=4)
        >>> z, c = torch.randn(16, 4), torch.randn(16, 3)
        >>> t.loss(z, c).shape                  # the first call in training mode sets the standardisation
        torch.Size([16])
        >>> t.sample(c[:2], n_samples=5).shape
        torch.Size([2, 5, 4])
    """

    kind = "flow_matching"
    loss_is_nll = False
    freqs: Tensor  # buffer (F,): frequencies of the time embedding

    def __init__(
        self,
        dim: int,
        cond_dim: int | None = None,
        cond_shape: Sequence[int] | None = None,
        hidden_dim: int = 256,
        depth: int = 3,
        embedding_dim: int = 64,
        embedder_hidden_dim: int | None = None,
        embedder_depth: int = 2,
        time_features: int = 8,
        ode_steps: int = 8,
    ) -> None:
        super().__init__()
        sizes = {"dim": dim, "hidden_dim": hidden_dim, "depth": depth, "embedding_dim": embedding_dim,
                 "time_features": time_features, "ode_steps": ode_steps}  # fmt: skip
        check_ints(sizes, "FlowMatchingTranslator")
        self.dim, self.ode_steps = dim, ode_steps
        self.embedder, self.cond_shape = build_embedder(
            embedding_dim, cond_dim, cond_shape, embedder_hidden_dim or hidden_dim, embedder_depth
        )
        self._params: dict[str, Any] = {**sizes, "embedder_hidden_dim": embedder_hidden_dim,
                                        "embedder_depth": embedder_depth}  # fmt: skip
        self._params.update(condition_params(self.cond_shape, spatial=cond_shape is not None))
        self.norm = ActNorm(dim).requires_grad_(False)
        self.register_buffer("freqs", math.pi * torch.arange(1, time_features + 1, dtype=torch.float32))
        layers: list[nn.Module] = [nn.Linear(dim + embedding_dim + 2 * time_features, hidden_dim), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.SiLU()]
        layers.append(nn.Linear(hidden_dim, dim))
        self.net = nn.Sequential(*layers)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def velocity(self, x: Tensor, t: Tensor, h: Tensor) -> Tensor:
        """``u(x, t, h)``: ``x`` ``(B, D)``, ``t`` ``(B,)``, ``h`` ``(B, E)`` -> ``(B, D)``."""
        angles = t[:, None] * self.freqs.to(x.dtype)  # (B, F)
        return self.net(torch.cat([x, h, angles.sin(), angles.cos()], 1))

    def _divergence(self, x: Tensor, t: Tensor, h: Tensor) -> Tensor:
        """The exact ``div_x u = tr(∂u/∂x)`` per row, ``(B,)``, from the per-sample autograd Jacobian."""

        def one(xi: Tensor, ti: Tensor, hi: Tensor) -> Tensor:
            return self.velocity(xi[None], ti[None], hi[None])[0]

        jac = vmap(jacrev(one))(x, t, h)  # (B, D, D)
        return jac.diagonal(dim1=1, dim2=2).sum(1)

    def _solve(self, x: Tensor, h: Tensor, t0: float, t1: float, divergence: bool = False) -> tuple[Tensor, Tensor]:
        """RK4 from ``t0`` to ``t1`` of ``dx/dt = u`` and, with ``divergence``, of ``da/dt = div u`` (``a(t0) = 0``).

        Returns ``x(t1)`` and ``a(t1)`` (zeros without ``divergence``)."""
        step = (t1 - t0) / self.ode_steps
        acc = x.new_zeros(x.shape[0])

        def f(x: Tensor, t: float) -> tuple[Tensor, Tensor]:
            tt = x.new_full((x.shape[0],), t)
            u = self.velocity(x, tt, h)
            return u, (self._divergence(x, tt, h) if divergence else acc)

        for i in range(self.ode_steps):
            t = t0 + i * step
            k1, d1 = f(x, t)
            k2, d2 = f(x + 0.5 * step * k1, t + 0.5 * step)
            k3, d3 = f(x + 0.5 * step * k2, t + 0.5 * step)
            k4, d4 = f(x + step * k3, t + step)
            x = x + step / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            if divergence:
                acc = acc + step / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
        return x, acc

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, z_tgt, z_src, "z_tgt")
        x1, _ = self.norm(z_tgt)
        return self._solve(x1, self.embedder(z_src), 1.0, 0.0)[0]

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, v, z_src, "v")
        x1, _ = self._solve(v, self.embedder(z_src), 0.0, 1.0)
        return self.norm.inverse(x1)[0]

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, z_tgt, z_src, "z_tgt")
        x1, logdet_norm = self.norm(z_tgt)
        # backwards from t = 1 with a(1) = 0: a(0) = -∫_0^1 div u dt, so log p_1(x_1) = log p_0(x_0) + a(0)
        x0, acc = self._solve(x1, self.embedder(z_src), 1.0, 0.0, divergence=True)
        return gaussian_log_prob(x0) + acc + logdet_norm

    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """The flow-matching regression ``mean_d (u(x_t, t, h) − (x_1 − x_0))²`` per sample, ``t ~ U(0, 1)``."""
        check_pair(self, z_tgt, z_src, "z_tgt")
        x1, _ = self.norm(z_tgt)
        x0 = torch.randn_like(x1)
        t = torch.rand(x1.shape[0], dtype=x1.dtype, device=x1.device)
        xt = (1 - t[:, None]) * x0 + t[:, None] * x1  # (B, D): the straight path
        return (self.velocity(xt, t, self.embedder(z_src)) - (x1 - x0)).square().mean(1)

