"""The interface every translator of ``p(z_tgt | z_src)`` follows, and the error for what one cannot do.

A translator learns the conditional distribution of the target expert's code given the source expert's code.
All of them have the same methods (flat ``(B, D)`` target codes; ``z_src`` flat ``(B, D_src)`` or spatial
``(B, C, H, W)``)::

    z = t.sample(z_src, n_samples=8)          # (B, 8, D)
    logp = t.log_prob(z_tgt, z_src)           # (B,), nats, log p(z_tgt | z_src)
    v = t.residual(z_tgt, z_src)              # (B, D), standard normal under the model
    z_back = t.from_residual(v, z_src)        # (B, D), the inverse of residual (Eq. 6 recombines with it)
    per_sample = t.loss(z_tgt, z_src)         # (B,), the training objective
    t.config                                  # {"kind": ..., "params": {...}}: JSON, rebuilds the translator

A translator whose mathematics lacks one of them (the deterministic MLP has no likelihood and no residual) raises
:class:`MissingCapability`.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..flows.checks import check_condition, check_sampling

__all__ = ["MissingCapability", "Translator", "gaussian_log_prob"]


class MissingCapability(NotImplementedError):
    """The translator cannot do this by its mathematics (e.g. the MLP's likelihood); pick another translator."""


def gaussian_log_prob(v: Tensor) -> Tensor:
    """``log N(v; 0, I)`` per row of ``v`` ``(B, D)``, in nats: ``-0.5 ||v||^2 - D/2 log(2 pi)``."""
    return -0.5 * v.square().sum(1) - 0.5 * v.shape[1] * math.log(2 * math.pi)


class Translator(nn.Module, ABC):
    """Base class of the translators of ``p(z_tgt | z_src)``.

    Subclasses set :attr:`kind` (their registry name), ``self.dim`` (features of ``z_tgt``) and
    ``self.cond_shape`` (shape of one ``z_src``), implement :attr:`config` and :meth:`loss`, and override the
    capabilities they have. :meth:`sample` is implemented here from :meth:`from_residual` for flows.
    """

    kind: ClassVar[str]
    deterministic: ClassVar[bool] = False  # one output per condition (the MLP)
    closed_form: ClassVar[bool] = False  # fitted by :meth:`fit_closed_form` instead of gradient steps
    loss_is_nll: ClassVar[bool] = True  # :meth:`loss` is the negative log-likelihood (not a regression loss)
    dim: int
    cond_shape: tuple[int, ...]

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable: ``type(self)(**self.params)`` builds the same translator."""

    @classmethod
    def accepted_params(cls) -> set[str]:
        """The constructor arguments a weights file may name (its schema)."""
        return set(inspect.signature(cls.__init__).parameters) - {"self"}

    @property
    def config(self) -> dict[str, Any]:
        """``{"kind": registry name, "params": constructor arguments}``: what a weights file stores (no import path)."""
        return {"kind": self.kind, "params": self.params}

    def _missing(self, what: str) -> MissingCapability:
        return MissingCapability(f"the {self.kind!r} translator has no {what}; use a flow (cinn, spline, "
                                 "flow_matching) or linear for it")  # fmt: skip

    # -- the interface ----------------------------------------------------------------------------------
    def sample(
        self, z_src: Tensor, n_samples: int = 1, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n_samples`` translations ``z_tgt ~ p(z_tgt | z_src)`` per condition, ``(B, n_samples, dim)``;
        ``temperature`` scales the residual ``v ~ N(0, T² I)``."""
        check_sampling(n_samples, temperature)
        check_condition(self, z_src)
        batch = z_src.shape[0]
        cond = z_src.repeat_interleave(n_samples, 0)  # (B * n, ...): rows i*n .. i*n+n-1 belong to condition i
        v = torch.randn(batch * n_samples, self.dim, generator=generator, dtype=z_src.dtype, device=z_src.device)
        return self.from_residual(v * temperature, cond).view(batch, n_samples, self.dim)  # (B * n, D) -> (B, n, D)

    def log_prob(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """``log p(z_tgt | z_src)`` in nats (Gaussian constant included), ``(B,)``."""
        raise self._missing("likelihood")

    def residual(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """``v = τ⁻¹(z_tgt | z_src)``, ``(B, dim)``: what ``z_src`` does not determine about ``z_tgt``."""
        raise self._missing("residual")

    def from_residual(self, v: Tensor, z_src: Tensor) -> Tensor:
        """``z_tgt = τ(v | z_src)``, ``(B, dim)``: the inverse of :meth:`residual`."""
        raise self._missing("inverse of the residual")

    @abstractmethod
    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """The training objective per sample, ``(B,)``: the NLL for flows and linear, the regression loss for flow
        matching and the MLP."""

    def fit_closed_form(self, z_tgt: Tensor, z_src: Tensor) -> None:
        """Fit all parameters at once from the training pairs (only translators with ``closed_form``)."""
        raise self._missing("closed-form fit")
