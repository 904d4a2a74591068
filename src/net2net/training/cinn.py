"""LightningModule that trains a cINN τ on pairs ``(z_src, z_tgt)`` by the NLL of Eq. 4, and the cINN's export."""

from __future__ import annotations

import inspect
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

from ..config import instantiate_from_config, nearest
from ..flows import ConditionalINN, nll
from ..flows.layers import actnorm_ready
from ..io import atomic_save_safetensors, load_safetensors, read_safetensors_metadata, read_safetensors_shapes
from .optim import FlowOptimConfig, make_optimizer

__all__ = ["CINN_FORMAT", "CINNModule", "cinn_params_from_metadata", "load_cinn", "save_cinn"]

CINN_FORMAT = "net2net.ConditionalINN/2"  # the "format" metadata entry of cinn.safetensors; "config": its arguments
_CINN_FORMAT_V1 = "net2net.ConditionalINN/1"  # older files: "flow_config", a target/params block (still read)
_CINN_TARGETS = ("net2net.flows.ConditionalINN", "net2net.flows.cinn.ConditionalINN")


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
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"model.params.batch_size: expected a positive int, got {batch_size!r}")
        self.tau: ConditionalINN = instantiate_from_config(flow_config, key="model.params.flow_config")
        known = {f.name for f in fields(FlowOptimConfig)}
        unknown = set(optim or {}) - known
        if unknown:
            hint = nearest(sorted(unknown)[0], known)
            raise ValueError(f"model.params.optim: unknown keys {sorted(unknown)}{hint}; "
                             f"expected some of {sorted(known)}")
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
        max_steps = self.trainer.max_steps if self._trainer is not None else None
        # the optimiser clips gradients to optim.grad_clip itself (make_optimizer); decay_steps may follow max_steps
        opt, sched = make_optimizer(
            self.tau.parameters(), self.optim_cfg, self.batch_size * devices * accumulate, max_steps=max_steps
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def save_cinn(tau: ConditionalINN, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> Path:
    """Write τ's weights and buffers (ActNorm state included) to a safetensors file, atomically, with the constructor
    arguments that rebuild it (:attr:`ConditionalINN.config`) in the metadata: numbers, never an import path."""
    if type(tau) is not ConditionalINN:  # a subclass would be rebuilt as the base class
        raise TypeError(f"save_cinn: expected a ConditionalINN, got {type(tau).__name__}")
    if isinstance(path, Mapping):
        raise TypeError("save_cinn(tau, path, metadata): the flow config is no longer passed, the model carries it "
                        "(tau.config)")  # fmt: skip
    meta = {**dict(metadata or {}), "format": CINN_FORMAT, "config": json.dumps(tau.config)}
    return atomic_save_safetensors(tau.state_dict(), path, metadata=meta)


def _json_number_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def cinn_params_from_metadata(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    """The constructor arguments of the cINN in a file's metadata, checked against :class:`ConditionalINN`'s
    signature: known names only, numbers (or lists of ints, or null) only. Files of format 1 name the class in a
    ``flow_config`` ``target``; only ConditionalINN itself is accepted, nothing is imported."""
    fmt = meta.get("format")
    try:
        if fmt == CINN_FORMAT:
            params = json.loads(meta["config"])
        elif fmt == _CINN_FORMAT_V1:
            block = json.loads(meta["flow_config"])
            if not isinstance(block, dict) or block.get("target") not in _CINN_TARGETS:
                target = block.get("target") if isinstance(block, dict) else block
                raise ValueError(f"{path}: flow_config names {target!r}; a cINN file may only describe "
                                 "net2net.flows.ConditionalINN (nothing else is imported from a weights file)")
            params = block.get("params") or {}
        else:
            raise ValueError(f"{path}: format {fmt!r}, expected {CINN_FORMAT!r} (a file from save_cinn)")
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the {fmt!r} metadata is incomplete or not JSON ({e})") from e
    if not isinstance(params, dict):
        raise ValueError(f"{path}: the cINN config must be a JSON object, got {type(params).__name__}")
    known = inspect.signature(ConditionalINN).parameters
    for name, value in params.items():
        if name not in known:
            raise ValueError(f"{path}: unknown cINN field {name!r}; known: {', '.join(known)}")
        scalar = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                   and math.isfinite(value))  # fmt: skip
        if not (scalar or _json_number_list(value)):
            raise ValueError(f"{path}: cINN field {name!r} must be a finite number, a list of ints or null, "
                             f"got {value!r}")
    return params


def load_cinn(path: str | os.PathLike[str]) -> ConditionalINN:
    """Rebuild a cINN written by :func:`save_cinn`, in eval mode.

    Safe on untrusted files: safetensors holds only tensors and strings, the metadata is read as JSON and checked
    against a schema of known fields (:func:`cinn_params_from_metadata`), and the network is built directly
    (no import path from the file is ever imported or called).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated or corrupt, not a cINN file, or its config or weights do not fit.
    """
    path = Path(path)
    fix = "retrain the run or copy the file again"
    meta = read_safetensors_metadata(path, "the cINN weights", fix)
    params = cinn_params_from_metadata(meta, path)
    shapes = read_safetensors_shapes(path, "the cINN weights", fix)
    # bound the sizes by what the file holds before building anything (a header could ask for a 10^12-wide net)
    largest = max((math.prod(s) for s in shapes.values()), default=0)
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        limit = len(shapes) if name.endswith(("blocks", "depth")) else largest
        if name not in ("alpha", "seed") and any(isinstance(v, int) and not 0 <= v <= max(limit, 1) for v in values):
            raise ValueError(f"{path}: cINN field {name}={value!r} does not fit the {len(shapes)} tensors in the file")
    try:
        with torch.device("meta"):  # shapes only, no memory
            expected = {k: tuple(v.shape) for k, v in ConditionalINN(**params).state_dict().items()}
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: its cINN config does not build a network: {e}") from e
    if expected != shapes:
        diff = sorted(set(expected) ^ set(shapes)) or [k for k in expected if expected[k] != shapes[k]]
        raise ValueError(f"{path}: the weights do not fit the cINN of its config (first differences: {diff[:3]})")
    tau = ConditionalINN(**params)
    tau.load_state_dict(load_safetensors(path, "the cINN weights", fix), strict=True)
    return tau.eval()
