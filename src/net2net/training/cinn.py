"""LightningModule that trains a cINN τ on pairs ``(z_src, z_tgt)`` by the NLL of Eq. 4."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ..config import instantiate_from_config
from ..flows import ConditionalINN, nll
from .optim import FlowOptimConfig, make_optimizer

__all__ = ["CINNModule"]


class CINNModule(L.LightningModule):
    """Train ``τ`` on batches ``{"z_src": (B, ...), "z_tgt": (B, D)}``.

    Logs ``train/nats_per_dim``, ``train/bits_per_dim``, the NLL of a reference ``randn`` batch
    (``train/ref_nats_per_dim``: what an untrained identity map would score), and the same on the
    validation set.

    Arguments:
        flow_config: ``target``/``params`` block of the cINN (usually :class:`net2net.flows.ConditionalINN`).
        optim: fields of :class:`net2net.training.optim.FlowOptimConfig` (learning rate recipe).
        batch_size: the per-device batch size, used to scale the learning rate.
    """

    def __init__(self, flow_config: Mapping[str, Any], optim: Mapping[str, Any] | None = None, batch_size: int = 25):
        super().__init__()
        self.save_hyperparameters()
        self.tau: ConditionalINN = instantiate_from_config(flow_config, key="model.params.flow_config")
        known = {f.name for f in fields(FlowOptimConfig)}
        unknown = set(optim or {}) - known
        if unknown:
            raise ValueError(f"model.params.optim: unknown keys {sorted(unknown)}; expected some of {sorted(known)}")
        self.optim_cfg = FlowOptimConfig(**dict(optim or {}))
        if isinstance(self.optim_cfg.betas, list):
            self.optim_cfg.betas = tuple(self.optim_cfg.betas)  # type: ignore[assignment]
        self.batch_size = batch_size

    def _step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        z_src, z_tgt = batch["z_src"], batch["z_tgt"]
        v, logdet = self.tau(z_tgt, z_src)
        stats = nll(v, logdet)
        loss = stats.per_sample.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage}: the NLL is not finite ({loss.item()}); lower the learning rate")
        ref = 0.5 * torch.randn_like(v).square().sum(1).mean() / v.shape[1] + 0.5 * math.log(2 * math.pi)
        on_step = stage == "train"
        self.log_dict(
            {
                f"{stage}/loss": loss,
                f"{stage}/nats_per_dim": stats.nats_per_dim.mean(),
                f"{stage}/bits_per_dim": stats.bits_per_dim.mean(),
                f"{stage}/ref_nats_per_dim": ref,
            },
            on_step=on_step,
            on_epoch=not on_step,
            prog_bar=stage == "train",
            batch_size=v.shape[0],
            sync_dist=not on_step,
        )
        return loss

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        devices = max(1, self.trainer.world_size) if self._trainer is not None else 1
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        opt, sched = make_optimizer(self.tau.parameters(), self.optim_cfg, self.batch_size * devices * accumulate)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim_cfg.grad_clip
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
