"""Image datasets held as arrays (:class:`ArrayImageDataset`) and what the dataset classes share: argument checks,
uint8 -> [-1, 1] conversion, resizing and stratified splits."""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "SPLITS",
    "ArrayImageDataset",
    "check_channels",
    "check_seed",
    "check_size",
    "check_split",
    "check_test_fraction",
    "resize_shorter_and_crop",
    "resize_square",
    "rgb_to_grey",
    "stratified_split",
    "to_image",
]

SPLITS = ("train", "test")
# ITU-R BT.601 luma weights, the ones Pillow's convert("L") uses
_GREY_WEIGHTS = (0.299, 0.587, 0.114)


def check_split(split: Any) -> str:
    """Return ``split`` if it is ``"train"`` or ``"test"``, else raise a ValueError."""
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    return split


def check_size(size: Any) -> int:
    """Return ``size`` as int if it is a positive integer (not a bool), else raise a ValueError."""
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size <= 0:
        raise ValueError(f"size must be a positive int (e.g. 28, 32, 64, 128, 256), got {size!r}")
    return int(size)


def check_channels(channels: Any) -> int:
    """Return ``channels`` if it is 1 (grey) or 3 (RGB), else raise a ValueError."""
    if isinstance(channels, bool) or not isinstance(channels, numbers.Integral) or channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    return int(channels)


def check_seed(seed: Any) -> int:
    """Return ``seed`` if it is a non-negative int, else raise a ValueError."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def check_test_fraction(test_fraction: Any) -> float:
    """Return ``test_fraction`` if it is a number in [0, 1), else raise a ValueError."""
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, numbers.Real)
        or not 0 <= float(test_fraction) < 1
    ):
        raise ValueError(f"test_fraction must be a number in [0, 1), got {test_fraction!r}")
    return float(test_fraction)


def rgb_to_grey(x: Tensor) -> Tensor:
    """Map ``(3, H, W)`` RGB to ``(1, H, W)`` luma with the BT.601 weights."""
    w = x.new_tensor(_GREY_WEIGHTS).view(3, 1, 1)
    return (x * w).sum(0, keepdim=True)


def resize_square(x: Tensor, size: int) -> Tensor:
    """Resize ``(C, H, W)`` to ``(C, size, size)``: bilinear, antialiased when shrinking."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    y = F.interpolate(x[None], size=(size, size), mode="bilinear", align_corners=False, antialias=size < max(h, w))
    return y[0]


def resize_shorter_and_crop(x: Tensor, size: int) -> Tensor:
    """Resize ``(C, H, W)`` so that its shorter side is ``size``, then crop the centre ``size x size``."""
    h, w = x.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x[None], size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)[0]
    top, left = (new_h - size) // 2, (new_w - size) // 2
    return x[:, top : top + size, left : left + size]


def to_image(array: np.ndarray, *, max_value: float, size: int, channels: int) -> Tensor:
    """Convert one ``(H, W)`` or ``(H, W, 3)`` array with values in ``[0, max_value]`` to a
    float32 ``(channels, size, size)`` tensor in ``[-1, 1]``.

    Grey sources are repeated to 3 channels; RGB sources are reduced to luma for 1 channel.
    """
    x = torch.from_numpy(array.astype(np.float32) * (2.0 / max_value) - 1.0)  # copy: the source may be read-only
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)  # (C, H, W)
    if x.shape[0] == 3 and channels == 1:
        x = rgb_to_grey(x)
    elif x.shape[0] == 1 and channels == 3:
        x = x.repeat(3, 1, 1)
    x = resize_square(x, size)
    return x.clamp_(-1.0, 1.0).contiguous()


def stratified_split(
    labels: Sequence[int] | np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into disjoint train and test sets with the same class proportions.

    Each class contributes ``round(test_fraction * n_class)`` test items (at most ``n_class - 1``,
    so every class stays in train). Both index arrays come back in a seeded shuffled order, so
    sources sorted by label are mixed; the result depends only on ``labels``, ``test_fraction``
    and ``seed``.

    Arguments:
        labels: integer label per item.
        test_fraction: fraction of each class that goes to the test set, in ``[0, 1)``.
        seed: seed of the shuffle.

    Example:
        >>> train, test = stratified_split([0, 0, 0, 0, 1, 1, 1, 1], 0.25, seed=0)
        >>> sorted(train.tolist() + test.tolist()) == list(range(8)), len(test)
        (True, 2)
    """
    test_fraction = check_test_fraction(test_fraction)
    rng = np.random.default_rng(check_seed(seed))
    labels = np.asarray(labels)
    train_parts, test_parts = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(round(test_fraction * len(idx)), len(idx) - 1)
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    empty = np.zeros(0, dtype=np.int64)
    train = rng.permutation(np.concatenate(train_parts)) if train_parts else empty
    test = rng.permutation(np.concatenate(test_parts)) if test_parts else empty
    return train.astype(np.int64), test.astype(np.int64)


class ArrayImageDataset(Dataset[dict[str, Any]]):
    """Labelled images kept in memory as uint8 (or small-int) arrays, converted per item.

    Items are ``{"image": (channels, size, size) float32 in [-1, 1], "label": int}``.

    Arguments:
        images: ``(N, H, W)`` or ``(N, H, W, 3)`` array with values in ``[0, max_value]``.
        labels: ``(N,)`` integer labels.
        classes: class names, ``classes[label]``.
        max_value: the value that maps to 1 (255 for 8-bit images).
        size: output height and width.
        channels: 1 or 3.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        classes: Sequence[str],
        *,
        max_value: float,
        size: int,
        channels: int,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes: list[str] = list(classes)
        self.max_value = float(max_value)
        self.size = check_size(size)
        self.channels = check_channels(channels)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        image = to_image(self.images[index], max_value=self.max_value, size=self.size, channels=self.channels)
        return {"image": image, "label": int(self.labels[index])}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, size={self.size}, channels={self.channels})"
