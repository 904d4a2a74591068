"""The decoder Λ of the target autoencoder (supplementary Sec. F, Tab. S2b): a BigGAN generator fed by z.

BigGAN is class-conditional; the autoencoder has no classes, so an MLP maps z to a softmax over
``n_classes`` "pseudo classes" whose embedding ``h`` replaces BigGAN's class embedding. Every residual
up-block is conditioned on ``concat(z, h)`` through conditional BatchNorm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm

from ..flows.checks import check_ints

__all__ = ["ConditionalBatchNorm2d", "Decoder", "NonLocalBlock", "UpBlock", "decoder_layout"]

# BigGAN's width multipliers (of ``ch``), from the 4x4 (7x7 for 28 px) input to the last block's output.
DEFAULT_MULTIPLIERS: dict[int, tuple[int, ...]] = {
    28: (4, 2, 1),  # 7 -> 14 -> 28
    32: (4, 4, 2, 1),  # 4 -> 8 -> 16 -> 32
    64: (16, 16, 8, 4, 2),  # BigGAN 64
    128: (16, 16, 8, 4, 2, 1),  # BigGAN 128, Tab. S2b
    256: (16, 16, 8, 8, 4, 2, 1),  # BigGAN 256
}


def decoder_layout(image_size: int) -> tuple[int, int]:
    """``(start_resolution, n_up_blocks)`` for ``image_size = start * 2**n_up`` with start 4 (else 7).

    Example: 28 -> (7, 2), 32 -> (4, 3), 128 -> (4, 5).
    """
    for start in (4, 7):
        ratio = image_size // start
        if image_size % start == 0 and ratio >= 2 and ratio & (ratio - 1) == 0:
            return start, int(math.log2(ratio))
    raise ValueError(
        f"Decoder: image_size must be 4 * 2**k or 7 * 2**k (k >= 1), e.g. 28, 32, 64, 128, 256; got {image_size}"
    )


def _identity(module: nn.Module) -> nn.Module:
    return module


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without affine parameters, then ``(1 + W_g c) * x + W_b c`` with linear maps of a condition ``c``."""

    def __init__(self, channels: int, cond_dim: int, sn: Callable[[nn.Module], nn.Module] = _identity) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = sn(nn.Linear(cond_dim, channels, bias=False))
        self.bias = sn(nn.Linear(cond_dim, channels, bias=False))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        gain = 1.0 + self.gain(c)[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
        bias = self.bias(c)[:, :, None, None]
        return self.bn(x) * gain + bias


class UpBlock(nn.Module):
    """BigGAN residual up-block: cBN, ReLU, 2x nearest upsample, conv3x3, cBN, ReLU, conv3x3; skip = conv1x1(up(x))."""

    def __init__(
        self, in_channels: int, out_channels: int, cond_dim: int, sn: Callable[[nn.Module], nn.Module] = _identity
    ) -> None:
        super().__init__()
        self.norm1 = ConditionalBatchNorm2d(in_channels, cond_dim, sn)
        self.conv1 = sn(nn.Conv2d(in_channels, out_channels, 3, padding=1))
        self.norm2 = ConditionalBatchNorm2d(out_channels, cond_dim, sn)
        self.conv2 = sn(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = sn(nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.relu(self.norm1(x, c))
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (B, C, H, W) -> (B, C, 2H, 2W)
        h = self.conv2(F.relu(self.norm2(self.conv1(h), c)))
        skip = self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))
        return h + skip


class NonLocalBlock(nn.Module):
    """SAGAN/BigGAN self-attention: ``x + gamma * o(attention(theta(x), maxpool(phi(x)), maxpool(g(x))))``.

    theta and phi have ``C/8`` channels, g has ``C/2``; keys and values are 2x2 max-pooled, so H and W
    must be even. ``gamma`` starts at 0, so the block starts as the identity. Attention logits are not
    scaled (as in BigGAN).

    Arguments:
        channels: input channels C (at least 8).
    """

    def __init__(self, channels: int, sn: Callable[[nn.Module], nn.Module] = _identity) -> None:
        super().__init__()
        if channels < 8:
            raise ValueError(f"NonLocalBlock: expected at least 8 channels, got {channels}")
        self.channels = channels
        self.theta = sn(nn.Conv2d(channels, channels // 8, 1, bias=False))
        self.phi = sn(nn.Conv2d(channels, channels // 8, 1, bias=False))
        self.g = sn(nn.Conv2d(channels, channels // 2, 1, bias=False))
        self.o = sn(nn.Conv2d(channels // 2, channels, 1, bias=False))
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if c != self.channels or h % 2 or w % 2:
            raise ValueError(
                f"NonLocalBlock: expected (B, {self.channels}, H, W) with even H and W, got {tuple(x.shape)}"
            )
        q = self.theta(x).flatten(2).transpose(1, 2)  # (B, C/8, H, W) -> (B, HW, C/8)
        k = F.max_pool2d(self.phi(x), 2).flatten(2).transpose(1, 2)  # -> (B, HW/4, C/8)
        v = F.max_pool2d(self.g(x), 2).flatten(2).transpose(1, 2)  # -> (B, HW/4, C/2)
        attn = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=1.0)[:, 0]  # (B, HW, C/2)
        attn = attn.transpose(1, 2).reshape(b, c // 2, h, w)  # (B, HW, C/2) -> (B, C/2, H, W)
        return x + self.gamma * self.o(attn)


class Decoder(nn.Module):
    """Λ: BigGAN generator driven by the latent code alone (Tab. S2b).

    ``z -> 3 x (Linear, LReLU 0.2) -> Linear -> softmax`` over ``n_classes`` gives pseudo-class
    probabilities ``c``; ``h = W c`` (no bias) replaces BigGAN's class embedding. ``Linear(z)`` is reshaped
    to a ``start x start`` map (4x4, or 7x7 for 28 px) of ``ch * multipliers[0]`` channels, then ``n_up``
    residual up-blocks conditioned on ``concat(z, h)`` (output widths ``ch * multipliers[1:]``), a
    non-local block after the block that outputs ``attn_resolution``, and BN, ReLU, conv3x3, tanh.

    Arguments:
        image_size: output height = width: ``4 * 2**k`` or ``7 * 2**k`` (28, 32, 64, 128, 256, ...).
        out_channels: image channels.
        z_dim: dimension of the latent code.
        ch: base width (96 in BigGAN).
        channel_multipliers: ``n_up + 1`` multipliers of ``ch``; default BigGAN's for 64/128/256 px and
            ``(4, 2, 1)`` / ``(4, 4, 2, 1)`` for 28 / 32 px. Required for other sizes.
        attn_resolution: resolution of the non-local block (64 in the paper), or None for none.
        n_classes: number of pseudo classes of the softmax (1000 in the paper).
        h_dim: dimension of the class embedding ``h`` (128 in BigGAN).
        class_hidden_dim: width of the z -> classes MLP (256 in Tab. S2b).
        spectral_norm: spectral normalisation of the generator's convolutions and linear layers, as BigGAN.

    Example:
        >>> dec = Decoder(32, out_channels=3, z_dim=16, ch=8, attn_resolution=16, n_classes=10)
        >>> dec(torch.randn(2, 16)).shape
        torch.Size([2, 3, 32, 32])
    """

    def __init__(
        self,
        image_size: int,
        out_channels: int = 3,
        z_dim: int = 128,
        ch: int = 32,
        channel_multipliers: Sequence[int] | None = None,
        attn_resolution: int | None = None,
        n_classes: int = 1000,
        h_dim: int = 128,
        class_hidden_dim: int = 256,
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        sizes = {"out_channels": out_channels, "z_dim": z_dim, "ch": ch, "n_classes": n_classes, "h_dim": h_dim,
                 "class_hidden_dim": class_hidden_dim}  # fmt: skip
        check_ints(sizes, "Decoder")
        start, n_up = decoder_layout(image_size)
        if channel_multipliers is None:
            if image_size not in DEFAULT_MULTIPLIERS:
                raise ValueError(
                    f"Decoder: no default channel_multipliers for image_size {image_size}; pass {n_up + 1} "
                    f"multipliers (defaults exist for {sorted(DEFAULT_MULTIPLIERS)})"
                )
            channel_multipliers = DEFAULT_MULTIPLIERS[image_size]
        mults = tuple(int(m) for m in channel_multipliers)
        if len(mults) != n_up + 1 or min(mults) < 1:
            raise ValueError(
                f"Decoder: image_size {image_size} = {start} * 2**{n_up} needs {n_up + 1} positive "
                f"channel_multipliers, got {mults}"
            )
        resolutions = [start * 2 ** (i + 1) for i in range(n_up)]  # output resolution of each up-block
        if attn_resolution is not None and attn_resolution not in resolutions:
            raise ValueError(
                f"Decoder: attn_resolution must be None or one of the block resolutions {resolutions} "
                f"for image_size {image_size}, got {attn_resolution}"
            )
        self.image_size = image_size
        self.out_channels = out_channels
        self.z_dim = z_dim
        self.start = start
        self.channel_multipliers = mults
        self.attn_resolution = attn_resolution
        sn: Callable[[nn.Module], nn.Module] = _spectral_norm if spectral_norm else _identity

        self.to_classes = nn.Sequential(
            nn.Linear(z_dim, class_hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(class_hidden_dim, class_hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(class_hidden_dim, class_hidden_dim),
            nn.LeakyReLU(0.2),
            nn.Linear(class_hidden_dim, n_classes),
        )
        self.embed = nn.Linear(n_classes, h_dim, bias=False)
        cond_dim = z_dim + h_dim
        self.fc = sn(nn.Linear(z_dim, start * start * ch * mults[0]))
        self.blocks = nn.ModuleList(
            UpBlock(ch * mults[i], ch * mults[i + 1], cond_dim, sn) for i in range(n_up)
        )
        self.attn_index = resolutions.index(attn_resolution) if attn_resolution is not None else -1
        self.attention = NonLocalBlock(ch * mults[self.attn_index + 1], sn) if attn_resolution is not None else None
        self.out_norm = nn.BatchNorm2d(ch * mults[-1])
        self.out_conv = sn(nn.Conv2d(ch * mults[-1], out_channels, 3, padding=1))

    @property
    def last_layer(self) -> Tensor:
        """The weight of the final convolution (the unnormalised one under spectral norm), for Eq. 17."""
        if parametrize.is_parametrized(self.out_conv, "weight"):
            return self.out_conv.parametrizations.weight.original  # type: ignore[union-attr,return-value]
        return self.out_conv.weight  # type: ignore[return-value]  # a Conv2d's weight is a Parameter

    def class_probabilities(self, z: Tensor) -> Tensor:
        """Softmax over the ``n_classes`` pseudo classes, ``(B, n_classes)``."""
        return torch.softmax(self.to_classes(z), dim=1)

    def forward(self, z: Tensor) -> Tensor:
        """Images ``(B, out_channels, image_size, image_size)`` in [-1, 1] from codes ``z`` of shape ``(B, z_dim)``."""
        if not isinstance(z, Tensor):
            raise TypeError(f"Decoder: expected a latent tensor (B, {self.z_dim}), got {type(z).__name__}")
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"Decoder: expected latent codes of shape (B, {self.z_dim}), got {tuple(z.shape)}")
        h = self.embed(self.class_probabilities(z))  # (B, n_classes) -> (B, h_dim)
        cond = torch.cat([z, h], dim=1)  # (B, z_dim + h_dim)
        x = self.fc(z).view(z.shape[0], -1, self.start, self.start)  # (B, s*s*C0) -> (B, C0, s, s)
        if self.last_layer.is_contiguous(memory_format=torch.channels_last):
            # convolutions whose weights are channels_last convert an NCHW input on every call (the first block's,
            # after the upsampling: a fifth of the decoder's own time in the profiler, 1.1x measured on CPU); one
            # conversion of the small map here instead, same values
            x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.blocks):
            x = block(x, cond)  # (B, C_i, r, r) -> (B, C_i+1, 2r, 2r)
            if i == self.attn_index and self.attention is not None:
                x = self.attention(x)
        x = self.out_conv(F.relu(self.out_norm(x)))
        return torch.tanh(x)
