"""The paper's translator: the conditional INN τ of :mod:`net2net.flows` behind the translator interface."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor

from ..flows import ConditionalINN, nll
from .interface import Translator

__all__ = ["CINNTranslator"]


class CINNTranslator(Translator):
    """The cINN τ (supplementary G.1): ``z_tgt = τ(v | z_src)``, trained by the exact NLL of Eq. 4.

    Arguments: those of :class:`net2net.flows.ConditionalINN` (``dim``, ``cond_dim`` or ``cond_shape``, ``n_blocks``,
    ``hidden_dim``, ...), which it wraps as ``self.tau``.

    Example:
        >>> t = CINNTranslator(dim=8, cond_dim=3, n_blocks=2, hidden_dim=32, embedding_dim=4)
        >>> z, c = torch.randn(16, 8), torch.randn(16, 3)
        >>> t.loss(z, c).shape                  # the first call in training mode initialises ActNorm
        torch.Size([16])
        >>> t.sample(c[:2], n_samples=5).shape
        torch.Size([2, 5, 8])
    """

    kind = "cinn"

    def __init__(self, dim: int, **params: Any) -> None:
        super().__init__()
        bound = inspect.signature(ConditionalINN).bind(dim, **params)  # TypeError naming an unknown argument
        bound.apply_defaults()
        self.tau = ConditionalINN(**bound.arguments)
        self.dim, self.cond_shape = self.tau.dim, self.tau.cond_shape
        self._params = dict(bound.arguments)
        if self._params.get("cond_shape") is not None:
            self._params["cond_shape"] = list(self.cond_shape)

    @classmethod
    def accepted_params(cls) -> set[str]:
        """The constructor arguments a weights file may name."""
        return set(inspect.signature(ConditionalINN).parameters)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        v, logdet = self.tau(z_tgt, z_src)
        return -nll(v, logdet).per_sample

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return self.tau.residual(z_tgt, z_src)

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        return self.tau.inverse(v, z_src)[0]

    def sample(
        self, z_src: Tensor, n_samples: int = 1, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        # the cINN's own sampling embeds each condition once for all its samples
        return self.tau.sample(z_src, n_samples=n_samples, temperature=temperature, generator=generator)

    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        return -self.log_prob(z_tgt, z_src)
