"""The conditional INN τ (supplementary G.1, Fig. S7) and the unconditional flow of the same blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .checks import check_condition, check_dtype, check_flat, check_int, check_pair, check_sampling
from .coupling import ConditionalAffineCoupling
from .embedder import build_embedder, condition_params
from .invertible import SequentialFlow
from .layers import ActNorm, FixedPermutation
from .loss import nll

__all__ = ["ConditionalINN", "UnconditionalFlow", "build_blocks"]


def build_blocks(
    dim: int, cond_dim: int, n_blocks: int, hidden_dim: int, hidden_depth: int, alpha: float, seed: int
) -> SequentialFlow:
    """``n_blocks x [alternating affine coupling, ActNorm, fixed permutation]`` (Fig. S7)."""
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be at least 1, got {n_blocks}")
    layers = []
    for i in range(n_blocks):
        layers += [
            ConditionalAffineCoupling(dim, cond_dim, hidden_dim, hidden_depth, alpha),
            ActNorm(dim),
            FixedPermutation(dim, seed=seed + i),
        ]
    return SequentialFlow(layers)


class _FlowMixin(nn.Module):
    dim: int
    flow: SequentialFlow

    def _sample_v(self, n: int, temperature: float, generator: torch.Generator | None, like: Tensor) -> Tensor:
        """``(n, dim)`` residuals ``v ~ N(0, T² I)`` of ``like``'s dtype and device (arguments checked by the caller:
        :func:`~net2net.flows.checks.check_sampling`)."""
        v = torch.randn(n, self.dim, generator=generator, dtype=like.dtype, device=like.device)
        return v * temperature


class ConditionalINN(_FlowMixin):
    """Conditional invertible network τ: ``z_tgt = τ(v | z_src)``, ``v ~ N(0, I)``.

    One embedding ``h = H(z_src)`` (Eq. 19) conditions every block; the blocks are
    ``[alternating affine coupling, ActNorm, fixed permutation]``.

    Arguments:
        dim: features of ``z_tgt`` (and of ``v``).
        cond_dim: features of a flat ``z_src``; give this or ``cond_shape``.
        n_blocks: number of blocks (20 in the paper).
        hidden_dim: width of the coupling subnets (8·dim in the paper).
        hidden_depth: hidden layers per subnet (2 in the paper).
        embedding_dim: features of ``h``.
        cond_shape: ``(C, H, W)`` of a spatial ``z_src``, embedded by the convolutional embedder.
        alpha: soft clamp of the coupling log-scales (1 reproduces ``exp(tanh(.))``).
        embedder_hidden_dim: width of the dense embedder (defaults to ``hidden_dim``).
        embedder_depth: hidden layers of the dense embedder.
        seed: seed of the fixed permutations.

    Example:
        >>> tau = ConditionalINN(dim=8, cond_dim=3, n_blocks=2, hidden_dim=32, embedding_dim=4)
        >>> z, c = torch.randn(16, 8), torch.randn(16, 3)
        >>> v, logdet = tau(z, c)              # the first call in training mode initialises ActNorm
        >>> z_back, logdet_inv = tau.inverse(v, c)
        >>> tau.sample(c[:2], n_samples=5).shape
        torch.Size([2, 5, 8])
    """

    def __init__(
        self,
        dim: int,
        cond_dim: int | None = None,
        n_blocks: int = 20,
        hidden_dim: int = 1024,
        hidden_depth: int = 2,
        embedding_dim: int = 128,
        cond_shape: Sequence[int] | None = None,
        alpha: float = 1.0,
        embedder_hidden_dim: int | None = None,
        embedder_depth: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.embedding_dim = check_int("dim", dim, 2), embedding_dim
        self.embedder, self.cond_shape = build_embedder(
            embedding_dim, cond_dim, cond_shape, embedder_hidden_dim or hidden_dim, embedder_depth
        )
        self.flow = build_blocks(dim, embedding_dim, n_blocks, hidden_dim, hidden_depth, alpha, seed)
        self._params: dict[str, Any] = {
            "dim": dim, "n_blocks": n_blocks, "hidden_dim": hidden_dim, "hidden_depth": hidden_depth,
            "embedding_dim": embedding_dim, "alpha": alpha, "embedder_hidden_dim": embedder_hidden_dim,
            "embedder_depth": embedder_depth, "seed": seed,
        }  # fmt: skip
        self._params.update(condition_params(self.cond_shape, spatial=cond_shape is not None))

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments that rebuild this network (plain JSON values; what ``save_cinn`` stores).

        Example:
            >>> tau = ConditionalINN(dim=4, cond_dim=3, n_blocks=1, hidden_dim=8, embedding_dim=2)
            >>> ConditionalINN(**tau.config).config == tau.config
            True
        """
        return dict(self._params)

    def embed(self, z_src: Tensor) -> Tensor:
        """The conditioning embedding ``h = H(z_src)``, ``(B, embedding_dim)``."""
        check_condition(self, z_src)
        return self.embedder(z_src)

    def forward(self, z_tgt: Tensor, z_src: Tensor) -> tuple[Tensor, Tensor]:
        """``v = τ⁻¹(z_tgt | z_src)`` and ``log |det dv/dz_tgt|``: shapes ``(B, dim)``, ``(B,)``."""
        check_pair(self, z_tgt, z_src, "z_tgt")
        return self.flow(z_tgt, self.embedder(z_src))

    def inverse(self, v: Tensor, z_src: Tensor) -> tuple[Tensor, Tensor]:
        """``z_tgt = τ(v | z_src)`` and ``log |det dz_tgt/dv|`` (= minus the forward log-det)."""
        check_pair(self, v, z_src, "v")
        return self.flow.inverse(v, self.embedder(z_src))

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """The residual ``v = τ⁻¹(z_tgt | z_src)``: what ``z_src`` does not determine about ``z_tgt``."""
        return self(z_tgt, z_src)[0]

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        """``z_tgt = τ(v | z_src)``, ``(B, dim)``: the inverse of :meth:`residual` (Eq. 6 swaps ``z_src`` here)."""
        return self.inverse(v, z_src)[0]

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """``log p(z_tgt | z_src)`` in nats, ``(B,)``: minus the NLL of :func:`net2net.flows.nll` (Gaussian constant
        included), so ``-log_prob(z, c).mean() / dim`` is the ``nats_per_dim`` that training reports."""
        return -nll(*self(z_tgt, z_src)).per_sample

    def sample(
        self,
        z_src: Tensor,
        n_samples: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``n_samples`` translations ``z_tgt ~ p(z_tgt | z_src)`` per condition: ``(B, n_samples, dim)``.

        The embedding, and the condition's part of every coupling subnet's first layer, are computed once per
        condition and shared by its samples.
        """
        check_sampling(n_samples, temperature)
        h = self.embed(z_src)  # (B, E)
        batch = h.shape[0]
        v = self._sample_v(batch * n_samples, temperature, generator, h)  # rows i*n .. i*n+n-1 belong to condition i
        z, _ = self.flow.inverse(v, h)
        return z.view(batch, n_samples, self.dim)  # (B * n, D) -> (B, n, D)


class UnconditionalFlow(_FlowMixin):
    """The same blocks without a condition: a density model of ``z_tgt`` alone.

    Arguments:
        dim: features of ``z``.
        n_blocks, hidden_dim, hidden_depth, alpha, seed: as in :class:`ConditionalINN`.
    """

    def __init__(
        self,
        dim: int,
        n_blocks: int = 20,
        hidden_dim: int = 1024,
        hidden_depth: int = 2,
        alpha: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim, 2)
        self.flow = build_blocks(dim, 0, n_blocks, hidden_dim, hidden_depth, alpha, seed)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``v = f(z)`` and ``log |det dv/dz|``."""
        check_flat(z, self.dim, "z")
        check_dtype(self, z, "z")
        return self.flow(z)

    def inverse(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """``z = f⁻¹(v)`` and ``log |det dz/dv|``."""
        check_flat(v, self.dim, "v")
        check_dtype(self, v, "v")
        return self.flow.inverse(v)

    def sample(self, n_samples: int, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``(n_samples, dim)`` samples of ``z``."""
        check_sampling(n_samples, temperature)
        like = next(self.parameters())
        return self.flow.inverse(self._sample_v(n_samples, temperature, generator, like))[0]
