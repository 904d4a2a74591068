"""The BigGAN-deep generator in the layout of ``pytorch-pretrained-BigGAN``, with its config and files.

Same ``config.json`` fields and state-dict names as that package, spectral norms evaluated as
``torch.nn.utils.spectral_norm`` does in eval mode, so that a directory holding the package's ``config.json`` and
``pytorch_model.bin`` (or ``model.safetensors``) loads with :meth:`BigGAN.from_pretrained`.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...io import atomic_path, atomic_save_safetensors
from .validation import PathLike, WeightsNotFoundError, check_flat, check_state, check_truncation, read_state_dict

__all__ = [
    "CONFIG_NAME",
    "DEEP_LAYERS",
    "SAFE_WEIGHTS_NAME",
    "WEIGHTS_NAME",
    "BigGAN",
    "BigGANBatchNorm",
    "BigGANConfig",
    "GenBlock",
    "SNConv2d",
    "SNLinear",
    "SelfAttention",
]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"  # file names of the pytorch-pretrained-BigGAN layout
WEIGHTS_NAME = "pytorch_model.bin"
SAFE_WEIGHTS_NAME = "model.safetensors"

Layer = tuple[bool, int, int]  # (upsample, input width, output width), widths in multiples of channel_width


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
        pos = check_truncation(truncation, "BigGANBatchNorm") * (self.running_means.shape[0] - 1)
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
        return self.embeddings(check_flat(c, "BigGAN.embed", k, "class vectors"))

    def class_embeddings(self) -> Tensor:
        """All K class embeddings, the rows of ``Wᵀ``: ``(num_classes, class_embed_dim)``."""
        return self.embeddings.weight.t()

    def generate_from_embedding(self, z: Tensor, h: Tensor, truncation: float = 1.0) -> Tensor:
        """Images in [-1, 1], ``(B, 3, output_dim, output_dim)``, from noise ``z`` and class embeddings ``h``."""
        cfg = self.config
        check_flat(z, "BigGAN: noise z", cfg.z_dim, "z_dim")
        check_flat(h, "BigGAN: class embedding h", cfg.class_embed_dim, "class_embed_dim")
        if z.shape[0] != h.shape[0]:
            raise ValueError(f"BigGAN: z has {z.shape[0]} rows but the class input has {h.shape[0]}")
        truncation = check_truncation(truncation, "BigGAN")
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
        state = read_state_dict(weights, map_location, "BigGAN")
        model = cls(config)
        check_state(model.state_dict(), state, str(weights), "BigGAN", f"the architecture of '{config_file}'")
        model.load_state_dict(state, strict=True)
        logger.info("loaded BigGAN (%d px, %d classes) from %s", config.output_dim, config.num_classes, weights)
        return model
