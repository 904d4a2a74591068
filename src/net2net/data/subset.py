"""``Subset``: a reproducible random subset of a dataset (quick experiments, large cached activations)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["Subset"]


class Subset(Dataset):
    """``n`` items of ``dataset`` drawn without replacement by a seeded permutation (sorted, so the order of the
    underlying dataset is kept).

    Arguments:
        dataset: any map-style dataset, or a ``target``/``params`` block that builds one (for YAML configs).
        n: number of items; at most ``len(dataset)``.
        seed: seed of the permutation.

    Example:
        >>> from net2net.data import Digits
        >>> len(Subset(Digits(split="test"), 100))
        100
    """

    def __init__(self, dataset: Dataset | Mapping[str, Any], n: int, seed: int = 0) -> None:
        if isinstance(dataset, Mapping):
            from ..config import instantiate_from_config

            built: Dataset = instantiate_from_config(dataset, key="dataset")  # Any -> the type it must have
            dataset = built
        total = len(dataset)  # type: ignore[arg-type]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= total:
            raise ValueError(f"Subset: n must be an int in [1, {total}] (the dataset's length), got {n!r}")
        self.dataset = dataset
        self.n, self.seed = n, int(seed)
        perm = torch.randperm(total, generator=torch.Generator().manual_seed(self.seed))[:n]
        self.indices = perm.sort().values  # (n,)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for a Subset of {self.n} items")
        return self.dataset[int(self.indices[i])]
