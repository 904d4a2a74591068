"""The deterministic baseline of the paper's ablation (supplementary Sec. E, Tab. S4): an MLP translator.

The MLP translator replaces the cINN τ by a regression ``z_tgt ≈ f(H(z_src))``: the same kind of embedder H
as the cINN (dense for flat conditions, convolutional for ``(C, H, W)`` ones) followed by a fully connected
head, trained by mean squared error on the same ``(z_src, z_tgt)`` pairs. It predicts one code per condition
(roughly the conditional mean), which is what the ablation contrasts with the cINN's samples. It has no
likelihood and no residual (:class:`~net2net.translators.interface.MissingCapability`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..flows.checks import check_condition, check_ints, check_pair, check_sampling
from ..flows.embedder import build_embedder, condition_params
from .interface import Translator

__all__ = ["MLPTranslator"]

LRELU_SLOPE = 0.01


class MLPTranslator(Translator):
    """Deterministic translator ``z_tgt = f(H(z_src))``: embedder H, then an MLP head.

    The head is ``Linear(embedding_dim -> hidden), LReLU, (depth - 1) x [Linear(hidden -> hidden), LReLU],
    Linear(hidden -> dim)``; H is :class:`~net2net.flows.DenseEmbedder` for a flat condition (``cond_dim``) or
    :class:`~net2net.flows.ConvEmbedder` for a spatial one (``cond_shape``), as in
    :class:`~net2net.flows.ConditionalINN`.

    Arguments:
        dim: features of ``z_tgt``.
        cond_dim: features of a flat ``z_src``; give this or ``cond_shape``.
        hidden_dim: width of the head (and, by default, of the dense embedder).
        depth: hidden layers of the head (at least 1).
        embedding_dim: features of ``h = H(z_src)``.
        cond_shape: ``(C, H, W)`` of a spatial ``z_src``.
        embedder_hidden_dim: width of the dense embedder (defaults to ``hidden_dim``).
        embedder_depth: hidden layers of the dense embedder.

    Example:
        >>> f = MLPTranslator(dim=8, cond_dim=3, hidden_dim=32, embedding_dim=4)
        >>> f(torch.randn(5, 3)).shape
        torch.Size([5, 8])
        >>> f.sample(torch.randn(2, 3), n_samples=4).shape   # same contract as ConditionalINN.sample
        torch.Size([2, 4, 8])
    """

    kind = "mlp"
    deterministic = True
    loss_is_nll = False

    def __init__(
        self,
        dim: int,
        cond_dim: int | None = None,
        hidden_dim: int = 1024,
        depth: int = 2,
        embedding_dim: int = 128,
        cond_shape: Sequence[int] | None = None,
        embedder_hidden_dim: int | None = None,
        embedder_depth: int = 2,
    ) -> None:
        super().__init__()
        sizes = {"dim": dim, "hidden_dim": hidden_dim, "depth": depth, "embedding_dim": embedding_dim}
        check_ints(sizes, "MLPTranslator")
        self.dim, self.embedding_dim = dim, embedding_dim
        self._params: dict[str, Any] = {
            "dim": dim, "hidden_dim": hidden_dim, "depth": depth, "embedding_dim": embedding_dim,
            "embedder_hidden_dim": embedder_hidden_dim, "embedder_depth": embedder_depth,
        }  # fmt: skip
        self.embedder, self.cond_shape = build_embedder(
            embedding_dim, cond_dim, cond_shape, embedder_hidden_dim or hidden_dim, embedder_depth
        )
        self._params.update(condition_params(self.cond_shape, spatial=cond_shape is not None))
        layers: list[nn.Module] = [nn.Linear(embedding_dim, hidden_dim), nn.LeakyReLU(LRELU_SLOPE)]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(LRELU_SLOPE)]
        layers.append(nn.Linear(hidden_dim, dim))
        self.head = nn.Sequential(*layers)

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    def embed(self, z_src: Tensor) -> Tensor:
        """The embedding ``h = H(z_src)``, ``(B, embedding_dim)``."""
        check_condition(self, z_src)
        return self.embedder(z_src)

    def forward(self, z_src: Tensor) -> Tensor:
        """The predicted target code, ``(B, *cond_shape) -> (B, dim)``."""
        return self.head(self.embed(z_src))

    def sample(
        self,
        z_src: Tensor,
        n_samples: int = 1,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The shape contract of :meth:`ConditionalINN.sample <net2net.flows.ConditionalINN.sample>`:
        ``(B, n_samples, dim)``. The translator is deterministic, so the ``n_samples`` rows of a condition
        are equal; ``temperature`` and ``generator`` are accepted for drop-in use and have no effect."""
        check_sampling(n_samples, temperature)
        z = self(z_src)  # (B, D)
        return z.unsqueeze(1).repeat(1, n_samples, 1)  # (B, D) -> (B, n, D), its own memory

    def loss(self, z_tgt: Tensor, z_src: Tensor) -> Tensor:
        """Mean squared error per sample (mean over the features), ``(B,)``."""
        check_pair(self, z_tgt, z_src, "z_tgt")
        return (self(z_src) - z_tgt).square().mean(1)
