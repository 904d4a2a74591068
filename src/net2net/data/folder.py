"""Users' own PNG/JPEG images from a directory tree, labelled by sub-folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import Dataset

from .image_arrays import (
    check_channels,
    check_seed,
    check_size,
    check_split,
    check_test_fraction,
    resize_shorter_and_crop,
    rgb_to_grey,
    stratified_split,
)

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "find_images"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def find_images(root: str | Path) -> list[Path]:
    """All files under ``root`` (recursively, hidden entries skipped) whose suffix is in
    :data:`IMAGE_EXTENSIONS` (any case), sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(Path(dirpath) / name)
    return sorted(found)


def _open_rgb(path: Path) -> Image.Image:
    """Decode ``path`` to an RGB image (EXIF orientation applied), or raise a ValueError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img).convert("RGB")
    except Exception as e:  # PIL raises many types (OSError, SyntaxError, struct.error, ...) for corrupt data
        raise ValueError(f"cannot read image file {path}: {e}") from e


class ImageFolder(Dataset[dict[str, Any]]):
    """PNG/JPEG images found recursively under ``root``, resized and centre-cropped.

    Labels come from the first-level sub-folders (``root/<class>/.../x.png``, classes sorted by
    name); with all images directly in ``root`` every label is 0 and ``classes == [root.name]``.
    Images are decoded per item: the shorter side is resized to ``size`` (bilinear, antialiased
    when shrinking) and the centre ``size x size`` is cut out. Every file's header is checked at
    construction; train and test come from a seeded stratified split.

    Arguments:
        root: the folder.
        split: ``"train"`` or ``"test"``.
        size: output height and width.
        channels: 3 (RGB), or 1 for luma.
        test_fraction: fraction of each class held out for ``"test"``; 0 puts everything in
            ``"train"`` (for a folder that is already a split).
        seed: seed of the split.

    Raises:
        FileNotFoundError: ``root`` is missing or holds no PNG/JPEG file.
        ValueError: a file cannot be read (the message names it), images lie both in ``root`` and
            in sub-folders, or the requested split is empty.

    Example:
        >>> ds = ImageFolder("my_photos", size=64, test_fraction=0.1)  # doctest: +SKIP
        >>> ds[0]["image"].shape, ds.classes  # doctest: +SKIP
        (torch.Size([3, 64, 64]), ['cats', 'dogs'])
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: int = 64,
        channels: int = 3,
        test_fraction: float = 0.2,
        seed: int = 0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.split = check_split(split)
        self.size = check_size(size)
        self.channels = check_channels(channels)
        self.test_fraction = check_test_fraction(test_fraction)
        self.seed = check_seed(seed)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a directory")
        files = find_images(self.root)
        if not files:
            raise FileNotFoundError(
                f"no image files in {self.root} (searched recursively for extensions "
                f"{', '.join(IMAGE_EXTENSIONS)}, any case)"
            )
        for path in files:  # header check, so a bad file fails now rather than mid-training
            try:
                with Image.open(path) as img:
                    img.verify()
            except Exception as e:  # PIL raises many types for corrupt data
                raise ValueError(f"cannot read image file {path}: {e}") from e

        top = [p.relative_to(self.root).parts[0] if len(p.relative_to(self.root).parts) > 1 else None for p in files]
        if all(t is None for t in top):
            self.classes = [self.root.name]
            labels = np.zeros(len(files), dtype=np.int64)
        elif any(t is None for t in top):
            loose = [str(p) for p, t in zip(files, top, strict=True) if t is None][:3]
            raise ValueError(
                f"{self.root} holds images both directly (e.g. {', '.join(loose)}) and in sub-folders; "
                "put every image in a class sub-folder, or none"
            )
        else:
            names = [t for t in top if t is not None]  # all of them here
            self.classes = sorted(set(names))
            labels = np.array([self.classes.index(t) for t in names], dtype=np.int64)

        train, test = stratified_split(labels, self.test_fraction, self.seed)
        indices = train if split == "train" else test
        if len(indices) == 0:
            raise ValueError(
                f"split {split!r} of {self.root} is empty ({len(files)} images, test_fraction={test_fraction})"
            )
        self.files = [files[i] for i in indices]
        self.labels = labels[indices]

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        rgb = np.asarray(_open_rgb(self.files[index]))  # (H, W, 3) uint8
        x = torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1.0).permute(2, 0, 1)  # (3, H, W)
        if self.channels == 1:
            x = rgb_to_grey(x)
        x = resize_shorter_and_crop(x, self.size)
        return {"image": x.clamp_(-1.0, 1.0).contiguous(), "label": int(self.labels[index])}

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, split={self.split!r}, n={len(self)}, classes={len(self.classes)})"
