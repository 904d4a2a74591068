"""The encoder Θ of an autoencoder as a source expert, plain or on deformed inputs (Θ∘d, supplementary Sec. C).

- :class:`EncoderSource`: ``z_src = Θ(x)`` (mean or sample of ``q(z | x)``), optionally after resizing the input,
  e.g. an autoencoder trained on 7 or 14 px images as the source of super-resolution to 28 px (Fig. 4): the 28 px
  image is downsampled (antialiased) and encoded by the low-resolution autoencoder.
- :class:`DeformedEncoder`: ``z_src = Θ(d(x))`` with a random deformation ``d``: horizontal flip, thin-plate-spline
  (TPS) warp and crop-and-resize (kornia). Translating ``Θ(d(y))`` to ``Θ(y)`` makes the residual ``v`` of the
  cINN a shape representation, independent of appearance (unsupervised disentangling of shape and appearance,
  Fig. S1). A new deformation is drawn on every call, so this expert is ``stochastic``: a latent cache encodes it
  live.

The autoencoder is any object with ``encode(y) -> z`` and, ideally, ``encode_dist(y) -> (mean, std)``, such as
:class:`net2net.experts.target.AutoencoderTarget`.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .protocols import FrozenExpert, describe_module

__all__ = ["DeformedEncoder", "EncoderMode", "EncoderSource", "deformed_encoder", "resize_images"]

EncoderMode = Literal["mean", "sample"]


def _size_pair(size: Any, name: str) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) and not isinstance(size, bool) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in pair):
        raise ValueError(f"{name} must be None, a positive int or a pair of positive ints (H, W), received {size!r}")
    return pair[0], pair[1]


def resize_images(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Bilinear resize of images ``(B, C, H, W)`` to ``size``, antialiased when shrinking; unchanged if equal.

    Example:
        >>> resize_images(torch.zeros(2, 1, 28, 28), 7).shape
        torch.Size([2, 1, 7, 7])
    """
    h, w = _size_pair(size, "size")  # type: ignore[misc]
    if x.dim() != 4:
        raise ValueError(f"resize_images: expected images of shape (B, C, H, W), received {tuple(x.shape)}")
    if (x.shape[-2], x.shape[-1]) == (h, w):
        return x
    shrink = h < x.shape[-2] or w < x.shape[-1]
    return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=shrink)


class EncoderSource(FrozenExpert):
    """The encoder Θ of an autoencoder as a frozen source expert.

    Arguments:
        target: the autoencoder, any object with ``encode(y) -> (B, D)`` and preferably
            ``encode_dist(y) -> (mean, std)`` (e.g. :class:`~net2net.experts.target.AutoencoderTarget`). An
            ``nn.Module`` is registered as a submodule (frozen in place; its weights enter the fingerprint).
        mode: ``"mean"``: the mean of ``q(z | x)`` (deterministic); ``"sample"``: a sample of it. A target without
            ``encode_dist`` is taken as deterministic: both modes return ``target.encode(x)``.
        input_size: ``None`` (feed the images as they are), or the size ``int`` / ``(H, W)`` the images are resized
            to before encoding (bilinear, antialiased when shrinking). Must agree with ``target.image_size`` where
            the target has one.

    ``encode_dist(x)`` returns the mean and standard deviation (zeros for a deterministic target), so that a latent
    cache can store them and sample at training time; ``encode(x)`` is therefore not :func:`stochastic
    <net2net.experts.protocols.is_stochastic>` even in ``"sample"`` mode.

    Example:
        >>> from net2net.experts.target import AutoencoderTarget, build_encoder_decoder
        >>> low_res = AutoencoderTarget(*build_encoder_decoder(28, in_channels=1, z_dim=8))  # a 28 px autoencoder
        >>> EncoderSource(low_res, input_size=28).encode(torch.zeros(2, 1, 64, 64)).shape  # of 64 px images
        torch.Size([2, 8])
    """

    _generator: torch.Generator | None = None  # the default source of randomness (None: torch's global state)

    def __init__(
        self, target: Any, mode: EncoderMode = "mean", input_size: int | tuple[int, int] | None = None
    ) -> None:
        super().__init__()
        if not callable(getattr(target, "encode", None)):
            raise TypeError(
                f"{type(self).__name__}: expected an autoencoder with encode(y) (and encode_dist(y)), "
                f"received {type(target).__name__}"
            )
        if mode not in ("mean", "sample"):
            raise ValueError(f"{type(self).__name__}: mode must be 'mean' or 'sample', received {mode!r}")
        size = _size_pair(input_size, f"{type(self).__name__}: input_size")
        expected = getattr(target, "image_size", None)
        if size is not None and isinstance(expected, int) and size != (expected, expected):
            raise ValueError(
                f"{type(self).__name__}: input_size={input_size!r} but the autoencoder takes {expected}x{expected} "
                f"images; pass input_size={expected}"
            )
        self.target = target  # an nn.Module becomes a (frozen) submodule, anything else a plain attribute
        self.mode: EncoderMode = mode
        self.input_size = size
        if mode == "sample":
            # a fresh draw of q(z | x) on every call: a latent cache would freeze one draw, so encode it live
            self.stochastic = True

    @property
    def config(self) -> dict[str, Any]:
        target, target_config = describe_module(self.target)
        return {"target": target, "target_config": target_config, "mode": self.mode, "input_size": self.input_size}

    def prepare(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The images ``Θ`` sees: ``x`` resized to ``input_size`` (if given)."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}: expected images of shape (B, C, H, W), received {shape}")
        return x if self.input_size is None else resize_images(x, self.input_size)

    def encode_dist(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of ``q(z | x)``, each ``(B, D)`` (std zero for a deterministic target)."""
        x = self.prepare(x, generator)
        dist = getattr(self.target, "encode_dist", None)
        if callable(dist):
            mean, std = dist(x)
            return mean, std
        z = self.target.encode(x)
        return z, torch.zeros_like(z)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``z_src``, ``(B, D)``: the mean (``mode="mean"``) or a sample (``"sample"``) of ``q(z | x)``."""
        if not callable(getattr(self.target, "encode_dist", None)):
            return self.target.encode(self.prepare(x, generator))
        generator = generator if generator is not None else self._generator
        mean, std = self.encode_dist(x, generator)
        if self.mode == "mean":
            return mean
        device = generator.device if generator is not None else mean.device
        eps = torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype).to(mean.device)
        return mean + std * eps

    def forward(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, input_size={self.input_size}"


class DeformedEncoder(EncoderSource):
    """Θ∘d of supplementary Sec. C: the encoder applied to randomly deformed images.

    ``d`` is, per image: a horizontal flip with probability 1/2, a thin-plate-spline warp whose ``tps_grid`` ×
    ``tps_grid`` control points (a regular grid over the image) are displaced by independent uniform offsets in
    ``[-tps_strength, tps_strength]`` (in units of the half image width, i.e. grid_sample's [-1, 1] frame), and a
    random crop covering a fraction ``U(crop_scale)`` of the image area (same aspect ratio, uniform position),
    resized back to the input size. Pixels sampled outside the image repeat the border. With ``flip=False``,
    ``tps_strength=0`` and ``crop_scale=(1, 1)``, ``d`` is the identity.

    Arguments:
        target, mode, input_size: as for :class:`EncoderSource` (the deformation comes before the resize).
        flip: random horizontal flips.
        tps_strength: the largest control-point displacement, ``>= 0``.
        crop_scale: ``(min, max)`` area fraction of the crop, ``0 < min <= max <= 1``.
        tps_grid: control points per side, ``>= 2``.
        seed: seeds a private generator, so that the sequence of deformations (and of samples, in ``"sample"``
            mode) is reproducible; ``None`` uses torch's global random state. A ``generator`` passed to
            :meth:`deform` / :meth:`encode` takes precedence.

    Example:
        >>> from net2net.experts.target import AutoencoderTarget, build_encoder_decoder
        >>> theta = AutoencoderTarget(*build_encoder_decoder(28, in_channels=1, z_dim=8))
        >>> phi = DeformedEncoder(theta, seed=0)
        >>> x = torch.rand(2, 1, 28, 28) * 2 - 1
        >>> phi.deform(x).shape, phi.encode(x).shape, phi.stochastic
        (torch.Size([2, 1, 28, 28]), torch.Size([2, 8]), True)
    """

    stochastic = True

    def __init__(
        self,
        target: Any,
        flip: bool = True,
        tps_strength: float = 0.1,
        crop_scale: tuple[float, float] = (0.7, 1.0),
        tps_grid: int = 3,
        mode: EncoderMode = "mean",
        input_size: int | tuple[int, int] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(target, mode=mode, input_size=input_size)
        name = type(self).__name__
        if isinstance(tps_strength, bool) or not isinstance(tps_strength, (int, float)) or not (
            math.isfinite(tps_strength) and tps_strength >= 0
        ):
            raise ValueError(f"{name}: tps_strength must be a finite number >= 0, received {tps_strength!r}")
        try:
            lo, hi = (float(c) for c in crop_scale)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name}: crop_scale must be a pair (min, max), received {crop_scale!r}") from e
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"{name}: crop_scale must satisfy 0 < min <= max <= 1, received {crop_scale!r}")
        if isinstance(tps_grid, bool) or not isinstance(tps_grid, int) or tps_grid < 2:
            raise ValueError(f"{name}: tps_grid must be an int >= 2, received {tps_grid!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"{name}: seed must be None or an int, received {seed!r}")
        self.flip = bool(flip)
        self.tps_strength = float(tps_strength)
        self.crop_scale = (lo, hi)
        self.tps_grid = tps_grid
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(seed)

    @property
    def config(self) -> dict[str, Any]:
        return {
            **super().config,
            "flip": self.flip,
            "tps_strength": self.tps_strength,
            "crop_scale": list(self.crop_scale),
            "tps_grid": self.tps_grid,
        }

    @property
    def is_identity(self) -> bool:
        """Whether ``d`` leaves every image unchanged (no flip, no warp, no crop)."""
        return not self.flip and self.tps_strength == 0 and self.crop_scale == (1.0, 1.0)

    def deform(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A random deformation ``d(x)`` of images ``(B, C, H, W)``, of the same shape and dtype.

        Values stay within the input's range (flips, bilinear interpolation and border padding only mix pixels).
        The randomness is drawn from ``generator``, else from the expert's seeded generator, else from torch's
        global random state, on the generator's device (CPU by default), so it does not depend on ``x``'s device.
        """
        from kornia.geometry.transform import get_tps_transform, warp_image_tps

        if not isinstance(x, Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__}.deform: expected float images (B, C, H, W), received {shape}")
        if self.is_identity:
            return x
        g = generator if generator is not None else self._generator
        device = g.device if g is not None else torch.device("cpu")
        b = x.shape[0]

        def uniform(*shape: int) -> Tensor:  # U[0, 1) on the generator's device, then on x's device, float32
            return torch.rand(shape, generator=g, device=device).to(x.device)

        out = x.float()
        if self.flip:
            mirror = uniform(b) < 0.5
            out = torch.where(mirror[:, None, None, None], out.flip(-1), out)
        if self.tps_strength > 0:
            k = torch.linspace(-1.0, 1.0, self.tps_grid, device=x.device)
            src = torch.stack(torch.meshgrid(k, k, indexing="xy"), dim=-1).reshape(1, -1, 2)  # (1, K, 2) as (x, y)
            src = src.expand(b, -1, -1)  # (B, K, 2)
            dst = src + (uniform(b, src.shape[1], 2) * 2 - 1) * self.tps_strength  # (B, K, 2)
            # kornia's recipe: warp_image_tps maps output to input coordinates, so the transform is fitted reversed
            kernel_weights, affine_weights = get_tps_transform(dst, src)
            out = warp_image_tps(out, src, kernel_weights, affine_weights, align_corners=False, padding_mode="border")
        lo, hi = self.crop_scale
        if lo < 1:
            side = torch.sqrt(lo + (hi - lo) * uniform(b))  # (B,) side fraction of the crop
            centre = (uniform(b, 2) * 2 - 1) * (1 - side)[:, None]  # (B, 2): the crop stays inside the image
            theta = torch.zeros(b, 2, 3, device=x.device)
            theta[:, 0, 0] = side
            theta[:, 1, 1] = side
            theta[:, :, 2] = centre
            grid = F.affine_grid(theta, list(out.shape), align_corners=False)  # (B, H, W, 2)
            out = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.to(x.dtype)

    def prepare(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The images Θ sees: ``d(x)``, then resized to ``input_size`` (if given)."""
        return super().prepare(self.deform(x, generator), generator)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, flip={self.flip}, tps_strength={self.tps_strength}, "
            f"crop_scale={self.crop_scale}, tps_grid={self.tps_grid}, seed={self.seed}"
        )


def deformed_encoder(
    path: str | Any,
    flip: bool = True,
    tps_strength: float = 0.1,
    crop_scale: tuple[float, float] | list[float] = (0.7, 1.0),
    tps_grid: int = 3,
    mode: EncoderMode = "mean",
    seed: int | None = None,
) -> DeformedEncoder:
    """Θ∘d of the autoencoder at ``path`` (``autoencoder.safetensors``, a checkpoint or ``pretrained:NAME``): the
    config-friendly form of :class:`DeformedEncoder`, whose ``target`` is the autoencoder object itself.

    Example:
        >>> phi = deformed_encoder("pretrained:fashion_mnist_autoencoder", tps_strength=0.3, seed=0)  # doctest: +SKIP
        >>> phi.encode(torch.zeros(2, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([2, 64])
    """
    from .target import load_autoencoder_target

    return DeformedEncoder(load_autoencoder_target(path), flip=flip, tps_strength=tps_strength,
                           crop_scale=(crop_scale[0], crop_scale[1]), tps_grid=tps_grid, mode=mode, seed=seed)  # fmt: skip
