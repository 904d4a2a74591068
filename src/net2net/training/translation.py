"""``TranslationDataModule``: (z_src, z_tgt) pairs of two frozen experts, from a latent cache or encoded live.

.. code-block:: yaml

    data:
      target: net2net.training.translation.TranslationDataModule
      params:
        batch_size: 128
        source: {target: net2net.experts.text.SentenceEncoder}                       # Φ
        target: {target: net2net.experts.target.load_autoencoder_target,              # Θ, Λ
                 params: {path: "pretrained:fashion_mnist_autoencoder"}}
        source_key: captions           # item entry Φ reads (image, label, captions, ...)
        train: {target: net2net.data.CaptionedDataset, params: {dataset: {...}}}
        validation: {...}

``prepare_data`` (once per machine) encodes each split into the latent cache of
:mod:`net2net.data.latent_cache` unless a cache with the same key exists; ``setup`` reads it. A stochastic
source (``source.stochastic``, e.g. the deformed encoder of Sec. C) is encoded live on every batch instead,
after the batch reached its device. The experts stay frozen and in eval mode; they are not part of the
trained module's state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import instantiate_from_config
from ..data.latent_cache import (
    LatentDataset,
    _collate,
    cache_key,
    dataset_fingerprint,
    encode_dataset,
    encode_source,
    encode_target,
    verify_cache,
)
from ..experts.protocols import check_expert
from .runs import cache_root

__all__ = ["TranslationDataModule"]
log = logging.getLogger(__name__)


def _fingerprint(expert: Any) -> str:
    from ..experts.protocols import expert_fingerprint

    return expert_fingerprint(expert)


class TranslationDataModule(L.LightningDataModule):
    """Pairs ``{"z_src", "z_tgt", "index"[, "label"]}`` for training a cINN between two frozen experts.

    Arguments:
        source: ``target``/``params`` block of the source expert Φ (``encode``).
        target: block of the target expert Θ/Λ (``encode_dist`` or ``encode``, and ``decode`` for image logs).
        train: block of the training dataset (dict items).
        validation: block of the validation dataset, or ``None``.
        batch_size: pairs per training step (per device).
        source_key: the item entry Φ reads (``"image"``, ``"label"``, ``"captions"``, ...).
        target_key: the item entry Θ reads.
        cache_dir: root of the latent caches (default ``$NET2NET_CACHE/latents`` or ``~/.cache/net2net/latents``).
        name: prefix of the cache folders.
        condition_noise: Gaussian noise on ``z_src`` during training (a regulariser for few distinct conditions).
        encode_batch_size: images per expert call when encoding.
        progress: progress bars while encoding.
    """

    def __init__(
        self,
        source: Mapping[str, Any],
        target: Mapping[str, Any],
        train: Mapping[str, Any],
        validation: Mapping[str, Any] | None = None,
        batch_size: int = 128,
        source_key: str = "image",
        target_key: str = "image",
        cache_dir: str | None = None,
        name: str = "pairs",
        condition_noise: float = 0.0,
        encode_batch_size: int = 256,
        progress: bool = True,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"data.params.batch_size must be a positive int, got {batch_size!r}")
        self.source_config, self.target_config = dict(source), dict(target)
        self.split_configs = {"train": dict(train), **({"validation": dict(validation)} if validation else {})}
        self.batch_size = batch_size
        self.source_key, self.target_key = source_key, target_key
        self.cache_root = Path(cache_dir) if cache_dir is not None else cache_root() / "latents"
        self.name = name
        self.condition_noise = condition_noise
        self.encode_batch_size = encode_batch_size
        self.progress = progress
        self._source: Any = None
        self._target: Any = None
        self._fingerprints: tuple[str, str] | None = None
        self.raw: dict[str, Dataset] = {}
        self.pairs: dict[str, Dataset] = {}

    # -- experts, built on first use -------------------------------------------------------------------
    def _expert(self, role: str) -> Any:
        """The ``"source"`` or ``"target"`` expert, instantiated from ``data.params.<role>`` and checked once."""
        if getattr(self, f"_{role}") is None:
            key = f"data.params.{role}"
            expert = instantiate_from_config(getattr(self, f"{role}_config"), key=key)
            setattr(self, f"_{role}", check_expert(expert, role, key))
        return getattr(self, f"_{role}")

    @property
    def source(self) -> Any:
        return self._expert("source")

    @property
    def target(self) -> Any:
        return self._expert("target")

    @property
    def live(self) -> bool:
        """Whether the source is stochastic and therefore encoded on every batch instead of cached."""
        return bool(getattr(self.source, "stochastic", False))

    def dataset(self, split: str) -> Dataset:
        """The raw dataset of ``split`` (``"train"`` or ``"validation"``)."""
        if split not in self.raw:
            self.raw[split] = instantiate_from_config(self.split_configs[split], key=f"data.params.{split}")
        return self.raw[split]

    def cache_path(self, split: str) -> Path:
        """The cache folder of ``split`` for the current experts and data."""
        if self._fingerprints is None:  # hashing the experts' weights once (SBERT: ~90 MB)
            self._fingerprints = (_fingerprint(self.source), _fingerprint(self.target))
        key = cache_key(
            *self._fingerprints,
            dataset_fingerprint(self.dataset(split), self.split_configs[split]), self.source_key, self.target_key,
        )  # fmt: skip
        return self.cache_root / f"{self.name}-{split}-{key}"

    # -- Lightning hooks -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        if self.live:
            return
        for split in self.split_configs:
            path = self.cache_path(split)
            if (path / "manifest.json").is_file():
                problems = verify_cache(path)
                if not problems:
                    log.info("latent cache hit for %s: %s", split, path)
                    continue
                log.warning("latent cache %s is damaged, encoding it again: %s", path, "; ".join(problems))
                (path / "manifest.json").unlink()  # incomplete until encode_dataset writes a new one
            meta = {"source": self.source_config, "target": self.target_config, "data": self.split_configs[split]}
            encode_dataset(self.dataset(split), self.source, self.target, path, source_key=self.source_key,
                           target_key=self.target_key, batch_size=self.encode_batch_size,
                           metadata={"config": meta}, progress=self.progress)  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        for split in self.split_configs:
            if split in self.pairs:
                continue
            if self.live:
                self.pairs[split] = self.dataset(split)
            else:
                noise = self.condition_noise if split == "train" else 0.0
                self.pairs[split] = LatentDataset(self.cache_path(split), condition_noise=noise)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.pairs:
            self.setup()
        ds = self.pairs[split]
        if isinstance(ds, LatentDataset):
            return ds.loader(self.batch_size, shuffle=shuffle, drop_last=shuffle)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=shuffle, drop_last=shuffle, collate_fn=_collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        return self._loader("validation", shuffle=False) if "validation" in self.split_configs else []

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Live encoding of raw batches (stochastic sources) on the batch's device."""
        if not self.live or "z_tgt" in batch:
            return batch
        y = batch[self.target_key]
        for expert in (self.source, self.target):
            if isinstance(expert, torch.nn.Module):
                expert.to(y.device)
        mean, std = encode_target(self.target, y)
        x = batch[self.source_key]
        out = {
            "z_src": encode_source(self.source, x).to(y.device),
            "z_tgt": (mean + std * torch.randn_like(mean)).to(y.device),
        }
        if "label" in batch:
            out["label"] = batch["label"]
        return out

    def decode(self, z: Tensor) -> Tensor:
        """Images of target codes (for image logs), on the target expert's device."""
        target = self.target
        if isinstance(target, torch.nn.Module):
            target.to(z.device)
        with torch.no_grad():
            return target.decode(z)
