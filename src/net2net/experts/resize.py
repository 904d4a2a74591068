"""Source experts of stochastic super-resolution (paper Fig. 4): what a low-resolution view of an image holds.

- :func:`low_res_encoder`: the encoder Θ of an autoencoder trained on downsampled images (e.g. Fashion-MNIST at
  14 px), applied to full-size images: they are downsampled (bilinear, antialiased) to the autoencoder's size and
  encoded, ``z_src`` = the mean of ``q(z | x_low)``. A config-friendly factory of
  :class:`~net2net.experts.encoder_source.EncoderSource`, which takes the autoencoder object itself.
- :class:`Downsample`: the downsampled image itself as the condition (no network), ``(B, C, size, size)`` or
  flattened to ``(B, C * size * size)``; the source of the synthetic face pairs (16 px face -> DCGAN latent).

Both are deterministic, so a latent cache stores their codes.
"""

from __future__ import annotations

import os
from typing import Any

from torch import Tensor

from .encoder_source import EncoderSource, _size_pair, resize_images
from .protocols import FrozenExpert

__all__ = ["Downsample", "low_res_encoder"]


def low_res_encoder(path: str | os.PathLike[str], input_size: int | None = None) -> EncoderSource:
    """The encoder of the autoencoder at ``path`` (``autoencoder.safetensors``, a checkpoint or ``pretrained:NAME``)
    as a source expert on larger images: inputs are resized to ``input_size`` (default: the autoencoder's
    ``image_size``) and encoded to the mean of ``q(z | x)``.

    Example:
        >>> phi = low_res_encoder("runs/fashion_mnist_14/autoencoder.safetensors")  # doctest: +SKIP
        >>> phi.encode(torch.zeros(2, 1, 28, 28)).shape  # doctest: +SKIP
        torch.Size([2, 64])
    """
    from .target import load_autoencoder_target

    autoencoder = load_autoencoder_target(path)
    size = input_size if input_size is not None else autoencoder.image_size
    return EncoderSource(autoencoder, mode="mean", input_size=size)


class Downsample(FrozenExpert):
    """The image at a lower resolution as a source expert: ``encode(x) = resize(x, size)`` (bilinear, antialiased).

    Arguments:
        size: side (or ``(H, W)``) of the downsampled image.
        flatten: return ``(B, C * H * W)`` (a flat condition for a dense embedder) instead of ``(B, C, H, W)``
            (a spatial condition for the convolutional embedder).

    Example:
        >>> import torch
        >>> Downsample(16).encode(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 3, 16, 16])
        >>> Downsample(16, flatten=True).encode(torch.zeros(2, 3, 64, 64)).shape
        torch.Size([2, 768])
    """

    def __init__(self, size: int | tuple[int, int], flatten: bool = False) -> None:
        super().__init__()
        pair = _size_pair(size, "Downsample: size")
        if pair is None:
            raise ValueError("Downsample: size must be a positive int or a pair (H, W), received None")
        self.size = pair
        self.flatten = bool(flatten)

    @property
    def config(self) -> dict[str, Any]:
        """What the fingerprint of a latent cache covers (the expert has no weights)."""
        return {"size": list(self.size), "flatten": self.flatten}

    def encode(self, x: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` -> ``(B, C, h, w)`` at ``size``, or ``(B, C * h * w)`` with ``flatten``."""
        if not isinstance(x, Tensor) or x.dim() != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"Downsample: expected images of shape (B, C, H, W), received {shape}")
        low = resize_images(x.float(), self.size)
        return low.flatten(1) if self.flatten else low  # (B, C, h, w) -> (B, C*h*w)

    def forward(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return f"size={self.size}, flatten={self.flatten}"
