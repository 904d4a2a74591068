"""The per-dimension standardisation of a fit run's embeddings (``standardization.safetensors``); torch only, so
that loading a run for inference needs neither Lightning nor the data streams of :mod:`net2net.data.embeddings`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file
from torch import Tensor

from ..io import atomic_save_safetensors

__all__ = ["STANDARDIZATION_FORMAT", "Standardization"]

PathLike = str | os.PathLike[str]
STANDARDIZATION_FORMAT = "net2net.Standardization/1"


@dataclass
class Standardization:
    """Per-dimension ``(x - mean) / std`` of the source and the target, as a fit run stores it.

    The cINN learns the density of the standardised target; ``log p(z_tgt) = log p(standardised z_tgt) -
    sum(log tgt_std)`` (:attr:`target_log_det` is that correction).
    """

    src_mean: Tensor  # (D_src,) float64
    src_std: Tensor
    tgt_mean: Tensor  # (D_tgt,) float64
    tgt_std: Tensor

    @property
    def target_log_det(self) -> float:
        """``log |det d(standardised z_tgt) / d z_tgt|`` = ``-sum(log tgt_std)``: add it to a standardised
        log-density."""
        return float(-self.tgt_std.log().sum())

    def source(self, z: Tensor) -> Tensor:
        """Standardised ``z_src``."""
        return (z - self.src_mean.to(z)) / self.src_std.to(z)

    def source_inverse(self, z: Tensor) -> Tensor:
        """Raw ``z_src`` from a standardised one."""
        return z * self.src_std.to(z) + self.src_mean.to(z)

    def target(self, z: Tensor) -> Tensor:
        """Standardised ``z_tgt``."""
        return (z - self.tgt_mean.to(z)) / self.tgt_std.to(z)

    def target_inverse(self, z: Tensor) -> Tensor:
        """Raw ``z_tgt`` from a standardised one."""
        return z * self.tgt_std.to(z) + self.tgt_mean.to(z)

    def save(self, path: PathLike, metadata: dict[str, str] | None = None) -> Path:
        """Write to a safetensors file, atomically."""
        tensors = {
            "src_mean": self.src_mean,
            "src_std": self.src_std,
            "tgt_mean": self.tgt_mean,
            "tgt_std": self.tgt_std,
        }
        return atomic_save_safetensors(tensors, path, metadata={"format": STANDARDIZATION_FORMAT, **(metadata or {})})

    @classmethod
    def load(cls, path: PathLike) -> Standardization:
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no standardisation file at {path}")
        t = load_file(str(path))
        missing = {"src_mean", "src_std", "tgt_mean", "tgt_std"} - t.keys()
        if missing:
            raise ValueError(f"{path}: not a standardisation file (missing {sorted(missing)})")
        return cls(t["src_mean"].double(), t["src_std"].double(), t["tgt_mean"].double(), t["tgt_std"].double())
