"""``DataModule``: train/validation datasets from ``target``/``params`` blocks, as in the CompVis configs.

.. code-block:: yaml

    data:
      target: net2net.training.datamodule.DataModule
      params:
        batch_size: 64
        train:
          target: net2net.data.FashionMNIST
          params: {split: train, size: 28}
        validation:
          target: net2net.data.FashionMNIST
          params: {split: test, size: 28}

A union of datasets tagged by domain is the ``concat_domains`` target with nested dataset blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from ..config import instantiate_from_config
from ..data import ConcatDomains

__all__ = ["DataModule", "concat_domains"]


def concat_domains(
    datasets: Mapping[str, Mapping[str, Any]] | Sequence[Mapping[str, Any]],
    names: Sequence[str] | None = None,
    max_per_domain: int | None = None,
    seed: int = 0,
) -> ConcatDomains:
    """:class:`net2net.data.ConcatDomains` of datasets given as ``target``/``params`` blocks.

    Arguments:
        datasets: a mapping ``domain name -> block`` (in domain order; the names become ``domains``), or a list
            of blocks.
        names: domain names for a list (default: the class names).
        max_per_domain: keep at most this many items of each domain (a seeded random subset), so that a large
            domain (Fashion-MNIST, 60k) does not drown small ones (8x8 digits, 1.4k).
        seed: seed of those subsets.

    Example:
        >>> ds = concat_domains({"digits": {"target": "net2net.data.Digits", "params": {"size": 28}}})
        >>> ds.domains, ds[0]["domain"]
        (['digits'], 0)
    """
    if isinstance(datasets, Mapping):
        if names is not None:
            raise ValueError("concat_domains: give names either as the keys of datasets or as names, not both")
        names = [str(k) for k in datasets]
        built = [instantiate_from_config(cfg, key=f"datasets.{k}") for k, cfg in datasets.items()]
    else:
        built = [instantiate_from_config(cfg, key=f"datasets[{i}]") for i, cfg in enumerate(datasets)]
    if max_per_domain is not None:
        if max_per_domain < 1:
            raise ValueError(f"concat_domains: max_per_domain must be positive, got {max_per_domain}")
        g = torch.Generator().manual_seed(seed)
        built = [
            Subset(d, torch.randperm(len(d), generator=g)[:max_per_domain].sort().values.tolist())  # type: ignore[arg-type]
            if len(d) > max_per_domain  # type: ignore[arg-type]
            else d
            for d in built
        ]
    return ConcatDomains(built, names=names)


class DataModule(L.LightningDataModule):
    """Data loaders over datasets built from ``target``/``params`` blocks (built once, in :meth:`setup`).

    Arguments:
        batch_size: batch size of every loader.
        train: block of the training set (shuffled, last incomplete batch dropped so that BatchNorm never sees
            a batch of one).
        validation: block of the validation set (optional).
        test: block of the test set (optional).
        num_workers: loader worker processes (0 loads in the main process).
        val_batch_size: batch size of the validation/test loaders (default ``batch_size``).
        shuffle_train: shuffle the training set.
        drop_last_train: drop the last incomplete training batch.
        pin_memory: pin loader memory (for GPU training).

    Example:
        >>> dm = DataModule(4, train={"target": "net2net.data.Digits", "params": {"size": 28}})
        >>> dm.setup("fit")
        >>> next(iter(dm.train_dataloader()))["image"].shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(
        self,
        batch_size: int,
        train: Mapping[str, Any] | None = None,
        validation: Mapping[str, Any] | None = None,
        test: Mapping[str, Any] | None = None,
        num_workers: int = 0,
        val_batch_size: int | None = None,
        shuffle_train: bool = True,
        drop_last_train: bool = True,
        pin_memory: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1 or (val_batch_size is not None and val_batch_size < 1):
            raise ValueError(f"data.params: batch sizes must be positive, got {batch_size} and {val_batch_size}")
        if num_workers < 0:
            raise ValueError(f"data.params.num_workers: expected >= 0, got {num_workers}")
        self.configs = {k: v for k, v in (("train", train), ("validation", validation), ("test", test)) if v is not None}
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.shuffle_train = shuffle_train
        self.drop_last_train = drop_last_train
        self.pin_memory = pin_memory
        self.datasets: dict[str, Dataset] = {}
        if validation is None:  # Lightning looks for the hook to decide whether to validate
            self.val_dataloader = None  # type: ignore[assignment]
        if test is None:
            self.test_dataloader = None  # type: ignore[assignment]

    def setup(self, stage: str | None = None) -> None:
        """Build every configured dataset (once)."""
        for name, cfg in self.configs.items():
            if name not in self.datasets:
                self.datasets[name] = instantiate_from_config(cfg, key=f"data.params.{name}")

    def _dataset(self, name: str) -> Dataset:
        if name not in self.configs:
            raise ValueError(f"data.params.{name}: no {name} dataset is configured")
        self.setup()
        return self.datasets[name]

    def _loader(self, name: str, batch_size: int, shuffle: bool, drop_last: bool) -> DataLoader:
        return DataLoader(
            self._dataset(name),
            batch_size=batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self.pin_memory,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, self.shuffle_train, self.drop_last_train)

    def val_dataloader(self) -> DataLoader:  # type: ignore[override]
        return self._loader("validation", self.val_batch_size, False, False)

    def test_dataloader(self) -> DataLoader:  # type: ignore[override]
        return self._loader("test", self.val_batch_size, False, False)
