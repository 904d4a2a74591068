"""Fashion-MNIST (60k train / 10k test, 28x28 grey, 10 classes) read from local IDX files."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from .idx import IDX_DTYPES, read_idx
from .image_arrays import ArrayImageDataset, check_split

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "FASHION_MNIST_ENV",
    "FASHION_MNIST_FILES",
    "FashionMNIST",
    "find_fashion_mnist",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
FASHION_MNIST_ENV = "NET2NET_FASHION_MNIST"
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
# split -> (images file, labels file), each found plain or with ".gz"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC, _LABELS_MAGIC = 0x00000803, 0x00000801
_INSTALL_HINT = (
    "Install it with `apt-get install dataset-fashion-mnist` (Debian/Ubuntu; files go to "
    f"{FASHION_MNIST_DEBIAN_DIR}), or pass root= / set {FASHION_MNIST_ENV} to a directory holding the "
    "four standard files (downloaded from https://github.com/zalandoresearch/fashion-mnist)."
)


def _find_file(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):  # plain first: faster to read
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path) -> list[str]:
    names = [n for pair in FASHION_MNIST_FILES.values() for n in pair]
    return [f"{n}[.gz]" for n in names if _find_file(directory, n) is None]


def find_fashion_mnist(root: str | Path | None = None) -> Path:
    """Return the directory holding the four Fashion-MNIST IDX files.

    With ``root`` given, looks in ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout);
    otherwise in ``$NET2NET_FASHION_MNIST`` (same two places) and then in the Debian package's
    ``/usr/share/datasets/fashion-mnist``.

    Raises:
        FileNotFoundError: no candidate holds all four files; the message lists every place looked
            at, what was missing there, and how to install the data.
    """
    looked: list[str] = []
    if root is not None:
        bases = [(Path(root).expanduser(), "root argument")]
    else:
        env = os.environ.get(FASHION_MNIST_ENV)
        bases = [(Path(env).expanduser(), f"${FASHION_MNIST_ENV}")] if env else []
        if not env:
            looked.append(f"${FASHION_MNIST_ENV}: not set")
        bases.append((FASHION_MNIST_DEBIAN_DIR, "Debian package dataset-fashion-mnist"))

    for base, origin in bases:
        candidates = [base] if base == FASHION_MNIST_DEBIAN_DIR else [base, base / "FashionMNIST" / "raw"]
        for directory in candidates:
            if not directory.is_dir():
                looked.append(f"{directory} ({origin}): no such directory")
                continue
            missing = _missing(directory)
            if not missing:
                return directory
            looked.append(f"{directory} ({origin}): missing {', '.join(missing)}")
    raise FileNotFoundError("Fashion-MNIST not found. Looked in:\n  - " + "\n  - ".join(looked) + "\n" + _INSTALL_HINT)


def _check_magic(path: Path, array: np.ndarray, expected: int) -> None:
    """Raise a ValueError unless the IDX file's magic number (type code, ndim) is ``expected``."""
    type_code = next(t for t, d in IDX_DTYPES.items() if d.newbyteorder("=") == array.dtype)
    magic = (type_code << 8) | array.ndim
    if magic != expected:
        kind = "image" if expected == _IMAGES_MAGIC else "label"
        raise ValueError(
            f"{path}: IDX magic number is 0x{magic:08X} ({magic}), expected 0x{expected:08X} ({expected}) "
            f"for a Fashion-MNIST {kind} file (uint8, {expected & 0xFF} dimensions)"
        )


@lru_cache(maxsize=4)
def _load_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one split; cached, returned arrays are read-only and shared."""
    image_name, label_name = FASHION_MNIST_FILES[split]
    image_path = _find_file(Path(directory), image_name)
    label_path = _find_file(Path(directory), label_name)
    assert image_path is not None and label_path is not None  # find_fashion_mnist checked
    images, labels = read_idx(image_path), read_idx(label_path)
    _check_magic(image_path, images, _IMAGES_MAGIC)
    _check_magic(label_path, labels, _LABELS_MAGIC)
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{label_path}: labels must be in 0..9, found {int(labels.max())}")
    images.flags.writeable = False
    labels = labels.astype(np.int64)
    labels.flags.writeable = False
    return images, labels


class FashionMNIST(ArrayImageDataset):
    """Fashion-MNIST from local IDX files: ``{"image": (channels, size, size) in [-1, 1], "label": int}``.

    Arguments:
        root: directory with the four IDX files (plain or ``.gz``); ``None`` searches
            ``$NET2NET_FASHION_MNIST`` and the Debian package's directory (see :func:`find_fashion_mnist`).
        split: ``"train"`` (60000 images) or ``"test"`` (10000).
        size: output height and width (28 is native).
        channels: 1, or 3 to repeat the grey channel.

    Example:
        >>> ds = FashionMNIST(split="test", size=32, channels=3)  # doctest: +SKIP
        >>> ds[0]["image"].shape, ds.classes[ds[0]["label"]]  # doctest: +SKIP
        (torch.Size([3, 32, 32]), 'Ankle boot')
    """

    def __init__(self, root: str | Path | None = None, split: str = "train", size: int = 28, channels: int = 1) -> None:
        self.split = check_split(split)
        self.root = find_fashion_mnist(root)
        images, labels = _load_split(str(self.root.resolve()), split)
        super().__init__(images, labels, FASHION_MNIST_CLASSES, max_value=255, size=size, channels=channels)
