"""``get_dataset``: build any dataset of this package by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch.utils.data import Dataset

from .digits import Digits, MNIST5k
from .faces import DCGANFaces
from .fashion_mnist import FashionMNIST
from .folder import ImageFolder
from .image_arrays import check_channels, check_size, check_split

__all__ = ["DATASETS", "get_dataset"]

DATASETS: dict[str, Callable[..., Dataset]] = {
    "fashion_mnist": FashionMNIST,
    "mnist": MNIST5k,
    "digits": Digits,
    "dcgan_faces": DCGANFaces,
    "image_folder": ImageFolder,
}


def get_dataset(name: str, split: str, size: int, channels: int, **kwargs: Any) -> Dataset:
    """Build the dataset called ``name`` (a key of :data:`DATASETS`).

    Arguments:
        name: ``"fashion_mnist"``, ``"mnist"``, ``"digits"``, ``"dcgan_faces"`` or ``"image_folder"``.
        split: ``"train"`` or ``"test"``.
        size: output height and width, a positive int.
        channels: 1 or 3.
        kwargs: passed to the class (e.g. ``root=`` for ``fashion_mnist`` and ``image_folder``,
            ``seed=``, ``test_fraction=``, ``n_images=``).

    Example:
        >>> ds = get_dataset("digits", split="test", size=16, channels=3)
        >>> ds[0]["image"].shape
        torch.Size([3, 16, 16])
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](split=check_split(split), size=check_size(size), channels=check_channels(channels), **kwargs)
