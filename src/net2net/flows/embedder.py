"""Embedders H (supplementary Eq. 19, Tab. S3b): the non-invertible networks that turn z_src into h."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .checks import check_ints
from .layers import ActNorm

__all__ = ["ConvEmbedder", "DenseEmbedder", "build_embedder", "condition_params"]


class DenseEmbedder(nn.Module):
    """MLP embedder for flat conditions: ``Linear, LReLU, (depth-1) x [Linear, LReLU], Linear``.

    Arguments:
        cond_dim: features of the flat condition ``z_src``.
        embedding_dim: features of ``h``.
        hidden_dim: width of the hidden layers.
        depth: number of hidden layers (at least 1).
    """

    def __init__(self, cond_dim: int, embedding_dim: int, hidden_dim: int = 1024, depth: int = 2) -> None:
        super().__init__()
        sizes = {"cond_dim": cond_dim, "embedding_dim": embedding_dim, "hidden_dim": hidden_dim, "depth": depth}
        check_ints(sizes, "DenseEmbedder")
        layers: list[nn.Module] = [nn.Linear(cond_dim, hidden_dim), nn.LeakyReLU(0.01)]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.LeakyReLU(0.01)]
        layers.append(nn.Linear(hidden_dim, embedding_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, c: Tensor) -> Tensor:
        return self.net(c)  # (B, cond_dim) -> (B, embedding_dim)


class _DownBlock(nn.Module):
    """Conv 4x4 stride 2, ActNorm (log-det discarded: H need not be invertible), LReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1)
        self.norm = ActNorm(out_channels)
        self.act = nn.LeakyReLU(0.01)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.norm(self.conv(x))[0])  # (B, C, H, W) -> (B, C', H/2, W/2)


class ConvEmbedder(nn.Module):
    """Convolutional embedder of Tab. S3b for spatial conditions ``(C, H, W)``.

    ``n_down x [Conv 4x4 stride 2, ActNorm, LReLU]`` with 64, 128, ... (at most 1024) channels,
    then flatten and a linear layer to ``embedding_dim``.

    Arguments:
        cond_shape: ``(C, H, W)`` of one condition.
        embedding_dim: features of ``h``.
        n_down: number of stride-2 convolutions; by default as many as keep the map at least 4x4
            (at most 4), and at least one.
    """

    def __init__(self, cond_shape: tuple[int, int, int], embedding_dim: int, n_down: int | None = None) -> None:
        super().__init__()
        if len(cond_shape) != 3 or min(cond_shape) < 1:
            raise ValueError(f"cond_shape must be (C, H, W) with positive sizes, got {tuple(cond_shape)}")
        channels, height, width = (int(s) for s in cond_shape)
        if n_down is None:
            n_down, side = 0, min(height, width)
            while n_down < 4 and side >= 8:
                n_down, side = n_down + 1, side // 2
            n_down = max(n_down, 1)
        if n_down < 1 or min(height, width) < 2**n_down:
            raise ValueError(f"n_down={n_down} halvings do not fit a {height}x{width} condition")
        layers: list[nn.Module] = []
        for i in range(n_down):
            out = 64 * min(2**i, 16)
            layers.append(_DownBlock(channels, out))
            channels, height, width = out, height // 2, width // 2
        self.features = nn.Sequential(*layers)
        self.cond_shape = tuple(int(s) for s in cond_shape)
        self.head = nn.Linear(channels * height * width, embedding_dim)

    def forward(self, c: Tensor) -> Tensor:
        f = self.features(c)
        return self.head(f.flatten(1))  # (B, C', H', W') -> (B, C'*H'*W') -> (B, embedding_dim)


def build_embedder(
    embedding_dim: int,
    cond_dim: int | None = None,
    cond_shape: Sequence[int] | None = None,
    hidden_dim: int = 1024,
    depth: int = 2,
) -> tuple[nn.Module, tuple[int, ...]]:
    """The embedder H for a flat (``cond_dim``) or spatial (``cond_shape`` = ``(C, H, W)``) condition, and the
    shape of one condition: :class:`DenseEmbedder` (``hidden_dim`` wide, ``depth`` hidden layers) or
    :class:`ConvEmbedder`."""
    if (cond_dim is None) == (cond_shape is None):
        raise ValueError("give exactly one of cond_dim (flat condition) or cond_shape ((C, H, W) condition)")
    if cond_shape is not None:
        shape = tuple(int(s) for s in cond_shape)
        return ConvEmbedder(shape, embedding_dim), shape  # type: ignore[arg-type]
    shape = (int(cond_dim),)  # type: ignore[arg-type]
    return DenseEmbedder(shape[0], embedding_dim, hidden_dim, depth), shape


def condition_params(cond_shape: Sequence[int], spatial: bool) -> dict[str, int | list[int]]:
    """The constructor argument that rebuilds a condition of shape ``cond_shape`` (as :func:`build_embedder`
    returns it): ``{"cond_shape": [C, H, W]}`` for a ``spatial`` one, else ``{"cond_dim": D}``.

    Example:
        >>> condition_params((3,), spatial=False), condition_params((2, 4, 4), spatial=True)
        ({'cond_dim': 3}, {'cond_shape': [2, 4, 4]})
    """
    if spatial:
        return {"cond_shape": [int(n) for n in cond_shape]}
    return {"cond_dim": int(cond_shape[0])}
