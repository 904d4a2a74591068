"""The contract every invertible layer follows, and their composition.

Every layer maps flat ``(B, D)`` tensors and returns the log-determinant of its
Jacobian with the sign rule ``inverse(...)[1] == -forward(...)[1]``:

    z, logdet = layer(x, c)          # forward
    x, logdet_inv = layer.inverse(z, c)

``c`` is the conditioning tensor (already embedded) or ``None`` for unconditional
layers. ``c`` may have fewer rows than ``x`` when its row count divides the batch: then
each condition row is shared by ``B // len(c)`` consecutive rows of ``x`` (many samples of
one condition, as in :meth:`net2net.flows.ConditionalINN.sample`), which lets conditional
layers compute their condition-only terms once per condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from torch import Tensor, nn

__all__ = ["InvertibleModule", "SequentialFlow"]


class InvertibleModule(nn.Module):
    """Base class of invertible layers: ``forward(x, c) -> (z, logdet)``, ``inverse(z, c) -> (x, -logdet)``.

    Arguments:
        dim: the number of features ``D`` of the flat input.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError

    def inverse(self, z: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:  # pragma: no cover
        raise NotImplementedError


class SequentialFlow(InvertibleModule):
    """A chain of invertible layers sharing one condition; log-determinants add up.

    Arguments:
        layers: the layers, applied in order by :meth:`forward` and in reverse by :meth:`inverse`.

    Example:
        >>> import torch
        >>> from net2net.flows.layers import ActNorm, FixedPermutation
        >>> flow = SequentialFlow([ActNorm(4), FixedPermutation(4, seed=0)])
        >>> z, logdet = flow(torch.randn(8, 4))
        >>> x, logdet_inv = flow.inverse(z)
    """

    def __init__(self, layers: Iterable[InvertibleModule]) -> None:
        layers = list(layers)
        if not layers:
            raise ValueError("SequentialFlow needs at least one layer")
        dims = {layer.dim for layer in layers}
        if len(dims) != 1:
            raise ValueError(f"all layers of a SequentialFlow must have the same dim, got {sorted(dims)}")
        super().__init__(layers[0].dim)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x, c)
            logdet = logdet + ld
        return x, logdet

    def inverse(self, z: Tensor, c: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, ld = cast(InvertibleModule, layer).inverse(z, c)
            logdet = logdet + ld
        return z, logdet
