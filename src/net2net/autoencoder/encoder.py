"""The encoder Θ of the target autoencoder (supplementary Sec. F, Tab. S2a): a ResNet with a Gaussian head."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from itertools import chain
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..flows.checks import check_float_tensor, check_ints

__all__ = ["Bottleneck", "DiagonalGaussian", "Encoder", "check_image"]

NormKind = Literal["batch", "group"]


class DiagonalGaussian:
    """A diagonal Gaussian ``N(mean, diag(exp(logvar)))`` over flat codes ``(B, D)``.

    The log-variance is clamped to ``[-30, 20]`` so that ``exp`` stays finite.

    Arguments:
        mean: ``(B, D)`` means.
        logvar: ``(B, D)`` log-variances, same shape as ``mean``.

    Example:
        >>> q = DiagonalGaussian(torch.zeros(2, 4), torch.zeros(2, 4))
        >>> q.sample().shape, q.kl()
        (torch.Size([2, 4]), tensor([0., 0.]))
    """

    def __init__(self, mean: Tensor, logvar: Tensor) -> None:
        if not isinstance(mean, Tensor) or not isinstance(logvar, Tensor):
            raise TypeError(
                f"DiagonalGaussian: expected tensors, got {type(mean).__name__} and {type(logvar).__name__}"
            )
        if mean.shape != logvar.shape or mean.dim() < 2:
            raise ValueError(
                "DiagonalGaussian: expected mean and logvar of the same shape (B, D), got "
                f"{tuple(mean.shape)} and {tuple(logvar.shape)}"
            )
        self.mean = mean
        self.logvar = logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> Tensor:
        """Standard deviations ``exp(logvar / 2)``, ``(B, D)``."""
        return torch.exp(0.5 * self.logvar)

    @property
    def var(self) -> Tensor:
        """Variances ``exp(logvar)``, ``(B, D)``."""
        return torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample ``mean + std * eps`` with ``eps ~ N(0, I)``; differentiable in mean and logvar.

        ``generator`` (optional, for reproducible noise) must live on the device of ``mean``.
        """
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> Tensor:
        """The most likely code, i.e. the mean."""
        return self.mean

    def kl(self) -> Tensor:
        """``KL(N(mean, var) || N(0, I))`` per sample, summed over all non-batch dimensions: shape ``(B,)``."""
        kl = 0.5 * (self.mean.square() + self.var - 1.0 - self.logvar)
        return kl.flatten(1).sum(1)  # (B, D) -> (B,)


def check_image(x: object, name: str, channels: int, size: int | None) -> None:
    """Raise a TypeError/ValueError unless ``x`` is a float ``(B, channels, size, size)`` tensor."""
    x = check_float_tensor(x, name, "an image batch (B, C, H, W) in [-1, 1]")
    if x.dim() != 4:
        raise ValueError(f"{name}: expected an image batch of shape (B, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{name}: expected {channels} channel(s), got {x.shape[1]} (input shape {tuple(x.shape)}); "
            "convert the images or build the model with the matching number of channels"
        )
    if size is not None and (x.shape[2] != size or x.shape[3] != size):
        raise ValueError(
            f"{name}: expected images of size {size}x{size}, got {x.shape[2]}x{x.shape[3]}; "
            "resize the images or build the model with the matching image_size"
        )


def make_norm(kind: NormKind, channels: int) -> nn.Module:
    """BatchNorm2d, or GroupNorm with the largest of 32, 16, ..., 1 groups that divides ``channels``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm: expected 'batch' or 'group', got {kind!r}")


class Bottleneck(nn.Module):
    """ResNet bottleneck: 1x1 (width), 3x3 (width, stride), 1x1 (4 x width), each normalised; projection shortcut.

    The stride sits on the 3x3 convolution (ResNet v1.5). The last norm of the residual branch starts
    at zero gain (only for BatchNorm/GroupNorm affine weights), so each block starts as its shortcut.
    """

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, norm: NormKind = "batch") -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.norm1 = make_norm(norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.norm2 = make_norm(norm, width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.norm3 = make_norm(norm, out_channels)
        nn.init.zeros_(self.norm3.weight)  # type: ignore[arg-type]  # BatchNorm2d/GroupNorm: weight is a Parameter
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), make_norm(norm, out_channels)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.act(self.norm2(self.conv2(out)))  # (B, w, H, W) -> (B, w, H/s, W/s)
        out = self.norm3(self.conv3(out))
        return self.act(out + self.shortcut(x))


def _fold(conv: Any, norm: Any) -> nn.Conv2d:
    """``conv`` followed by the eval-mode BatchNorm ``norm`` as one convolution."""
    return fuse_conv_bn_eval(conv, norm)


class Encoder(nn.Module):
    """Θ: a ResNet of bottleneck stages, global average pooling and a linear Gaussian head (Tab. S2a).

    Stem: for ``image_size >= 64`` a 7x7 stride-2 conv, norm, ReLU and 3x3 stride-2 max-pool (ResNet);
    for smaller images a 3x3 stride-1 conv, norm, ReLU. Then four stages of ``depths[i]`` bottlenecks of
    width ``base_width * 2**i`` (output ``4 x`` that), stages 2 to 4 starting with stride 2. The head maps
    the pooled features to the mean and log-variance of ``q(z | x)``.

    Arguments:
        image_size: height = width of the input images.
        in_channels: 1 (grey) or 3 (RGB), any positive number works.
        z_dim: dimension of the latent code.
        depths: bottlenecks per stage; ``(3, 4, 23, 3)`` is ResNet-101, ``(3, 4, 6, 3)`` ResNet-50.
        base_width: width of the first stage (64 in ResNet); the output has ``32 * base_width`` features.
        norm: ``"batch"`` (ResNet) or ``"group"`` (independent of the batch size).

    Example:
        >>> enc = Encoder(28, in_channels=1, z_dim=8, base_width=4)
        >>> q = enc(torch.rand(2, 1, 28, 28) * 2 - 1)
        >>> q.mean.shape, q.kl().shape
        (torch.Size([2, 8]), torch.Size([2]))
    """

    def __init__(
        self,
        image_size: int,
        in_channels: int = 3,
        z_dim: int = 128,
        depths: Sequence[int] = (1, 1, 1, 1),
        base_width: int = 16,
        norm: NormKind = "batch",
    ) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        if len(depths) != 4 or min(depths) < 1:
            raise ValueError(f"Encoder: expected 4 positive stage depths, e.g. (3, 4, 23, 3), got {depths}")
        check_ints({"in_channels": in_channels, "z_dim": z_dim, "base_width": base_width}, "Encoder")
        if image_size < 8:
            raise ValueError(f"Encoder: expected image_size >= 8, got {image_size}")
        if norm not in ("batch", "group"):
            raise ValueError(f"Encoder: norm must be 'batch' or 'group', got {norm!r}")
        self.image_size = image_size
        self.in_channels = in_channels
        self.z_dim = z_dim
        self.depths = depths
        self.base_width = base_width
        self.norm = norm
        self._folded: dict[str, Any] = {}  # inference copy with BatchNorm folded into the convolutions (not a submodule)

        if image_size >= 64:
            stem: list[nn.Module] = [
                nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False),
                make_norm(norm, base_width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            ]
        else:
            stem = [
                nn.Conv2d(in_channels, base_width, 3, stride=1, padding=1, bias=False),
                make_norm(norm, base_width),
                nn.ReLU(inplace=True),
            ]
        self.stem = nn.Sequential(*stem)

        stages: list[nn.Module] = []
        channels = base_width
        for i, depth in enumerate(depths):
            width = base_width * 2**i
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(Bottleneck(channels, width, stride, norm))
                channels = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.feature_dim = channels
        self.head = nn.Linear(channels, 2 * z_dim)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        """Pooled ResNet features ``(B, feature_dim)`` of images ``(B, C, H, W)``.

        In eval mode without autograd (``torch.no_grad`` / ``torch.inference_mode``) BatchNorm runs folded into the
        convolutions before it (:meth:`folded`): the same function (up to float rounding, ~1e-6) in about half the
        time on a CPU, where each BatchNorm is otherwise another pass over the feature maps.
        """
        check_image(x, "Encoder", self.in_channels, self.image_size)
        if not self.training and not torch.is_grad_enabled() and self.norm == "batch":
            h = self.folded()(x)
        else:
            h = self.stages(self.stem(x))  # (B, 32 * base_width, H', W')
        return h.mean(dim=(2, 3))  # global average pool -> (B, 32 * base_width)

    def folded(self) -> nn.Module:
        """``stem`` and ``stages`` with each BatchNorm folded into its convolution (eval-mode statistics), in the
        weights' memory layout; rebuilt whenever a parameter or buffer changed (optimiser step, ``load_state_dict``,
        ``.to``). Kept outside the module tree: the state dict is unchanged."""
        if self.norm != "batch":
            raise ValueError(f"Encoder.folded: only BatchNorm folds into a convolution, this encoder has {self.norm!r}")
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in chain(self.parameters(), self.buffers()))
        if self._folded.get("key") != key:
            with torch.inference_mode(False), torch.no_grad():
                net: Any = copy.deepcopy(nn.Sequential(self.stem, self.stages)).eval()
                net[0][0], net[0][1] = _fold(net[0][0], net[0][1]), nn.Identity()  # stem: conv, norm, ...
                for block in net.modules():
                    if isinstance(block, Bottleneck):
                        block.conv1, block.norm1 = _fold(block.conv1, block.norm1), nn.Identity()
                        block.conv2, block.norm2 = _fold(block.conv2, block.norm2), nn.Identity()
                        block.conv3, block.norm3 = _fold(block.conv3, block.norm3), nn.Identity()
                        if isinstance(block.shortcut, nn.Sequential):  # projection: conv, norm
                            block.shortcut = _fold(block.shortcut[0], block.shortcut[1])
                w: Any = self.stem[0].weight
                if w.dim() == 4 and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
                    net = net.to(memory_format=torch.channels_last)
                net.requires_grad_(False)
            self._folded.clear()
            self._folded.update(key=key, net=net)
        return self._folded["net"]

    def forward(self, x: Tensor) -> DiagonalGaussian:
        """The posterior ``q(z | x)`` of images ``x`` in [-1, 1] of shape ``(B, in_channels, size, size)``."""
        mean, logvar = self.head(self.features(x)).chunk(2, dim=1)  # (B, 2 * z_dim) -> 2 x (B, z_dim)
        return DiagonalGaussian(mean, logvar)
