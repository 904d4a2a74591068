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
``EmbeddingDataModule`` streams the row-aligned embedding files of a ``net2net fit`` run (the files and the
streams are :mod:`net2net.data.embeddings`, which does not import Lightning).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from ..config import instantiate_from_config
from ..data import ConcatDomains
from ..data.embeddings import EmbeddingArray, PairedEmbeddingStream, block_size, held_out_blocks, open_embeddings
from ..data.standardization import Standardization
from ..flows.checks import check_int

__all__ = ["DataModule", "EmbeddingDataModule", "TensorDataModule", "concat_domains"]


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
            Subset(d, torch.randperm(len(d), generator=g)[:max_per_domain].sort().values.tolist())
            if len(d) > max_per_domain
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

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", self.val_batch_size, False, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.val_batch_size, False, False)


class _HeldOut(IterableDataset):
    """The held-out rows (read once, at most ``max_val_rows``), standardised, in batches; under DDP each process
    takes every ``world_size``-th batch."""

    def __init__(self, src: Tensor, tgt: Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        self.src, self.tgt, self.batch_size, self.rank, self.world_size = src, tgt, batch_size, rank, world_size

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        starts = range(0, len(self.src), self.batch_size)
        for k, j in enumerate(starts):
            if k % self.world_size == self.rank:
                yield {"z_src": self.src[j : j + self.batch_size], "z_tgt": self.tgt[j : j + self.batch_size]}


class EmbeddingDataModule(L.LightningDataModule):
    """Training and held-out batches from two row-aligned embedding files (the data of a ``net2net fit`` run).

    Arguments:
        source, target: ``.npy`` / ``.safetensors`` files or folders of shards (see :func:`open_embeddings`).
        standardization: the ``Standardization`` file of the run (written by ``fit`` from :func:`scan_pair`).
        batch_size: rows per training batch (per process).
        source_key, target_key: tensor names in safetensors files holding several.
        val_fraction: share of the blocks held out (at most ``max_val_rows`` rows).
        max_val_rows: cap on the held-out rows (they are read into memory once).
        block_rows: rows per block (the unit of shuffling, sharding and the held-out split).
        shuffle_blocks: blocks whose rows are shuffled together.
        seed: seed of the split and the block order.
        num_workers: loader worker processes per training process.
    """

    def __init__(
        self,
        source: str,
        target: str,
        standardization: str,
        batch_size: int = 256,
        source_key: str | None = None,
        target_key: str | None = None,
        val_fraction: float = 0.05,
        max_val_rows: int = 20000,
        block_rows: int = 4096,
        shuffle_blocks: int = 8,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        sizes = {"batch_size": batch_size, "max_val_rows": max_val_rows, "block_rows": block_rows,
                 "shuffle_blocks": shuffle_blocks}  # fmt: skip
        for name, value in sizes.items():
            check_int(f"data.params.{name}", value)
        self.source_path, self.target_path = source, target
        self.source_key, self.target_key = source_key, target_key
        self.standardization_path = standardization
        self.batch_size, self.val_fraction, self.max_val_rows = batch_size, val_fraction, max_val_rows
        self.block_rows_max, self.shuffle_blocks, self.seed, self.num_workers = (
            block_rows,
            shuffle_blocks,
            seed,
            num_workers,
        )
        self.source: EmbeddingArray | None = None
        self.target: EmbeddingArray | None = None
        self.standardization: Standardization | None = None
        self._val: tuple[Tensor, Tensor] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.source is not None:
            return
        self.source = open_embeddings(self.source_path, self.source_key, name="source")
        self.target = open_embeddings(self.target_path, self.target_key, name="target")
        if self.source.rows != self.target.rows:
            raise ValueError(f"source has {self.source.rows} rows but target has {self.target.rows}")
        self.standardization = Standardization.load(self.standardization_path)
        for name, arr, mean in (
            ("source", self.source, self.standardization.src_mean),
            ("target", self.target, self.standardization.tgt_mean),
        ):
            if mean.numel() != arr.dim:
                raise ValueError(f"{name}: {arr.dim} features, but the standardisation has {mean.numel()}")
        self.block_rows = block_size(self.source.rows, self.block_rows_max)
        self.train_blocks, self.val_blocks = held_out_blocks(
            self.source.rows, self.block_rows, self.val_fraction, self.max_val_rows, self.seed
        )

    def _opened(self) -> tuple[EmbeddingArray, EmbeddingArray, Standardization]:
        """The source and target files and the standardisation, opened by :meth:`setup` on first use."""
        self.setup()
        assert self.source is not None and self.target is not None and self.standardization is not None  # by setup
        return self.source, self.target, self.standardization

    @property
    def rows(self) -> int:
        """Rows of each embedding file (training and held-out)."""
        return self._opened()[0].rows

    @property
    def n_val_rows(self) -> int:
        """Rows in the held-out blocks."""
        rows = self.rows
        return int(sum(min((b + 1) * self.block_rows, rows) - b * self.block_rows for b in self.val_blocks))

    def held_out(self) -> tuple[Tensor, Tensor]:
        """The held-out pairs, standardised: ``(z_src (N_val, D_src), z_tgt (N_val, D_tgt))``."""
        if self._val is None:
            source, target, s = self._opened()
            spans = [(b * self.block_rows, min((b + 1) * self.block_rows, source.rows)) for b in self.val_blocks]
            src = torch.from_numpy(np.concatenate([source.read(a, b) for a, b in spans]))
            tgt = torch.from_numpy(np.concatenate([target.read(a, b) for a, b in spans]))
            self._val = (s.source(src), s.target(tgt))
        return self._val

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)  # set by Lightning when the module is attached to a Trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        source, target, standardization = self._opened()
        rank, world = self._rank()
        stream = PairedEmbeddingStream(
            source,
            target,
            self.train_blocks,
            self.block_rows,
            self.batch_size,
            standardization,
            seed=self.seed,
            rank=rank,
            world_size=world,
            shuffle_blocks=self.shuffle_blocks,
        )
        return DataLoader(
            stream, batch_size=None, num_workers=self.num_workers, persistent_workers=self.num_workers > 0
        )

    def val_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        src, tgt = self.held_out()
        batch = min(max(self.batch_size, 1024), math.ceil(len(src) / world))  # every process gets a batch
        return DataLoader(_HeldOut(src, tgt, batch, rank, world), batch_size=None)


class _DrawnBatches(IterableDataset):
    """``batches`` batches of rows drawn with replacement from ``tensors`` (uniformly, or by ``weights``)."""

    def __init__(self, tensors: Mapping[str, Tensor], batch_size: int, batches: int, generator: torch.Generator,
                 weights: Tensor | None) -> None:  # fmt: skip
        self.tensors, self.batch_size, self.batches = dict(tensors), batch_size, batches
        self.generator, self.weights = generator, weights
        self.rows = len(next(iter(self.tensors.values())))

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        for _ in range(self.batches):
            if self.weights is None:
                idx = torch.randint(self.rows, (self.batch_size,), generator=self.generator)
            else:
                idx = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
            yield {k: t[idx] for k, t in self.tensors.items()}


class _Rows(Dataset):
    """Row ``i`` of every tensor, as a dict (the default collate stacks them into a batch)."""

    def __init__(self, tensors: Mapping[str, Tensor]) -> None:
        self.tensors = dict(tensors)

    def __len__(self) -> int:
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: t[i] for k, t in self.tensors.items()}


class TensorDataModule(L.LightningDataModule):
    """Training batches drawn with replacement from the tensors of one safetensors file: the data of models that
    a metric or an experiment trains on tensors it holds (written to the run folder, so the config stays data).

    Arguments:
        path: the safetensors file; every tensor has the same number of rows, and each batch is a dict of them.
        batch_size: rows per batch.
        seed: seed of the draws (a generator of its own; the order continues across epochs).
        balance_by: the name of an integer tensor (e.g. ``"label"``): rows are drawn with probability
            ``1 / count(their value)``, so every value comes up equally often; ``None`` draws uniformly.
        batches_per_epoch: the length of an epoch (the run's length is ``lightning.trainer.max_steps``).
        replacement: ``False``: an epoch is one shuffled pass without replacement instead (the last partial batch
            dropped; ``seed`` and ``batches_per_epoch`` unused), its order drawn from the global torch generator,
            which the run's ``seed`` sets, as ``DataLoader(shuffle=True, drop_last=True)`` does (the batches of
            the known-answer problem of ``net2net reproduce translators`` before it moved onto the entry point).
    """

    def __init__(self, path: str, batch_size: int, seed: int = 0, balance_by: str | None = None,
                 batches_per_epoch: int = 1000, replacement: bool = True) -> None:  # fmt: skip
        super().__init__()
        from ..io import load_safetensors

        self.tensors = load_safetensors(path, "the training tensors", "write them again")
        rows = {k: len(t) for k, t in self.tensors.items()}
        if not rows or len(set(rows.values())) != 1:
            raise ValueError(f"data.params.path: expected tensors with the same number of rows in {path}, got {rows}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.params.batch_size: expected a positive int, got {batch_size!r}")
        self.weights: Tensor | None = None
        if balance_by is not None:
            if balance_by not in self.tensors or self.tensors[balance_by].is_floating_point():
                raise ValueError(f"data.params.balance_by: expected the name of an integer tensor of {path} "
                                 f"({sorted(self.tensors)}), got {balance_by!r}")  # fmt: skip
            values = self.tensors[balance_by]
            self.weights = (1.0 / torch.bincount(values).clamp(min=1).float())[values]  # (N,)
        if not replacement and balance_by is not None:
            raise ValueError(f"data.params.balance_by: draws with replacement only; got {balance_by!r} with "
                             "replacement: false")  # fmt: skip
        self.batch_size, self.batches_per_epoch, self.replacement = batch_size, batches_per_epoch, bool(replacement)
        self.generator = torch.Generator().manual_seed(seed)

    def train_dataloader(self) -> DataLoader:
        if not self.replacement:
            return DataLoader(_Rows(self.tensors), batch_size=self.batch_size, shuffle=True, drop_last=True)
        batches = _DrawnBatches(self.tensors, self.batch_size, self.batches_per_epoch, self.generator, self.weights)
        return DataLoader(batches, batch_size=None)
