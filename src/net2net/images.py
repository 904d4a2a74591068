"""Image grids and atomic PNG writing (file helpers: :mod:`net2net.io`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

# atomic_path / atomic_save_safetensors lived here before net2net.io; importable from here for old code
from .io import atomic_path, atomic_save_safetensors  # noqa: F401

__all__ = ["make_grid", "save_png", "to_pil"]


def make_grid(images: Tensor, nrow: int, padding: int = 2, scale: int = 1, pad_value: float = 1.0) -> Tensor:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into one ``(C, H', W')`` image, ``nrow`` images per row.

    Arguments:
        images: the images; values outside [-1, 1] are clipped.
        nrow: images per row.
        padding: pixels between images (in the upscaled image).
        scale: integer nearest-neighbour upscaling of each image.
        pad_value: value of the padding, in [-1, 1].
    """
    if images.dim() != 4:
        raise ValueError(f"make_grid: expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    if nrow < 1:
        raise ValueError(f"make_grid: nrow must be positive, got {nrow}")
    x = images.detach().float().cpu().clamp(-1, 1)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    n, c, h, w = x.shape
    ncol = nrow
    nrows = (n + ncol - 1) // ncol
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top : top + h, left : left + w] = x[i]
    return grid


def to_pil(image: Tensor) -> Image.Image:
    """A ``(C, H, W)`` image in [-1, 1] (C = 1 or 3) as an 8-bit PIL image (mode ``L`` or ``RGB``)."""
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected an image (1 or 3, H, W), got {tuple(image.shape)}")
    arr = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arr_np = arr.permute(1, 2, 0).numpy()  # (C, H, W) -> (H, W, C)
    return Image.fromarray(arr_np[..., 0] if arr_np.shape[2] == 1 else np.ascontiguousarray(arr_np))


def save_png(image: Tensor, path: str | os.PathLike[str]) -> Path:
    """Write a ``(C, H, W)`` image in [-1, 1] (C = 1 or 3) as PNG, atomically."""
    pil = to_pil(image)
    with atomic_path(path) as tmp:
        pil.save(tmp, format="PNG")
    return Path(path)

