"""Models that a metric or an experiment trains on tensors it holds, through the one training entry point.

:func:`fit_unconditional_flow` (the density of ``z_tgt`` alone, for the information estimate of
:mod:`net2net.metrics.information`) and :func:`fit_classifier` (the small judges of an experiment, e.g. the domain
and digit classifiers of ``net2net reproduce unpaired``) write their tensors to ``data.safetensors`` in a run folder
and train with :func:`~net2net.training.run.train_from_config`: the same checkpoints, resuming, compute report and
progress lines as every other run. Without ``log_dir`` the run folder is temporary and removed afterwards.

Both keep the numbers of the plain loops they replace: the same initialisation (the model is the first thing built
after seeding), the same batches (drawn with replacement by :class:`~net2net.training.datamodule.TensorDataModule`'s
own generator) and the same optimiser steps.
"""

from __future__ import annotations

import contextlib
import math
import random
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from ..config import instantiate_from_config
from ..flows import UnconditionalFlow, nll
from ..flows.checks import check_flat, check_ints
from ..flows.layers import actnorm_ready
from ..io import atomic_save_safetensors
from .optim import configure_flow_optimizer, optim_config

__all__ = ["ClassifierModule", "UnconditionalFlowModule", "fit_classifier", "fit_unconditional_flow", "load_module"]


class UnconditionalFlowModule(L.LightningModule):
    """Train an :class:`~net2net.flows.UnconditionalFlow` on batches ``{"z": (B, dim)}`` by its NLL.

    Logs ``train/loss`` (nats per sample) and ``train/nats_per_dim``.

    Arguments:
        flow: the flow's constructor arguments (``dim``, ``n_blocks``, ``hidden_dim``, ``hidden_depth``, ``alpha``,
            ``seed``).
        optim: fields of :class:`~net2net.training.optim.FlowOptimConfig`.
        batch_size: the per-device batch size, used to scale the learning rate.
    """

    def __init__(self, flow: Mapping[str, Any], optim: Mapping[str, Any] | None = None, batch_size: int = 256) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim_cfg = optim_config(optim)
        self.batch_size = batch_size
        self.flow = UnconditionalFlow(**dict(flow))

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        v, logdet = self.flow(batch["z"])  # the first call initialises ActNorm from this batch
        loss = nll(v, logdet).per_sample.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"unconditional flow: the NLL is not finite at step {self.global_step}; lower lr")
        self.log_dict({"train/loss": loss, "train/nats_per_dim": loss / self.flow.dim}, on_step=True, prog_bar=True,
                      batch_size=v.shape[0])  # fmt: skip
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        return configure_flow_optimizer(self.flow.parameters(), self.optim_cfg, self.batch_size, self._trainer)


class ClassifierModule(L.LightningModule):
    """Train a classifier network on batches ``{"image": (B, ...), "label": (B,)}`` by cross-entropy, with Adam and a
    cosine decay of the learning rate to 0 over ``steps``.

    Arguments:
        network: ``target``/``params`` block of the network (images to logits).
        lr: Adam's learning rate at step 0.
        steps: length of the cosine decay (the run's ``max_steps``).
    """

    def __init__(self, network: Mapping[str, Any], lr: float = 2e-3, steps: int = 1000) -> None:
        super().__init__()
        self.save_hyperparameters()
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ValueError(f"model.params.lr: expected a positive number, got {lr!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"model.params.steps: expected a positive int, got {steps!r}")
        self.network: nn.Module = instantiate_from_config(network, key="model.params.network")
        self.lr, self.steps = float(lr), steps

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor:
        loss = nn.functional.cross_entropy(self.network(batch["image"]), batch["label"])
        self.log("train/loss", loss, on_step=True, prog_bar=True, batch_size=len(batch["label"]))
        return loss

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        opt = torch.optim.Adam(self.network.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, self.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def load_module(run_dir: str | Path) -> L.LightningModule:
    """The module of a finished run (``config.yaml``'s ``model`` block) with the weights of its last checkpoint."""
    from .run import load_run_module

    return load_run_module(run_dir)


@contextlib.contextmanager
def _run_folder(log_dir: str | Path | None) -> Iterator[Path]:
    if log_dir is not None:
        yield Path(log_dir)
        return
    tmp = Path(tempfile.mkdtemp(prefix="net2net-run-"))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _caller_rng() -> Iterator[None]:
    """Seeding a run (``train_from_config``) leaves the caller's torch, NumPy and Python generators as they were."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def _train(tensors: Mapping[str, Tensor], model: Mapping[str, Any], data: Mapping[str, Any], steps: int, seed: int,
           device: torch.device, log_dir: str | Path | None, precision: str = "32-true") -> L.LightningModule:  # fmt: skip
    """Train ``model`` on ``tensors`` for ``steps`` steps through :func:`train_from_config`; the trained module."""
    from .run import train_from_config

    with _run_folder(log_dir) as run, _caller_rng(), torch.enable_grad():
        run.mkdir(parents=True, exist_ok=True)
        atomic_save_safetensors({k: t.detach().cpu().contiguous() for k, t in tensors.items()}, run / "data.safetensors")
        config = {
            "model": dict(model),
            "data": {"target": "net2net.training.datamodule.TensorDataModule",
                     "params": {"path": str(run / "data.safetensors"), "seed": seed, **dict(data)}},
            "seed": seed,
            "lightning": {
                "trainer": {"max_steps": steps, "accelerator": "gpu" if device.type == "cuda" else "cpu",
                            "devices": 1, "precision": precision, "log_every_n_steps": 50,
                            "enable_progress_bar": False, "enable_model_summary": False},
                "callbacks": {"image_logger": None, "checkpoint": {"params": {"every_n_train_steps": min(1000, steps)}}},
            },
        }  # fmt: skip
        train_from_config(config, log_dir=run)
        module = load_module(run)
    return module.to(device)


def fit_unconditional_flow(
    z_tgt: Tensor,
    n_blocks: int = 4,
    hidden_dim: int = 128,
    hidden_depth: int = 1,
    steps: int = 600,
    batch_size: int = 256,
    lr: float = 2e-3,
    warmup_steps: int = 50,
    final_lr_fraction: float = 0.1,
    alpha: float = 1.0,
    grad_clip: float = 100.0,
    seed: int = 0,
    log_dir: str | Path | None = None,
) -> UnconditionalFlow:
    """Fit an :class:`~net2net.flows.UnconditionalFlow` to the density of ``z_tgt`` alone (for ``H(z_tgt)``).

    The cINN recipe of :class:`~net2net.training.optim.FlowOptimConfig` (Adam with betas (0.5, 0.9), AMSGrad,
    gradient norm clipped at ``grad_clip``) with a linear warm-up to ``lr``, then a cosine decay to
    ``lr * final_lr_fraction`` at the last step; mini-batches drawn with replacement from ``z_tgt``. The defaults are
    for quick estimates (dim 64, 10k samples: about 30 s on one heavily shared CPU core); an under-fitted flow
    overstates ``H(z_tgt)`` and so the information, so give it a capacity and a budget comparable to the cINN's for
    final numbers. Trained on the device of ``z_tgt`` (float32 or float64) and returned there in eval mode; the
    caller's random generators are left as they were.

    Arguments:
        z_tgt: training codes, ``(N, dim)`` with ``N >= 2`` and ``dim >= 2``, floating point.
        n_blocks, hidden_dim, hidden_depth, alpha: the flow's size (see :class:`~net2net.flows.UnconditionalFlow`).
        steps: optimiser steps.
        batch_size: samples per step (at most ``N``).
        lr: peak learning rate.
        warmup_steps: steps of the linear warm-up.
        final_lr_fraction: the learning rate at the last step, as a fraction of ``lr``.
        grad_clip: maximum global gradient norm.
        seed: seed of the weights, the permutations and the mini-batches.
        log_dir: the run folder (kept; a second call resumes or reuses it); ``None``: a temporary one.

    Example:
        >>> z = torch.randn(500, 3) * torch.tensor([1.0, 2.0, 0.5])
        >>> flow = fit_unconditional_flow(z, n_blocks=1, hidden_dim=16, steps=20, batch_size=64)  # doctest: +SKIP
    """
    if not isinstance(z_tgt, Tensor):
        raise TypeError(f"z_tgt: expected a torch.Tensor of shape (N, dim), got {type(z_tgt).__name__}")
    if z_tgt.dim() != 2 or z_tgt.shape[1] < 2:
        raise ValueError(f"z_tgt: expected flat codes (N, dim) with dim >= 2, got shape {tuple(z_tgt.shape)}")
    check_flat(z_tgt, z_tgt.shape[1], "z_tgt")  # floating point, finite, non-empty
    if z_tgt.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"z_tgt: expected float32 or float64 codes, got {z_tgt.dtype}")
    n, dim = z_tgt.shape
    if n < 2:
        raise ValueError(f"z_tgt: need at least 2 samples to fit a flow (ActNorm initialisation), got {n}")
    sizes = {"steps": steps, "batch_size": batch_size, "n_blocks": n_blocks, "hidden_dim": hidden_dim}
    check_ints(sizes, "fit_unconditional_flow")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"fit_unconditional_flow: lr must be positive and finite, got {lr!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 0:
        raise ValueError(f"fit_unconditional_flow: warmup_steps must be a non-negative int, got {warmup_steps!r}")
    if not grad_clip > 0:
        raise ValueError(f"fit_unconditional_flow: grad_clip must be positive, got {grad_clip!r}")
    if not 0.0 <= final_lr_fraction <= 1.0:
        raise ValueError(f"fit_unconditional_flow: final_lr_fraction must be in [0, 1], got {final_lr_fraction!r}")
    batch_size = min(batch_size, n)
    # the rate is lr from the first step after the warm-up (base_lr * batch >= max_lr = lr), the cosine ends at the
    # last step (steps - 1); the plain Adam kernel (not fused) of the loop this replaced, so that estimates match
    optim = {"base_lr": lr, "max_lr": lr, "warmup_steps": warmup_steps, "final_lr_fraction": final_lr_fraction,
             "decay_steps": steps - 1 if steps - 1 > warmup_steps else None, "grad_clip": grad_clip, "fused": False}
    flow = {"dim": dim, "n_blocks": n_blocks, "hidden_dim": hidden_dim, "hidden_depth": hidden_depth, "alpha": alpha,
            "seed": seed}  # fmt: skip
    model = {"target": "net2net.training.in_memory.UnconditionalFlowModule",
             "params": {"flow": flow, "optim": optim, "batch_size": batch_size}}  # fmt: skip
    precision = "64-true" if z_tgt.dtype == torch.float64 else "32-true"
    with warnings.catch_warnings():  # the cosine ends one step before max_steps on purpose (the last step's rate)
        warnings.filterwarnings("ignore", message=r"decay_steps=\d+ ends before max_steps")
        module = _train({"z": z_tgt}, model, {"batch_size": batch_size, "batches_per_epoch": steps}, steps, seed,
                        z_tgt.device, log_dir, precision)  # fmt: skip
    flow_net = module.flow
    assert isinstance(flow_net, UnconditionalFlow)
    if not actnorm_ready(flow_net):
        raise RuntimeError("fit_unconditional_flow: the run ended before its first step (ActNorm not initialised)")
    return flow_net.to(z_tgt.dtype).eval()


def fit_classifier(images: Tensor, labels: Tensor, network: Mapping[str, Any], steps: int, seed: int = 0,
                   batch_size: int = 128, lr: float = 2e-3, log_dir: str | Path | None = None) -> nn.Module:  # fmt: skip
    """A classifier network (``network``: a ``target``/``params`` block, images to logits) trained on ``images``
    ``(N, ...)`` and integer ``labels`` ``(N,)``: batches drawn with replacement so that every class comes up equally
    often, Adam with a cosine decay (:class:`ClassifierModule`). Returned in eval mode without gradients.

    Arguments:
        images: training inputs, ``(N, ...)``, floating point.
        labels: their classes, ``(N,)``, integers.
        network: the network's block (its weights are seeded by ``seed``).
        steps: optimiser steps.
        seed: seed of the weights and of the batches.
        batch_size: images per step.
        lr: Adam's initial learning rate.
        log_dir: the run folder (kept); ``None``: a temporary one.
    """
    if not isinstance(images, Tensor) or not images.is_floating_point():
        raise TypeError(f"images: expected a floating-point torch.Tensor (N, ...), got {type(images).__name__}")
    if not isinstance(labels, Tensor) or labels.is_floating_point() or labels.shape != images.shape[:1]:
        raise ValueError(f"labels: expected integer labels of shape ({len(images)},), got "
                         f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}")
    model = {"target": "net2net.training.in_memory.ClassifierModule",
             "params": {"network": dict(network), "lr": lr, "steps": steps}}  # fmt: skip
    data = {"batch_size": batch_size, "balance_by": "label", "batches_per_epoch": steps}
    module = _train({"image": images, "label": labels.long()}, model, data, steps, seed, images.device, log_dir)
    net = module.network
    assert isinstance(net, nn.Module)
    return net.eval().requires_grad_(False)
