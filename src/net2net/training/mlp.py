"""The deterministic baseline of the paper's ablation (supplementary Sec. E, Tab. S4): an MLP translator.

The MLP translator replaces the cINN τ by a regression ``z_tgt ≈ f(H(z_src))``: the same kind of embedder H
as the cINN (dense for flat conditions, convolutional for ``(C, H, W)`` ones) followed by a fully connected
head, trained by mean squared error on the same ``(z_src, z_tgt)`` pairs. It predicts one code per condition
(roughly the conditional mean), which is what the ablation contrasts with the cINN's samples.

.. code-block:: yaml

    model:
      target: net2net.training.mlp.MLPTranslatorModule
      params:
        translator_config:
          target: net2net.training.mlp.MLPTranslator
          params: {dim: 64, cond_dim: 128, hidden_dim: 1024, depth: 2, embedding_dim: 128}
        optim: {max_lr: 2.5e-4}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from ..config import instantiate_from_config
from ..flows.layers import actnorm_ready
from ..flows.base import check_flat, check_tensor
from ..io import atomic_save_safetensors
from ..translators.mlp import MLPTranslator
from .optim import FlowOptimConfig, make_optimizer
from .precision import clip_grad_norm

__all__ = ["MLP_FORMAT", "MLPTranslator", "MLPTranslatorModule", "load_mlp", "save_mlp"]

MLP_FORMAT = "net2net.MLPTranslator/1"  # the "format" metadata entry of files written by save_mlp
_TARGET = f"{__name__}.MLPTranslator"


def _optim_config(optim: Mapping[str, Any] | None) -> FlowOptimConfig:
    known = {f.name for f in fields(FlowOptimConfig)}
    unknown = set(optim or {}) - known
    if unknown:
        raise ValueError(f"model.params.optim: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
    cfg = FlowOptimConfig(**dict(optim or {}))
    if isinstance(cfg.betas, list):
        cfg.betas = tuple(cfg.betas)  # type: ignore[assignment]
    return cfg


class MLPTranslatorModule(L.LightningModule):
    """Train an :class:`MLPTranslator` on batches ``{"z_src": (B, ...), "z_tgt": (B, D)}`` by mean squared error.

    Logs ``train/mse`` (mean over samples and dimensions), ``train/loss`` (the same) and ``train/ref_mse``
    (the batch's per-dimension variance of ``z_tgt``: what predicting the batch mean would score), and the same
    on the validation set. The optimiser is the cINN's recipe (:class:`~net2net.training.optim.FlowOptimConfig`).

    Arguments:
        translator_config: ``target``/``params`` block of the translator (:class:`MLPTranslator`).
        optim: fields of :class:`~net2net.training.optim.FlowOptimConfig`.
        batch_size: the per-device batch size, used to scale the learning rate.
    """

    def __init__(
        self, translator_config: Mapping[str, Any], optim: Mapping[str, Any] | None = None, batch_size: int = 25
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        translator = instantiate_from_config(translator_config, key="model.params.translator_config")
        if not isinstance(translator, MLPTranslator):
            raise TypeError(
                f"model.params.translator_config: expected a block building {_TARGET}, got {type(translator).__name__}"
            )
        self.translator: MLPTranslator = translator
        self.optim_cfg = _optim_config(optim)
        self.batch_size = batch_size

    def forward(self, z_src: Tensor) -> Tensor:
        return self.translator(z_src)

    def _step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        z_src, z_tgt = batch["z_src"], batch["z_tgt"]
        check_flat(z_tgt, self.translator.dim, "z_tgt")
        pred = self.translator(z_src)  # (B, D)
        if pred.shape[0] != z_tgt.shape[0]:
            raise ValueError(f"batch sizes differ: z_src has {pred.shape[0]} rows, z_tgt has {z_tgt.shape[0]}")
        loss = F.mse_loss(pred, z_tgt)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage}: the MSE is not finite ({loss.item()}); lower the learning rate")
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/mse": loss,
                f"{stage}/ref_mse": z_tgt.detach().var(0, unbiased=False).mean(),
            },
            on_step=on_step,
            on_epoch=not on_step,
            prog_bar=on_step,
            batch_size=z_tgt.shape[0],
            sync_dist=not on_step,
        )
        return loss

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if not actnorm_ready(self.translator):
            return None  # the sanity check runs before the first training batch initialises a conv embedder's ActNorm
        return self._step(batch, "val")

    # -- image logs (ImageLogger) ----------------------------------------------------------------------
    image_grid_nrow = 2  # per condition: the decoded target code, then the decoded prediction

    @torch.no_grad()
    def log_images(
        self, batch: Mapping[str, Tensor], max_images: int = 8, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """One row per condition: the decoded target code ``z_tgt`` of the pair and the decoded prediction.

        Needs a data module with ``decode(z)`` (:class:`net2net.training.translation.TranslationDataModule`);
        returns ``{}`` otherwise. ``generator`` is unused (the translator is deterministic).
        """
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if not hasattr(dm, "decode"):
            return {}
        rows = max(1, max_images // self.image_grid_nrow)
        z_src, z_tgt = batch["z_src"][:rows], batch["z_tgt"][:rows]
        codes = torch.stack([z_tgt, self.translator(z_src)], dim=1)  # (R, 2, D)
        images = dm.decode(codes.flatten(0, 1))  # (R * 2, C, H, W)
        return {"translations": images.clamp(-1, 1)}

    def configure_optimizers(self) -> dict[str, Any]:
        devices = max(1, self.trainer.world_size) if self._trainer is not None else 1
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        effective_batch = self.batch_size * devices * accumulate
        opt, sched = make_optimizer(self.translator.parameters(), self.optim_cfg, effective_batch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str | None = None,
    ) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim_cfg.grad_clip
        if clip is not None:
            clip_grad_norm(self, optimizer, clip)  # also under bf16-mixed with the fused Adam


def save_mlp(
    model: MLPTranslator, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None
) -> Path:
    """Write the translator's weights and buffers to a safetensors file, atomically, with the ``target``/``params``
    block that builds it (:attr:`MLPTranslator.config`) in the metadata.

    Unlike :func:`~net2net.training.cinn.save_cinn` the configuration is taken from the model itself, so it
    cannot disagree with the weights.
    """
    if not isinstance(model, MLPTranslator):
        raise TypeError(f"save_mlp: expected an MLPTranslator, got {type(model).__name__}")
    meta = {**dict(metadata or {}), "format": MLP_FORMAT, "config": json.dumps(model.config)}
    return atomic_save_safetensors(model.state_dict(), path, metadata=meta)


def load_mlp(path: str | os.PathLike[str]) -> MLPTranslator:
    """Rebuild a translator written by :func:`save_mlp` (safetensors and JSON only, no unpickling), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MLP translator weights at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != MLP_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {MLP_FORMAT!r} (a file from save_mlp)")
    config = json.loads(meta["config"])
    if config.get("target") != _TARGET:
        raise ValueError(f"{path}: config target {config.get('target')!r}, expected {_TARGET!r}")
    model = MLPTranslator(**config.get("params", {}))  # built directly: no import of a target named in the file
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as err:  # missing or unexpected keys, or a size mismatch
        raise ValueError(f"{path}: the weights do not fit the translator of its config: {err}") from err
    return model.eval()
