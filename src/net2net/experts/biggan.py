"""BigGAN as a frozen target expert, with the dequantisation VAE of Tab. S4 (supplementary G.2).

The paper translates a sentence encoder into the latent space of a pretrained BigGAN. A BigGAN sample is
``Λ(z̃, h)`` with noise ``z̃`` and the class embedding ``h = W·c`` of a one-hot class vector ``c``. Since ``h``
takes only K discrete values, a cINN trained on ``[z̃, h]`` would collapse onto them; the paper therefore passes
``h`` through a small fully connected VAE and uses its *stochastic reconstruction* ``ĥ`` (Eq. 24)::

    z_tgt = [z̃, ĥ]        z̃ ∈ R^dim_z (truncated normal),  ĥ ~ VAE(h) ∈ R^embed_dim

The pieces:

- :class:`BigGAN` / :class:`BigGANConfig`: the BigGAN-deep generator in the layout of the
  ``pytorch-pretrained-BigGAN`` package (same ``config.json`` fields, same state-dict names, spectral norms
  evaluated as ``torch.nn.utils.spectral_norm`` does in eval mode), so that a directory holding that package's
  ``config.json`` and ``pytorch_model.bin`` (or ``model.safetensors``) loads with
  :meth:`BigGAN.from_pretrained`. Any size can be built; the tests use tiny randomly initialised ones: the
  released weights cannot be had offline, so loading them has been checked against the package's names and
  shapes, not against the files themselves.
- :class:`DequantizationVAE`: Tab. S4, with :func:`fit_dequantization_vae` to train it on the K class embeddings
  (the rows of ``W``) and :meth:`DequantizationVAE.class_accuracy` to check that ``ĥ`` keeps the class.
- :class:`BigGANTarget`: the frozen target expert. ``decode(z_tgt)`` gives images in [-1, 1]; ``split`` /
  ``join`` convert between ``z_tgt`` and ``(z̃, ĥ)``; :meth:`BigGANTarget.synthetic_pairs` samples training
  pairs (images, z_tgt, labels): a source expert applied to the images gives the cINN's condition (G.2).

A GAN has no encoder: :class:`BigGANTarget` has no ``encode`` attribute (the target-expert protocol makes it
optional for generators, DESIGN.md §3), so ``hasattr(target, "encode")`` is False and calling it raises an
``AttributeError`` that says so.

Dimensions: BigGAN-deep has ``dim_z = 128``, so ``z_tgt`` has 256 entries. The paper's 268 = 140 + 128 comes
from the non-deep BigGAN 256 used by the original code, whose 140-d noise is split into chunks over its blocks;
that architecture is not implemented here.

Files are read without unpickling code: ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..autoencoder.encoder import DiagonalGaussian
from ..io import atomic_path, atomic_save_safetensors
from .base import describe_state_mismatch

__all__ = [
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "VAE_NAME",
    "WEIGHTS_NAME",
    "BigGAN",
    "BigGANBatchNorm",
    "BigGANConfig",
    "BigGANTarget",
    "DequantizationVAE",
    "GenBlock",
    "SelfAttention",
    "SNConv2d",
    "SNLinear",
    "WeightsNotFoundError",
    "fit_dequantization_vae",
    "truncated_noise",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"  # file names of the pytorch-pretrained-BigGAN layout
WEIGHTS_NAME = "pytorch_model.bin"
SAFE_WEIGHTS_NAME = "model.safetensors"
VAE_NAME = "dequantization_vae.safetensors"  # optional, beside the generator files
VAE_FORMAT = "net2net.DequantizationVAE/1"  # the "format" metadata entry of a saved VAE

PathLike = str | os.PathLike[str]
Layer = tuple[bool, int, int]  # (upsample, input width, output width), widths in multiples of channel_width


class WeightsNotFoundError(FileNotFoundError, ValueError):
    """A weights or config file that does not exist (both a FileNotFoundError and a ValueError)."""


# -- configuration ----------------------------------------------------------------------------------------------

# The block layouts of the released BigGAN-deep generators, by output resolution.
DEEP_LAYERS: dict[int, list[Layer]] = {
    128: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8),
          (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    256: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    512: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
          (False, 1, 1), (True, 1, 1)],
}  # fmt: skip


@dataclass
class BigGANConfig:
    """Architecture of a BigGAN-deep generator; the fields of pytorch-pretrained-BigGAN's ``config.json``.

    Two generalisations that leave the released configurations unchanged: the class embedding may have a
    dimension other than ``z_dim`` (the condition of every block is ``[z̃, h]`` of ``z_dim + class_embed_dim``
    entries), and the first block may start at a width other than ``16 · channel_width``.

    Arguments:
        output_dim: side of the square output images (``4 · 2^(number of upsampling blocks)``).
        z_dim: dimension of the noise z̃.
        class_embed_dim: dimension of the class embedding h = W·c.
        channel_width: ``ch``; block widths are multiples of it (at least 3: the RGB image is its first 3 maps).
        num_classes: K, the length of the class vector c.
        layers: one ``(upsample, in multiple, out multiple)`` per residual block.
        attention_layer_position: index of the block that a self-attention layer precedes (None: no attention).
        eps: epsilon of the batch norms (and of the spectral norms, as in the reference).
        n_stats: number of stored batch-norm statistics, for truncations evenly spaced in [0, 1].

    Example:
        >>> BigGANConfig.deep(256).output_dim, len(BigGANConfig.deep(256).layers)
        (256, 12)
        >>> tiny = BigGANConfig(output_dim=16, z_dim=4, class_embed_dim=4, channel_width=4, num_classes=3,
        ...                     layers=[(True, 2, 1), (True, 1, 1)], attention_layer_position=0)
    """

    output_dim: int = 128
    z_dim: int = 128
    class_embed_dim: int = 128
    channel_width: int = 128
    num_classes: int = 1000
    layers: list[Layer] = field(default_factory=lambda: list(DEEP_LAYERS[128]))
    attention_layer_position: int | None = 8
    eps: float = 1e-4
    n_stats: int = 51

    def __post_init__(self) -> None:
        try:
            self.layers = [(bool(u), int(i), int(o)) for u, i, o in self.layers]
        except (TypeError, ValueError) as e:
            raise ValueError(
                f"BigGANConfig.layers: expected a list of (upsample, in multiple, out multiple), received "
                f"{self.layers!r}"
            ) from e
        for name in ("output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "n_stats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"BigGANConfig.{name}: expected a positive int, received {value!r}")
        if self.channel_width < 3:
            raise ValueError(f"BigGANConfig.channel_width: expected at least 3 (RGB), received {self.channel_width}")
        if self.n_stats < 2:
            raise ValueError(f"BigGANConfig.n_stats: expected at least 2, received {self.n_stats}")
        if not self.layers:
            raise ValueError("BigGANConfig.layers: expected at least one block, received none")
        for k, (_, w_in, w_out) in enumerate(self.layers):
            c_in = w_in * self.channel_width
            if w_out > w_in or c_in % 4:
                raise ValueError(
                    f"BigGANConfig.layers[{k}] = {self.layers[k]}: expected an output width <= input width and an "
                    f"input of a multiple of 4 channels (bottleneck of in/4), received {c_in} -> "
                    f"{w_out * self.channel_width} channels"
                )
            if k > 0 and self.layers[k - 1][2] != w_in:
                raise ValueError(
                    f"BigGANConfig.layers[{k}]: expected input width {self.layers[k - 1][2]} (the output of block "
                    f"{k - 1}), received {w_in}"
                )
        if self.layers[-1][2] != 1:
            raise ValueError(
                f"BigGANConfig.layers: the last block must end at width 1 (channel_width channels), received "
                f"{self.layers[-1][2]}"
            )
        size = 4 * 2 ** sum(u for u, _, _ in self.layers)
        if size != self.output_dim:
            raise ValueError(
                f"BigGANConfig: the layers upsample 4x4 to {size}x{size}, but output_dim is {self.output_dim}"
            )
        pos = self.attention_layer_position
        if pos is not None:
            if isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < len(self.layers):
                raise ValueError(
                    f"BigGANConfig.attention_layer_position: expected None or a block index in "
                    f"[0, {len(self.layers) - 1}], received {pos!r}"
                )
            if (self.layers[pos][1] * self.channel_width) % 8:
                raise ValueError(
                    f"BigGANConfig: self-attention needs a multiple of 8 channels, block {pos} has "
                    f"{self.layers[pos][1] * self.channel_width}"
                )

    @classmethod
    def deep(cls, resolution: Literal[128, 256, 512] = 128, **overrides: Any) -> BigGANConfig:
        """The configuration of the released BigGAN-deep 128, 256 or 512 (``overrides`` replace fields)."""
        if resolution not in DEEP_LAYERS:
            raise ValueError(
                f"BigGANConfig.deep: expected a resolution in {sorted(DEEP_LAYERS)}, received {resolution!r}"
            )
        return cls(**{"output_dim": resolution, "layers": list(DEEP_LAYERS[resolution]), **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> BigGANConfig:
        """A config from a mapping (e.g. a parsed ``config.json``); unknown keys are ignored with a warning."""
        if not isinstance(values, Mapping):
            raise ValueError(
                f"{source}: expected a JSON object of BigGAN config fields, received {type(values).__name__}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            warnings.warn(f"{source}: ignoring unknown BigGAN config field(s) {unknown}", stacklevel=2)
        try:
            return cls(**{k: v for k, v in values.items() if k in known})
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e

    @classmethod
    def from_json_file(cls, path: PathLike) -> BigGANConfig:
        """Read a ``config.json`` of pytorch-pretrained-BigGAN (or one written by :meth:`to_json_file`)."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsNotFoundError(f"BigGAN config not found: '{p}'")
        try:
            values = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read '{p}' as JSON: {e}") from e
        return cls.from_dict(values, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields (``layers`` as lists, as in the reference files)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["layers"] = [list(layer) for layer in self.layers]
        return out

    def to_json_file(self, path: PathLike) -> Path:
        """Write the fields as ``config.json`` (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return Path(path)


# -- spectrally normalised layers -------------------------------------------------------------------------------


class _SpectralNorm(nn.Module):
    """Base of :class:`SNLinear` / :class:`SNConv2d`: ``weight = weight_orig / σ`` with ``σ = uᵀ W v``.

    Stores ``weight_orig``, ``weight_u`` and ``weight_v`` under the names that ``torch.nn.utils.spectral_norm``
    uses (so reference state dicts load), and evaluates σ like that function does in eval mode: from the stored
    singular-vector estimates, without a power iteration (the generator is frozen).
    """

    weight_u: Tensor
    weight_v: Tensor

    def _init_spectral_norm(self, shape: tuple[int, ...], bias: bool, eps: float) -> None:
        self.eps = eps
        self.weight_orig = nn.Parameter(torch.empty(shape))
        self.bias = nn.Parameter(torch.zeros(shape[0])) if bias else None
        self.register_buffer("weight_u", torch.empty(shape[0]))
        self.register_buffer("weight_v", torch.empty(math.prod(shape[1:])))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Weight ~ N(0, 0.02²) (one of BigGAN's initialisations; the scale is normalised away), zero bias,
        singular vectors by power iteration."""
        nn.init.normal_(self.weight_orig, 0.0, 0.02)
        if self.bias is not None:
            self.bias.zero_()
        self.reset_singular_vectors()

    @torch.no_grad()
    def reset_singular_vectors(self, n_iter: int = 30) -> None:
        """Re-estimate ``weight_u`` and ``weight_v`` from ``weight_orig`` by ``n_iter`` power iterations."""
        w = self.weight_orig.flatten(1)  # (out, in·kh·kw)
        u = F.normalize(torch.ones(w.shape[0], dtype=w.dtype, device=w.device), dim=0, eps=self.eps)
        for _ in range(n_iter):
            v = F.normalize(torch.mv(w.t(), u), dim=0, eps=self.eps)
            u = F.normalize(torch.mv(w, v), dim=0, eps=self.eps)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    @property
    def weight(self) -> Tensor:
        """The spectrally normalised weight ``weight_orig / σ``."""
        sigma = torch.dot(self.weight_u, torch.mv(self.weight_orig.flatten(1), self.weight_v))
        return self.weight_orig / sigma


class SNLinear(_SpectralNorm):
    """Spectrally normalised ``Linear(in_features → out_features)``.

    Example:
        >>> layer = SNLinear(6, 4)
        >>> layer(torch.zeros(2, 6)).shape
        torch.Size([2, 4])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, eps: float = 1e-4) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_spectral_norm((out_features, in_features), bias, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class SNConv2d(_SpectralNorm):
    """Spectrally normalised ``Conv2d`` (stride 1, square kernel)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, padding: int = 0, bias: bool = True,
        eps: float = 1e-4,
    ) -> None:  # fmt: skip
        super().__init__()
        self.in_channels, self.out_channels, self.padding = in_channels, out_channels, padding
        self._init_spectral_norm((out_channels, in_channels, kernel_size, kernel_size), bias, eps)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        k = self.weight_orig.shape[-1]
        return f"{self.in_channels}, {self.out_channels}, kernel_size={k}, padding={self.padding}"


# -- generator blocks ---------------------------------------------------------------------------------------------


def _check_truncation(truncation: object, name: str) -> float:
    if isinstance(truncation, Tensor) and truncation.numel() == 1:
        truncation = truncation.item()
    if isinstance(truncation, bool) or not isinstance(truncation, (int, float)) or not 0.0 < truncation <= 1.0:
        raise ValueError(f"{name}: expected a truncation in (0, 1], received {truncation!r}")
    return float(truncation)


class BigGANBatchNorm(nn.Module):
    """Batch norm with stored statistics per truncation, conditional (class-and-noise) or plain affine.

    BigGAN-deep keeps ``n_stats`` sets of batch statistics, measured at truncations ``0, 1/(n_stats-1), …, 1``;
    a forward pass uses the set of its truncation, linearly interpolated between the two nearest. At the grid
    points (e.g. 0.4, 0.5, 1.0 for 51 sets) this is the stored set itself, as in the reference package; between
    them the reference weights the two sets the other way round, so its images differ there. Statistics are
    never updated.

    Arguments:
        num_features: channels C.
        condition_dim: length of the condition vector; None for the plain (unconditional) variant.
        n_stats: number of stored statistics.
        eps: added to the variance.

    Example:
        >>> bn = BigGANBatchNorm(4, condition_dim=6)
        >>> bn(torch.zeros(2, 4, 8, 8), 0.5, torch.zeros(2, 6)).shape
        torch.Size([2, 4, 8, 8])
    """

    running_means: Tensor
    running_vars: Tensor

    def __init__(
        self, num_features: int, condition_dim: int | None = None, n_stats: int = 51, eps: float = 1e-4
    ) -> None:
        super().__init__()
        self.num_features, self.eps, self.conditional = num_features, eps, condition_dim is not None
        self.register_buffer("running_means", torch.zeros(n_stats, num_features))
        self.register_buffer("running_vars", torch.ones(n_stats, num_features))
        if condition_dim is not None:  # gain 1 + scale(cond), bias offset(cond)
            self.scale = SNLinear(condition_dim, num_features, bias=False, eps=eps)
            self.offset = SNLinear(condition_dim, num_features, bias=False, eps=eps)
        else:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))

    def statistics(self, truncation: float) -> tuple[Tensor, Tensor]:
        """Mean and variance, each ``(C,)``, for ``truncation`` in (0, 1]."""
        pos = _check_truncation(truncation, "BigGANBatchNorm") * (self.running_means.shape[0] - 1)
        if abs(pos - round(pos)) < 1e-6:  # on the grid
            i = round(pos)
            return self.running_means[i], self.running_vars[i]
        lo = math.floor(pos)
        frac = pos - lo
        mean = (1 - frac) * self.running_means[lo] + frac * self.running_means[lo + 1]
        var = (1 - frac) * self.running_vars[lo] + frac * self.running_vars[lo + 1]
        return mean, var

    def forward(self, x: Tensor, truncation: float, condition: Tensor | None = None) -> Tensor:
        mean, var = self.statistics(truncation)
        x = (x - mean[:, None, None]) * torch.rsqrt(var + self.eps)[:, None, None]
        if self.conditional:
            if condition is None:
                raise ValueError("BigGANBatchNorm: this conditional batch norm needs a condition vector")
            gain = 1 + self.scale(condition)[:, :, None, None]  # (B, C) -> (B, C, 1, 1)
            return x * gain + self.offset(condition)[:, :, None, None]
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class SelfAttention(nn.Module):
    """Self-attention over the positions of a feature map (SAGAN), keys and values pooled 2×2."""

    def __init__(self, channels: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.channels = channels
        self.snconv1x1_theta = SNConv2d(channels, channels // 8, bias=False, eps=eps)
        self.snconv1x1_phi = SNConv2d(channels, channels // 8, bias=False, eps=eps)
        self.snconv1x1_g = SNConv2d(channels, channels // 2, bias=False, eps=eps)
        self.snconv1x1_o_conv = SNConv2d(channels // 2, channels, bias=False, eps=eps)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        query = self.snconv1x1_theta(x).flatten(2)  # (B, C/8, HW)
        key = F.max_pool2d(self.snconv1x1_phi(x), 2).flatten(2)  # (B, C/8, HW/4)
        value = F.max_pool2d(self.snconv1x1_g(x), 2).flatten(2)  # (B, C/2, HW/4)
        attn = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (B, HW, HW/4)
        out = (value @ attn.transpose(1, 2)).view(b, c // 2, h, w)  # (B, C/2, HW) -> (B, C/2, H, W)
        return x + self.gamma * self.snconv1x1_o_conv(out)


class GenBlock(nn.Module):
    """BigGAN-deep residual block: 4 × [conditional BN, ReLU, conv] with a 1×1 → 3×3 → 3×3 → 1×1 bottleneck.

    The skip path keeps the first ``out_channels`` channels and is upsampled like the main path.
    """

    def __init__(
        self, in_channels: int, out_channels: int, condition_dim: int, upsample: bool = False,
        reduction: int = 4, n_stats: int = 51, eps: float = 1e-4,
    ) -> None:  # fmt: skip
        super().__init__()
        mid = in_channels // reduction
        self.upsample, self.out_channels = upsample, out_channels
        self.bn_0 = BigGANBatchNorm(in_channels, condition_dim, n_stats, eps)
        self.conv_0 = SNConv2d(in_channels, mid, 1, eps=eps)
        self.bn_1 = BigGANBatchNorm(mid, condition_dim, n_stats, eps)
        self.conv_1 = SNConv2d(mid, mid, 3, padding=1, eps=eps)
        self.bn_2 = BigGANBatchNorm(mid, condition_dim, n_stats, eps)
        self.conv_2 = SNConv2d(mid, mid, 3, padding=1, eps=eps)
        self.bn_3 = BigGANBatchNorm(mid, condition_dim, n_stats, eps)
        self.conv_3 = SNConv2d(mid, out_channels, 1, eps=eps)

    def forward(self, x: Tensor, condition: Tensor, truncation: float) -> Tensor:
        h = self.conv_0(F.relu(self.bn_0(x, truncation, condition)))
        h = F.relu(self.bn_1(h, truncation, condition))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.conv_1(h)
        h = self.conv_2(F.relu(self.bn_2(h, truncation, condition)))
        h = self.conv_3(F.relu(self.bn_3(h, truncation, condition)))
        skip = x[:, : self.out_channels]
        if self.upsample:
            skip = F.interpolate(skip, scale_factor=2, mode="nearest")
        return h + skip


class _Generator(nn.Module):
    """``[z̃, h]`` → image: linear to 4×4, residual blocks (one preceded by self-attention), BN, ReLU, conv, tanh."""

    def __init__(self, config: BigGANConfig) -> None:
        super().__init__()
        ch, cond = config.channel_width, config.z_dim + config.class_embed_dim
        self.first_channels = ch * config.layers[0][1]
        self.gen_z = SNLinear(cond, 4 * 4 * self.first_channels, eps=config.eps)
        layers: list[nn.Module] = []
        for k, (up, w_in, w_out) in enumerate(config.layers):
            if k == config.attention_layer_position:
                layers.append(SelfAttention(ch * w_in, eps=config.eps))
            layers.append(GenBlock(ch * w_in, ch * w_out, cond, up, n_stats=config.n_stats, eps=config.eps))
        self.layers = nn.ModuleList(layers)
        self.bn = BigGANBatchNorm(ch, None, config.n_stats, config.eps)
        self.conv_to_rgb = SNConv2d(ch, ch, 3, padding=1, eps=config.eps)

    def forward(self, condition: Tensor, truncation: float) -> Tensor:
        x = self.gen_z(condition)  # (B, 4·4·C)
        # the reference weights come from TensorFlow: channels last
        x = x.view(-1, 4, 4, self.first_channels).permute(0, 3, 1, 2).contiguous()  # (B, 4, 4, C) -> (B, C, 4, 4)
        for layer in self.layers:
            x = layer(x, condition, truncation) if isinstance(layer, GenBlock) else layer(x)
        x = self.conv_to_rgb(F.relu(self.bn(x, truncation)))
        return torch.tanh(x[:, :3])  # (B, ch, H, W) -> (B, 3, H, W)


# -- the generator with its class embedding ---------------------------------------------------------------------


def _check_flat(x: object, name: str, dim: int, what: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor of shape (B, {dim}) ({what}), received {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating point tensor ({what}), received dtype {x.dtype}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"{name}: expected shape (B, {dim}) ({what}), received shape {tuple(x.shape)}")
    return x


class BigGAN(nn.Module):
    """BigGAN-deep generator with its class embedding ``W`` (``embeddings``), in pytorch-pretrained-BigGAN's layout.

    Arguments:
        config: the architecture (``BigGANConfig()`` is BigGAN-deep 128).

    Example:
        >>> cfg = BigGANConfig(output_dim=16, z_dim=4, class_embed_dim=6, channel_width=4, num_classes=3,
        ...                    layers=[(True, 2, 1), (True, 1, 1)], attention_layer_position=None)
        >>> g = BigGAN(cfg).eval()
        >>> g(torch.zeros(2, 4), torch.tensor([0, 2]), truncation=0.5).shape
        torch.Size([2, 3, 16, 16])
    """

    def __init__(self, config: BigGANConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else BigGANConfig()
        if not isinstance(self.config, BigGANConfig):
            raise TypeError(f"BigGAN: expected a BigGANConfig, received {type(self.config).__name__}")
        self.embeddings = nn.Linear(self.config.num_classes, self.config.class_embed_dim, bias=False)
        self.generator = _Generator(self.config)

    def embed(self, c: Tensor) -> Tensor:
        """Class embedding ``h = W·c``, ``(B, class_embed_dim)``, of labels ``(B,)`` or class vectors ``(B, K)``.

        Raises:
            ValueError: for labels out of range or class vectors of the wrong length.
        """
        k = self.config.num_classes
        if not isinstance(c, Tensor):
            raise TypeError(
                f"BigGAN.embed: expected labels (B,) or class vectors (B, {k}), received {type(c).__name__}"
            )
        if not c.is_floating_point():
            if c.dim() != 1:
                raise ValueError(
                    f"BigGAN.embed: expected integer labels of shape (B,), received shape {tuple(c.shape)}"
                )
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= k):
                raise ValueError(
                    f"BigGAN.embed: expected labels in [0, {k - 1}], received values in "
                    f"[{int(c.min())}, {int(c.max())}]"
                )
            return self.embeddings.weight.t()[c.long()]  # (K, E)[labels] -> (B, E)
        return self.embeddings(_check_flat(c, "BigGAN.embed", k, "class vectors"))

    def class_embeddings(self) -> Tensor:
        """All K class embeddings, the rows of ``Wᵀ``: ``(num_classes, class_embed_dim)``."""
        return self.embeddings.weight.t()

    def generate_from_embedding(self, z: Tensor, h: Tensor, truncation: float = 1.0) -> Tensor:
        """Images in [-1, 1], ``(B, 3, output_dim, output_dim)``, from noise ``z`` and class embeddings ``h``."""
        cfg = self.config
        _check_flat(z, "BigGAN: noise z", cfg.z_dim, "z_dim")
        _check_flat(h, "BigGAN: class embedding h", cfg.class_embed_dim, "class_embed_dim")
        if z.shape[0] != h.shape[0]:
            raise ValueError(f"BigGAN: z has {z.shape[0]} rows but the class input has {h.shape[0]}")
        truncation = _check_truncation(truncation, "BigGAN")
        return self.generator(torch.cat([z, h], dim=1), truncation)

    def forward(self, z: Tensor, class_vector_or_embedding: Tensor, truncation: float = 1.0) -> Tensor:
        """Images in [-1, 1] from noise ``z`` ``(B, z_dim)`` and labels ``(B,)``, class vectors ``(B, K)`` or
        class embeddings ``(B, class_embed_dim)`` (told apart by their length).

        ``truncation`` in (0, 1] selects the batch-norm statistics; the noise itself is truncated by the caller
        (:func:`truncated_noise`), as in the reference package.

        Raises:
            ValueError: for a float input whose length is neither K nor class_embed_dim, or is both.
        """
        c, cfg = class_vector_or_embedding, self.config
        if isinstance(c, Tensor) and c.is_floating_point() and c.dim() == 2:
            d = c.shape[1]
            if d == cfg.num_classes == cfg.class_embed_dim:
                raise ValueError(
                    f"BigGAN.forward: a float input of length {d} is ambiguous when num_classes == class_embed_dim; "
                    "call generate_from_embedding(z, h) or generate_from_embedding(z, embed(c)) instead"
                )
            if d == cfg.class_embed_dim:
                return self.generate_from_embedding(z, c, truncation)
            if d != cfg.num_classes:
                raise ValueError(
                    f"BigGAN.forward: expected class vectors (B, {cfg.num_classes}) or class embeddings "
                    f"(B, {cfg.class_embed_dim}), received shape {tuple(c.shape)}"
                )
        return self.generate_from_embedding(z, self.embed(c), truncation)

    # -- files ----------------------------------------------------------------------------------------------------
    def save_pretrained(self, directory: PathLike, safe_serialization: bool = False) -> Path:
        """Write ``config.json`` and ``pytorch_model.bin`` (or ``model.safetensors``) into ``directory``.

        Returns the weights file. The layout is pytorch-pretrained-BigGAN's, so that package reads it too.
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.config.to_json_file(d / CONFIG_NAME)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if safe_serialization:
            return atomic_save_safetensors(state, d / SAFE_WEIGHTS_NAME)
        with atomic_path(d / WEIGHTS_NAME) as tmp:
            torch.save(state, tmp)
        return d / WEIGHTS_NAME

    @classmethod
    def from_pretrained(cls, path: PathLike, map_location: str | torch.device = "cpu") -> BigGAN:
        """Load user-supplied BigGAN-deep weights from a local path (nothing is downloaded).

        Arguments:
            path: a directory with ``config.json`` and ``model.safetensors`` or ``pytorch_model.bin`` (the
                layout of pytorch-pretrained-BigGAN), or a weights file (``.safetensors``, ``.bin``, ``.pt``,
                ``.pth``) with ``config.json`` beside it.
            map_location: where to load the tensors.

        Raises:
            WeightsNotFoundError: (a FileNotFoundError and ValueError) if the path, config or weights are missing.
            ValueError: if a file cannot be read, or the weights do not fit the configured architecture (the
                message names missing and unexpected keys and shape mismatches).

        Example:
            >>> g = BigGAN.from_pretrained("~/weights/biggan-deep-128")  # doctest: +SKIP
        """
        p = Path(path).expanduser()
        if p.is_dir():
            config_file = p / CONFIG_NAME
            candidates = [p / SAFE_WEIGHTS_NAME, p / WEIGHTS_NAME]
            weights = next((c for c in candidates if c.is_file()), None)
            if weights is None:
                found = sorted(x.name for x in p.iterdir())[:10]
                raise WeightsNotFoundError(
                    f"no BigGAN weights in '{p}': expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} (with "
                    f"{CONFIG_NAME}), found {found}"
                )
        elif p.is_file():
            config_file, weights = p.parent / CONFIG_NAME, p
        else:
            raise WeightsNotFoundError(
                f"BigGAN weights not found: '{p}' does not exist; expected a directory with {CONFIG_NAME} and "
                f"{WEIGHTS_NAME} or {SAFE_WEIGHTS_NAME} (BigGAN weights are never downloaded)"
            )
        config = BigGANConfig.from_json_file(config_file)
        state = _read_state_dict(weights, map_location, "BigGAN")
        model = cls(config)
        _check_state(model.state_dict(), state, str(weights), "BigGAN", f"the architecture of '{config_file}'")
        model.load_state_dict(state, strict=True)
        logger.info("loaded BigGAN (%d px, %d classes) from %s", config.output_dim, config.num_classes, weights)
        return model


# -- the dequantisation VAE (Tab. S4) -----------------------------------------------------------------------------


class _MLP(nn.Module):
    """``hidden_layers`` × (Linear, LeakyReLU(0.01)), then Linear → out_dim (no output activation)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, hidden_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(hidden_layers):
            layers += [nn.Linear(in_dim if k == 0 else hidden_dim, hidden_dim), nn.LeakyReLU(0.01)]
        layers.append(nn.Linear(hidden_dim, out_dim))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class DequantizationVAE(nn.Module):
    """The fully connected VAE of Tab. S4: a continuous, stochastic version ``ĥ`` of a class embedding ``h``.

    Encoder: ``hidden_layers`` × (FC, LReLU) → FC back to ``in_dim``; the mean and the log-variance each come from
    an MLP of the same shape on that output; decoder: ``hidden_layers + 1`` × (FC, LReLU) → FC → ``in_dim``.
    The defaults are the paper's (128 → 4096 wide, 3 and 4 hidden layers, LReLU slope 0.01, 128-d latent). The
    output layers have no activation (the table lists LReLU after them; an LReLU output could not reproduce the
    negative entries of h); this is how the original code builds it, and its module names (``encoder.main.0``,
    ``mu_layer``, ``logvar_layer``, ``decoder``) are used here too.

    Arguments:
        in_dim: dimension of the class embedding h.
        z_dim: latent dimension.
        hidden_dim: width of the hidden layers.
        hidden_layers: hidden layers of the encoder and of each head (the decoder has one more).

    Example:
        >>> vae = DequantizationVAE(in_dim=8, z_dim=4, hidden_dim=16).eval()
        >>> h = torch.randn(5, 8)
        >>> vae.sample(h).shape, bool((vae.encode(h).kl() >= 0).all())
        (torch.Size([5, 8]), True)
    """

    def __init__(self, in_dim: int = 128, z_dim: int = 128, hidden_dim: int = 4096, hidden_layers: int = 3) -> None:
        super().__init__()
        sizes = {"in_dim": in_dim, "z_dim": z_dim, "hidden_dim": hidden_dim, "hidden_layers": hidden_layers}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DequantizationVAE: expected a positive int {name}, received {value!r}")
        self.in_dim, self.z_dim, self.hidden_dim, self.hidden_layers = in_dim, z_dim, hidden_dim, hidden_layers
        self.encoder = _MLP(in_dim, hidden_dim, in_dim, hidden_layers)
        self.mu_layer = _MLP(in_dim, hidden_dim, z_dim, hidden_layers)
        self.logvar_layer = _MLP(in_dim, hidden_dim, z_dim, hidden_layers)
        self.decoder = _MLP(z_dim, hidden_dim, in_dim, hidden_layers + 1)

    @property
    def config(self) -> dict[str, int]:
        """The constructor arguments."""
        names = ("in_dim", "z_dim", "hidden_dim", "hidden_layers")
        return {name: getattr(self, name) for name in names}

    def encode(self, h: Tensor) -> DiagonalGaussian:
        """The posterior ``q(z | h)`` of class embeddings ``h`` ``(B, in_dim)``."""
        e = self.encoder(_check_flat(h, "DequantizationVAE.encode", self.in_dim, "class embeddings"))
        return DiagonalGaussian(self.mu_layer(e), self.logvar_layer(e))

    def decode(self, z: Tensor) -> Tensor:
        """Embeddings ``(B, in_dim)`` of latents ``z`` ``(B, z_dim)``."""
        return self.decoder(_check_flat(z, "DequantizationVAE.decode", self.z_dim, "latents"))

    def sample(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The stochastic reconstruction ``ĥ = decode(z)``, ``z ~ q(z | h)``: ``(B, in_dim)``."""
        return self.decode(self.encode(h).sample(generator))

    def reconstruct(self, h: Tensor) -> Tensor:
        """The deterministic reconstruction ``decode(mean of q(z | h))``."""
        return self.decode(self.encode(h).mean)

    def forward(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Same as :meth:`sample`."""
        return self.sample(h, generator)

    def loss(
        self, h: Tensor, kl_weight: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative ELBO ``‖h − ĥ‖² + kl_weight · KL(q(z | h) ‖ N(0, I))``, each summed over dimensions and
        averaged over the batch.

        ``kl_weight`` sets how much noise ``ĥ`` keeps relative to the spread of the embeddings: too large and
        ``ĥ`` forgets the class, too small and it barely dequantises. Check a trained VAE with
        :meth:`class_accuracy`.

        Returns:
            the loss (a scalar) and its parts ``{"rec", "kl"}`` (detached).
        """
        q = self.encode(h)
        h_hat = self.decode(q.sample(generator))
        rec = (h - h_hat).square().sum(1).mean()
        kl = q.kl().mean()
        return rec + kl_weight * kl, {"rec": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def class_accuracy(
        self, embeddings: Tensor, samples_per_class: int = 8, generator: torch.Generator | None = None
    ) -> float:
        """Fraction of samples ``ĥ`` of each class embedding whose nearest class embedding is the right one.

        Arguments:
            embeddings: all class embeddings ``(K, in_dim)`` (e.g. :meth:`BigGAN.class_embeddings`).
            samples_per_class: samples drawn per class.
            generator: for reproducible samples.
        """
        _check_flat(embeddings, "DequantizationVAE.class_accuracy", self.in_dim, "class embeddings")
        h = embeddings.repeat_interleave(samples_per_class, dim=0)  # (K·S, E)
        nearest = torch.cdist(self.sample(h, generator), embeddings).argmin(1)  # (K·S,)
        target = torch.arange(len(embeddings), device=h.device).repeat_interleave(samples_per_class)
        return float((nearest == target).float().mean())

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: PathLike) -> Path:
        """Write the weights as safetensors with the architecture as metadata (atomically)."""
        metadata = {"format": VAE_FORMAT, "config": json.dumps(self.config, sort_keys=True)}
        return atomic_save_safetensors(dict(self.state_dict()), path, metadata=metadata)

    @classmethod
    def from_file(cls, path: PathLike, map_location: str | torch.device = "cpu") -> DequantizationVAE:
        """Load a VAE saved by :meth:`save`, or a plain state dict (``.safetensors`` or a torch file, also one
        wrapped as ``{"state_dict": ...}``) whose architecture is read off the weight shapes.

        Raises:
            WeightsNotFoundError: if the file does not exist.
            ValueError: if it cannot be read or does not hold a DequantizationVAE's weights.
        """
        p = Path(path).expanduser()
        state = _read_state_dict(p, map_location, "DequantizationVAE")
        config = _vae_config_from_state(state, str(p))
        metadata = _safetensors_metadata(p) if p.suffix == ".safetensors" else {}
        if "config" in metadata:
            try:
                config = {k: int(v) for k, v in json.loads(metadata["config"]).items()}
            except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
                raise ValueError(f"'{p}': the 'config' metadata is not a JSON object of ints: {e}") from e
        try:
            vae = cls(**config)
        except TypeError as e:
            raise ValueError(f"'{p}': unexpected DequantizationVAE config {config}: {e}") from e
        _check_state(vae.state_dict(), state, str(p), "DequantizationVAE", f"the architecture {config}")
        vae.load_state_dict(state, strict=True)
        return vae.eval()


def _vae_config_from_state(state: Mapping[str, Tensor], source: str) -> dict[str, int]:
    """Read ``in_dim``, ``z_dim``, ``hidden_dim`` and ``hidden_layers`` off a VAE state dict."""
    need = ("encoder.main.0.weight", "mu_layer.main.0.weight")
    if not all(k in state for k in need):
        some = sorted(state)[:5]
        raise ValueError(
            f"{source} does not hold DequantizationVAE weights: expected keys {list(need)}, received e.g. {some}"
        )
    n_linear = sum(1 for k in state if k.startswith("encoder.main.") and k.endswith(".weight"))
    hidden_dim, in_dim = state["encoder.main.0.weight"].shape
    z_key = f"mu_layer.main.{2 * (n_linear - 1)}.weight"
    z_dim = state[z_key].shape[0] if z_key in state else in_dim
    return {"in_dim": int(in_dim), "z_dim": int(z_dim), "hidden_dim": int(hidden_dim), "hidden_layers": n_linear - 1}


def fit_dequantization_vae(
    vae: DequantizationVAE,
    embeddings: Tensor,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-4,
    kl_weight: float = 1.0,
    generator: torch.Generator | None = None,
) -> dict[str, list[float]]:
    """Train ``vae`` with Adam on the class embeddings (rows of ``embeddings``, drawn with replacement).

    Arguments:
        vae: the VAE to train in place (left in eval mode, with its parameters' ``requires_grad`` restored).
        embeddings: ``(K, in_dim)``, e.g. ``BigGAN.class_embeddings()``.
        steps: optimiser steps.
        batch_size: embeddings per step.
        lr: Adam learning rate.
        kl_weight: weight of the KL term (see :meth:`DequantizationVAE.loss`).
        generator: for reproducible batches and noise (on the device of ``embeddings``).

    Returns:
        per-step ``{"loss", "rec", "kl"}``.

    Example:
        >>> vae = DequantizationVAE(in_dim=8, z_dim=4, hidden_dim=32)
        >>> hist = fit_dequantization_vae(vae, torch.randn(10, 8), steps=20, lr=1e-3)
        >>> len(hist["loss"])
        20
    """
    _check_flat(embeddings, "fit_dequantization_vae", vae.in_dim, "class embeddings")
    if steps < 0 or batch_size < 1:
        raise ValueError(
            f"fit_dequantization_vae: expected steps >= 0 and batch_size >= 1, received {steps} and {batch_size}"
        )
    data = embeddings.detach()
    params = list(vae.parameters())
    flags = [p.requires_grad for p in params]  # a VAE inside a (frozen) BigGANTarget is trained in place
    for p in params:
        p.requires_grad_(True)
    vae.train()
    opt = torch.optim.Adam(params, lr=lr)
    history: dict[str, list[float]] = {"loss": [], "rec": [], "kl": []}
    for _ in range(steps):
        idx = torch.randint(len(data), (batch_size,), generator=generator, device=data.device)
        loss, parts = vae.loss(data[idx], kl_weight, generator)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        history["loss"].append(float(loss.detach()))
        history["rec"].append(float(parts["rec"]))
        history["kl"].append(float(parts["kl"]))
    vae.eval()
    for p, flag in zip(params, flags):
        p.requires_grad_(flag)
    return history


# -- the target expert --------------------------------------------------------------------------------------------


def truncated_noise(
    n: int,
    dim: int,
    truncation: float = 1.0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    bound: float = 2.0,
) -> Tensor:
    """BigGAN noise ``truncation · TN(0, I; [−bound, bound])``, ``(n, dim)``, by resampling values outside the bound.

    This is the reference package's convention (a normal truncated to [−2, 2], scaled by the truncation).

    Example:
        >>> z = truncated_noise(1000, 8, truncation=0.5, generator=torch.Generator().manual_seed(0))
        >>> bool(z.abs().max() <= 1.0)
        True
    """
    truncation = _check_truncation(truncation, "truncated_noise")
    if generator is not None:
        device = generator.device
    z = torch.randn(n, dim, generator=generator, device=device)
    outside = z.abs() > bound
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, device=z.device)
        outside = z.abs() > bound
    return truncation * z


class BigGANTarget(nn.Module):
    """Frozen BigGAN behind the target-expert protocol, ``z_tgt = [z̃, ĥ]`` (supplementary G.2, Eq. 24).

    Always in eval mode (``train()`` keeps it) with ``requires_grad=False``; gradients still flow to inputs that
    require them. There is no ``encode`` (a GAN has no encoder): train a cINN on :meth:`synthetic_pairs`.

    Arguments:
        biggan: the generator.
        vae: the dequantisation VAE (needed to draw ``ĥ``; ``decode`` works without it).
        truncation: truncation used by :meth:`decode` and, by default, :meth:`synthetic_pairs`.

    Example:
        >>> cfg = BigGANConfig(output_dim=16, z_dim=4, class_embed_dim=6, channel_width=4, num_classes=3,
        ...                    layers=[(True, 2, 1), (True, 1, 1)], attention_layer_position=None)
        >>> target = BigGANTarget(BigGAN(cfg), DequantizationVAE(in_dim=6, z_dim=6, hidden_dim=16), truncation=0.5)
        >>> images, z_tgt, labels = target.synthetic_pairs(4, generator=torch.Generator().manual_seed(0))
        >>> images.shape, z_tgt.shape, target.decode(z_tgt).shape
        (torch.Size([4, 3, 16, 16]), torch.Size([4, 10]), torch.Size([4, 3, 16, 16]))
    """

    def __init__(self, biggan: BigGAN, vae: DequantizationVAE | None = None, truncation: float = 1.0) -> None:
        super().__init__()
        if not isinstance(biggan, BigGAN):
            raise TypeError(f"BigGANTarget: expected a BigGAN, received {type(biggan).__name__}")
        if vae is not None and vae.in_dim != biggan.config.class_embed_dim:
            raise ValueError(
                f"BigGANTarget: the VAE takes {vae.in_dim}-d embeddings but the BigGAN's class embedding has "
                f"{biggan.config.class_embed_dim} dimensions"
            )
        self.biggan = biggan
        self.vae = vae
        self.truncation = _check_truncation(truncation, "BigGANTarget")
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> BigGANTarget:
        """Does nothing but keep eval mode: the expert is frozen."""
        return super().train(False)

    def __getattr__(self, name: str) -> Any:
        if name in ("encode", "encode_dist", "mean_std"):
            raise AttributeError(
                f"BigGANTarget has no {name}(): a GAN has no encoder (DESIGN.md: encode is optional for "
                "generators); draw training pairs with synthetic_pairs() instead"
            )
        return super().__getattr__(name)

    # -- dimensions -----------------------------------------------------------------------------------------------
    @property
    def config(self) -> BigGANConfig:
        return self.biggan.config

    @property
    def z_dim(self) -> int:
        """Dimension of the noise part z̃."""
        return self.config.z_dim

    @property
    def embed_dim(self) -> int:
        """Dimension of the class-embedding part ĥ."""
        return self.config.class_embed_dim

    @property
    def dim(self) -> int:
        """Dimension of ``z_tgt``, ``z_dim + embed_dim``."""
        return self.z_dim + self.embed_dim

    @property
    def image_size(self) -> int:
        return self.config.output_dim

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim} (z={self.z_dim}, h={self.embed_dim}), image_size={self.image_size}, "
            f"truncation={self.truncation}"
        )

    # -- z_tgt ----------------------------------------------------------------------------------------------------
    def _check_z_tgt(self, z_tgt: object, name: str) -> Tensor:
        return _check_flat(z_tgt, name, self.dim, f"z_tgt = [z̃ ({self.z_dim}), ĥ ({self.embed_dim})]")

    def split(self, z_tgt: Tensor) -> tuple[Tensor, Tensor]:
        """``(z̃, ĥ)``, ``(B, z_dim)`` and ``(B, embed_dim)``, of ``z_tgt`` ``(B, dim)``."""
        z_tgt = self._check_z_tgt(z_tgt, "BigGANTarget.split")
        z, h = z_tgt.split([self.z_dim, self.embed_dim], dim=1)
        return z, h

    def join(self, z: Tensor, h: Tensor) -> Tensor:
        """``z_tgt = [z̃, ĥ]``, ``(B, dim)``."""
        _check_flat(z, "BigGANTarget.join: z", self.z_dim, "noise")
        _check_flat(h, "BigGANTarget.join: h", self.embed_dim, "class embedding")
        if z.shape[0] != h.shape[0]:
            raise ValueError(f"BigGANTarget.join: z has {z.shape[0]} rows, h has {h.shape[0]}")
        return torch.cat([z, h], dim=1)

    def embed(self, labels: Tensor) -> Tensor:
        """Class embeddings ``h = W·c``, ``(B, embed_dim)``, of labels ``(B,)`` or class vectors ``(B, K)``."""
        return self.biggan.embed(labels)

    def dequantize(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The VAE's stochastic reconstruction ``ĥ`` of embeddings ``h``.

        Raises:
            ValueError: if no VAE was loaded.
        """
        if self.vae is None:
            raise ValueError(
                "BigGANTarget.dequantize: no dequantisation VAE; load one (from_pretrained(..., vae_path=...)) or "
                "train one with fit_dequantization_vae(DequantizationVAE(), target.biggan.class_embeddings())"
            )
        return self.vae.sample(h, generator)

    def decode(self, z_tgt: Tensor, truncation: float | None = None) -> Tensor:
        """Images in [-1, 1], ``(B, 3, H, W)``, of ``z_tgt = [z̃, ĥ]`` ``(B, dim)``.

        Raises:
            ValueError: if ``z_tgt`` does not have ``dim`` columns (the message gives both).
        """
        z, h = self.split(z_tgt)
        return self.biggan.generate_from_embedding(z, h, self.truncation if truncation is None else truncation)

    # -- training pairs -------------------------------------------------------------------------------------------
    def sample_labels(
        self, n: int, classes: Sequence[int] | Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` labels drawn uniformly from ``classes`` (default: all classes), ``(n,)`` long."""
        pool = torch.arange(self.num_classes) if classes is None else torch.as_tensor(classes).flatten().cpu()
        if pool.numel() == 0 or pool.is_floating_point() or int(pool.min()) < 0 or int(pool.max()) >= self.num_classes:
            raise ValueError(
                f"BigGANTarget: expected classes as integers in [0, {self.num_classes - 1}], received {classes!r}"
            )
        device = generator.device if generator is not None else None
        idx = torch.randint(pool.numel(), (n,), generator=generator, device=device).cpu()
        return pool.long()[idx]

    @torch.no_grad()
    def synthetic_pairs(
        self,
        n: int,
        classes: Sequence[int] | Tensor | None = None,
        truncation: float | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        images_from: Literal["embedding", "dequantized"] = "embedding",
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training pairs for a cINN into BigGAN's space (supplementary G.2).

        Draws labels ``c`` (uniform over ``classes``), noise ``z̃ = truncation · TN(0, I; [−2, 2])``, embeddings
        ``h = W·c`` and their dequantised versions ``ĥ``. Images are generated from ``(z̃, h)`` as in the original
        code (``images_from="embedding"``) or from ``(z̃, ĥ)`` (``"dequantized"``, then ``decode(z_tgt)``
        reproduces them). A source expert applied to the images gives the cINN's condition.

        Arguments:
            n: number of pairs.
            classes: the classes to draw from (default: all).
            truncation: in (0, 1]; default: the target's own (which :meth:`decode` uses).
            generator: for reproducible pairs (on the model's device).
            batch_size: images generated per forward pass.
            images_from: which class embedding the images are generated from.

        Returns:
            images ``(n, 3, H, W)`` in [-1, 1], ``z_tgt`` ``(n, dim)``, labels ``(n,)``; on the model's device.

        Raises:
            ValueError: without a VAE, or for classes out of range.
        """
        if images_from not in ("embedding", "dequantized"):
            raise ValueError(
                f"synthetic_pairs: expected images_from 'embedding' or 'dequantized', received {images_from!r}"
            )
        truncation = self.truncation if truncation is None else _check_truncation(truncation, "synthetic_pairs")
        device = self.biggan.embeddings.weight.device
        labels = self.sample_labels(n, classes, generator)
        z = truncated_noise(n, self.z_dim, truncation, generator).to(self.biggan.embeddings.weight)
        h = self.embed(labels.to(device))
        h_hat = self.dequantize(h, generator)
        source = h if images_from == "embedding" else h_hat
        images = torch.empty(n, 3, self.image_size, self.image_size, device=device, dtype=z.dtype)
        for i in range(0, n, batch_size):
            images[i : i + batch_size] = self.biggan.generate_from_embedding(
                z[i : i + batch_size], source[i : i + batch_size], truncation
            )
        return images, self.join(z, h_hat), labels.to(device)

    # -- files ----------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: PathLike,
        vae_path: PathLike | None = None,
        truncation: float = 1.0,
        map_location: str | torch.device = "cpu",
    ) -> BigGANTarget:
        """Load user-supplied weights from local paths.

        Arguments:
            path: BigGAN-deep weights as accepted by :meth:`BigGAN.from_pretrained` (a pytorch-pretrained-BigGAN
                directory with ``config.json`` + ``pytorch_model.bin`` or ``model.safetensors``).
            vae_path: dequantisation VAE weights (see :meth:`DequantizationVAE.from_file`); default:
                ``dequantization_vae.safetensors`` in the directory ``path`` if present, else no VAE.
            truncation: truncation used by :meth:`decode`.
            map_location: where to load the tensors.

        Raises:
            WeightsNotFoundError: if a path does not exist.
            ValueError: if a file does not fit its architecture (keys and shapes named).

        Example:
            >>> target = BigGANTarget.from_pretrained(
            ...     "~/weights/biggan-deep-128", vae_path="~/weights/vae.safetensors"
            ... )  # doctest: +SKIP
        """
        biggan = BigGAN.from_pretrained(path, map_location)
        p = Path(path).expanduser()
        if vae_path is None and p.is_dir() and (p / VAE_NAME).is_file():
            vae_path = p / VAE_NAME
        vae = DequantizationVAE.from_file(vae_path, map_location) if vae_path is not None else None
        return cls(biggan, vae, truncation)

    def save_pretrained(self, directory: PathLike, safe_serialization: bool = True) -> Path:
        """Write the generator (pytorch-pretrained-BigGAN layout) and, if present, the VAE as ``VAE_NAME``."""
        self.biggan.save_pretrained(directory, safe_serialization)
        if self.vae is not None:
            self.vae.save(Path(directory) / VAE_NAME)
        return Path(directory)


# -- reading state dicts ------------------------------------------------------------------------------------------


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt", device="cpu") as f:
        return dict(f.metadata() or {})


def _read_state_dict(path: PathLike, map_location: str | torch.device, what: str) -> dict[str, Tensor]:
    """A ``{name: tensor}`` dict from safetensors or ``torch.load(weights_only=True)`` (``state_dict`` unwrapped)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsNotFoundError(f"{what} weights not found: '{p}' (weights are never downloaded)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device=str(map_location))
        except Exception as e:  # header or data errors
            raise ValueError(f"cannot read '{p}' as a safetensors file: {e}") from e
    try:
        obj = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling refused, truncated or non-torch files
        raise ValueError(f"cannot read '{p}' as PyTorch weights (torch.load with weights_only=True): {e}") from e
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ValueError(
            f"'{p}' does not hold a state dict: expected a mapping from names to tensors, received {type(obj).__name__}"
        )
    return dict(obj)


def _check_state(
    expected: Mapping[str, Tensor], received: Mapping[str, Tensor], source: str, what: str, arch: str
) -> None:
    """Raise a ValueError naming missing/unexpected keys and shape mismatches between two state dicts."""
    problems = describe_state_mismatch(expected, received)
    if problems:
        raise ValueError(
            f"{source}: the weights do not fit {arch}: {problems}. Pass the {what} weights that belong to this "
            "configuration (or the configuration that belongs to these weights)."
        )
