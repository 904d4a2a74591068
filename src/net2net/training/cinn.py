"""LightningModule that trains a cINN τ on pairs ``(z_src, z_tgt)`` by the NLL of Eq. 4, and the cINN's export."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from safetensors import safe_open
from safetensors.torch import load_file

from ..config import instantiate_from_config
from ..flows import ConditionalINN, nll
from ..flows.layers import actnorm_ready
from ..images import atomic_save_safetensors
from .optim import FlowOptimConfig, make_optimizer
from .precision import clip_grad_norm

__all__ = ["CINN_FORMAT", "CINNModule", "load_cinn", "save_cinn"]

CINN_FORMAT = "net2net.ConditionalINN/1"  # the "format" metadata entry of cinn.safetensors


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

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if not actnorm_ready(self.tau):
            return None  # Lightning's sanity check runs before the first training batch initialises ActNorm
        return self._step(batch, "val")

    # -- image logs (ImageLogger) ----------------------------------------------------------------------
    n_log_samples = 6  # translations per condition in the image logs

    @property
    def image_grid_nrow(self) -> int:
        """Images per row of the ``translations`` grid: target, τ(τ⁻¹(z)), then the samples."""
        return 2 + self.n_log_samples

    @torch.no_grad()
    def log_images(
        self, batch: Mapping[str, Tensor], max_images: int = 8, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """One row per condition: the decoded target code z_tgt of the pair, the decoded τ(τ⁻¹(z_tgt)) (must look
        the same), then ``n_log_samples`` translations τ(v | z_src), v ~ N(0, I).

        Needs a data module with ``decode(z)`` (:class:`net2net.training.translation.TranslationDataModule`);
        returns ``{}`` otherwise.
        """
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        if not hasattr(dm, "decode"):
            return {}
        rows = max(1, max_images // self.image_grid_nrow)
        z_src, z_tgt = batch["z_src"][:rows], batch["z_tgt"][:rows]
        v, _ = self.tau(z_tgt, z_src)
        cycle, _ = self.tau.inverse(v, z_src)
        samples = self.tau.sample(z_src, self.n_log_samples, generator=generator)  # (R, n, D)
        codes = torch.cat([z_tgt[:, None], cycle[:, None], samples], dim=1)  # (R, 2 + n, D)
        images = dm.decode(codes.flatten(0, 1))  # (R * (2 + n), C, H, W)
        return {"translations": images.clamp(-1, 1)}

    def configure_optimizers(self) -> dict[str, Any]:
        devices = max(1, self.trainer.world_size) if self._trainer is not None else 1
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        opt, sched = make_optimizer(self.tau.parameters(), self.optim_cfg, self.batch_size * devices * accumulate)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim_cfg.grad_clip
        if clip is not None:
            clip_grad_norm(self, optimizer, clip)  # also under bf16-mixed with the fused Adam


def save_cinn(tau: ConditionalINN, flow_config: Mapping[str, Any], path: str | os.PathLike[str],
              metadata: Mapping[str, str] | None = None) -> Path:  # fmt: skip
    """Write τ's weights and buffers (ActNorm state included) to a safetensors file, atomically, with the
    ``target``/``params`` block that builds it in the metadata."""
    meta = {"format": CINN_FORMAT, "flow_config": json.dumps(_plain(flow_config)), **dict(metadata or {})}
    return atomic_save_safetensors(tau.state_dict(), path, metadata=meta)


def _plain(cfg: Any) -> Any:
    return json.loads(json.dumps(cfg, default=lambda o: dict(o) if isinstance(o, Mapping) else list(o)))


def load_cinn(path: str | os.PathLike[str]) -> ConditionalINN:
    """Rebuild a cINN written by :func:`save_cinn` (no unpickling: safetensors and JSON only), in eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no cINN weights at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != CINN_FORMAT:
        raise ValueError(f"{path}: format {meta.get('format')!r}, expected {CINN_FORMAT!r} (a file from save_cinn)")
    flow_config = json.loads(meta["flow_config"])
    tau = instantiate_from_config(flow_config, key=f"{path}:flow_config")
    state = load_file(str(path))
    try:
        missing, unexpected = tau.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong size (strict=False only tolerates missing/extra keys)
        raise ValueError(f"{path}: the weights do not fit the flow of its flow_config: {e}") from e
    if missing or unexpected:
        raise ValueError(
            f"{path}: the weights do not fit the flow of its flow_config: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return tau.eval()
