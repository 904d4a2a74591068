"""A conditional neural spline flow (Durkan et al. 2019) from ``zuko``: monotonic rational-quadratic splines in
coupling layers, conditioned on the embedding ``h = H(z_src)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..flows.checks import check_ints, check_pair
from ..flows.embedder import build_embedder, condition_params
from ..flows.layers import ActNorm
from .interface import Translator, gaussian_log_prob

__all__ = ["SplineTranslator"]


class SplineTranslator(Translator):
    """``v = f(ActNorm(z_tgt) | H(z_src))`` with ``f`` zuko's conditional NSF; exact NLL, residual and inverse.

    ``z_tgt`` first goes through an :class:`~net2net.flows.ActNorm` (data-dependent initialisation, then learned),
    so that the codes lie inside the splines' domain ``[-bound, bound]`` (identity outside it). With ``passes=2``
    each transform is a coupling (one half conditions the other, alternating), so the inverse costs one network
    evaluation per transform, like the cINN; ``passes=None`` makes them fully autoregressive (``dim`` evaluations
    per inverse).

    Arguments:
        dim: features of ``z_tgt``.
        cond_dim: features of a flat ``z_src``; give this or ``cond_shape``.
        cond_shape: ``(C, H, W)`` of a spatial ``z_src`` (convolutional embedder).
        transforms: spline transforms.
        hidden_dim: width of each transform's network (and, by default, of the dense embedder).
        hidden_depth: hidden layers of each transform's network.
        bins: spline bins.
        embedding_dim: features of ``h = H(z_src)``.
        embedder_hidden_dim: width of the dense embedder (defaults to ``hidden_dim``).
        embedder_depth: hidden layers of the dense embedder.
        passes: 2 (coupling) or None (autoregressive).

    Example:
        >>> t = SplineTranslator(dim=4, cond_dim=3, transforms=2, hidden_dim=32, embedding_dim=8)
        >>> z, c = torch.randn(16, 4), torch.randn(16, 3)
        >>> t.loss(z, c).shape                  # the first call in training mode initialises ActNorm
        torch.Size([16])
    """

    kind = "spline"

    def __init__(
        self,
        dim: int,
        cond_dim: int | None = None,
        cond_shape: Sequence[int] | None = None,
        transforms: int = 8,
        hidden_dim: int = 256,
        hidden_depth: int = 2,
        bins: int = 8,
        embedding_dim: int = 64,
        embedder_hidden_dim: int | None = None,
        embedder_depth: int = 2,
        passes: int | None = 2,
    ) -> None:
        import zuko

        super().__init__()
        sizes = {"dim": dim, "transforms": transforms, "hidden_dim": hidden_dim, "hidden_depth": hidden_depth,
                 "bins": bins, "embedding_dim": embedding_dim}  # fmt: skip
        check_ints(sizes, "SplineTranslator")
        if dim < 2:
            raise ValueError(f"SplineTranslator: dim must be at least 2 (couplings split the features), got {dim}")
        if passes not in (2, None):
            raise ValueError(f"SplineTranslator: passes must be 2 (coupling) or None (autoregressive), got {passes!r}")
        self.dim = dim
        self.embedder, self.cond_shape = build_embedder(
            embedding_dim, cond_dim, cond_shape, embedder_hidden_dim or hidden_dim, embedder_depth
        )
        self._params: dict[str, Any] = {**sizes, "embedder_hidden_dim": embedder_hidden_dim,
                                        "embedder_depth": embedder_depth, "passes": passes}  # fmt: skip
        self._params.update(condition_params(self.cond_shape, spatial=cond_shape is not None))
        self.norm = ActNorm(dim)
        self.flow = zuko.flows.NSF(features=dim, context=embedding_dim, transforms=transforms, bins=bins,
                                   hidden_features=[hidden_dim] * hidden_depth, passes=passes)  # fmt: skip

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def _forward(self, z_tgt: Tensor, z_src: Tensor) -> tuple[Tensor, Tensor]:
        """``v`` and ``log |det dv/dz_tgt|``, ``(B, D)`` and ``(B,)``."""
        check_pair(self, z_tgt, z_src, "z_tgt")
        x, logdet_norm = self.norm(z_tgt)
        v, ladj = self.flow.transform(self.embedder(z_src)).call_and_ladj(x)
        return v, logdet_norm + ladj

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return self._forward(z_tgt, z_src)[0]

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        check_pair(self, v, z_src, "v")
        x = self.flow.transform(self.embedder(z_src)).inv(v)
        return self.norm.inverse(x)[0]

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        v, logdet = self._forward(z_tgt, z_src)
        return gaussian_log_prob(v) + logdet

    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return -self.log_prob(z_tgt, z_src)
