"""Union of several image datasets, each item tagged with the index of its source (its domain)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

__all__ = ["ConcatDomains"]


class ConcatDomains(Dataset[dict[str, Any]]):
    """Concatenate datasets of dict items and add ``"domain": int`` (the source's position).

    Every other key (``"image"``, ``"label"``, ...) is passed through unchanged, so labels keep
    their meaning within their domain. All members must produce images of the same shape; this is
    checked on item 0 of each at construction.

    Arguments:
        datasets: the domains, each returning dicts with an ``"image"`` tensor.
        names: one name per domain (``domains`` attribute); defaults to the class names, made unique.

    Example:
        >>> from net2net.data import Digits, MNIST5k
        >>> ds = ConcatDomains([MNIST5k(size=28), Digits(size=28)], names=["mnist", "digits"])
        >>> ds[len(ds) - 1]["domain"], ds.domains
        (1, ['mnist', 'digits'])
    """

    def __init__(self, datasets: Sequence[Dataset], names: Sequence[str] | None = None) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDomains needs at least one dataset, got none")
        if names is None:
            base = [type(d).__name__ for d in self.datasets]
            names = [b if base.count(b) == 1 else f"{b}_{i}" for i, b in enumerate(base)]
        if len(names) != len(self.datasets):
            raise ValueError(f"got {len(self.datasets)} datasets but {len(names)} names: {list(names)}")
        self.domains: list[str] = [str(n) for n in names]

        shapes = []
        for name, ds in zip(self.domains, self.datasets, strict=True):
            if len(ds) == 0:  # type: ignore[arg-type]
                raise ValueError(f"domain {name!r} is an empty dataset")
            item = ds[0]
            if not isinstance(item, dict) or "image" not in item:
                raise ValueError(f"domain {name!r}: items must be dicts with an 'image' key, got {type(item).__name__}")
            shapes.append(tuple(item["image"].shape))
        if len(set(shapes)) > 1:
            listing = ", ".join(f"{n!r}: {s}" for n, s in zip(self.domains, shapes, strict=True))
            raise ValueError(
                f"all domains must produce images of the same shape (C, H, W), got {listing}; "
                "pass the same size and channels to every dataset"
            )
        self.image_shape = shapes[0]
        self.cumulative_sizes: list[int] = []
        total = 0
        for ds in self.datasets:
            total += len(ds)  # type: ignore[arg-type]
            self.cumulative_sizes.append(total)

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def domain_of(self, index: int) -> int:
        """The domain of item ``index``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} items")
        return bisect.bisect_right(self.cumulative_sizes, index % len(self))

    def __getitem__(self, index: int) -> dict[str, Any]:
        domain = self.domain_of(index)
        index %= len(self)
        start = self.cumulative_sizes[domain - 1] if domain > 0 else 0
        item = dict(self.datasets[domain][index - start])
        item["domain"] = domain
        return item

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}={len(d)}" for n, d in zip(self.domains, self.datasets, strict=True))  # type: ignore[arg-type]
        return f"ConcatDomains({parts}, image_shape={self.image_shape})"
