"""One LightningModule that trains any translator of :mod:`net2net.translators` on ``{"z_src", "z_tgt"}`` batches,
and a callback that keeps snapshots after a number of steps and after a wall-clock budget.

.. code-block:: yaml

    model:
      target: net2net.training.translator.TranslatorModule
      params:
        translator: spline            # cinn | mlp | spline | flow_matching | linear
        translator_params: {dim: 64, cond_dim: 384}          # what every kind takes
        sizes:                                                # per kind; only the chosen one's entry is used
          cinn: {n_blocks: 12, hidden_dim: 256, embedding_dim: 64}
          spline: {transforms: 8, hidden_dim: 256, embedding_dim: 64}
        optim: {max_lr: 1.5e-3}
        batch_size: 128

so that ``model.params.translator=flow_matching`` on the command line switches the translator
(``configs/translation/text2image_translators.yaml``).

The closed-form translator (``linear``) is fitted on the whole training set at the first step and the run stops
there; the others minimise their :meth:`~net2net.translators.Translator.loss` with the cINN's optimiser recipe.
:func:`~net2net.training.run.train_from_config` exports ``translator.safetensors`` (see
:func:`~net2net.translators.save_translator`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ..flows.layers import actnorm_ready
from ..translators import Translator, build_translator, save_translator
from .mlp import _optim_config
from .optim import make_optimizer

__all__ = ["TrainingBudget", "TranslatorModule"]

log = logging.getLogger(__name__)


class TranslatorModule(L.LightningModule):
    """Train the translator ``translator`` (a kind of :data:`~net2net.translators.TRANSLATORS`) by its loss.

    Logs ``train/loss`` (the mean per-sample loss) and, for translators with a likelihood, ``train/nats_per_dim``;
    the same on the validation set.

    Arguments:
        translator: the kind: ``cinn``, ``mlp``, ``spline``, ``flow_matching`` or ``linear``.
        translator_params: its constructor arguments (those every kind shares, e.g. ``dim`` and ``cond_dim``).
        sizes: per kind, more constructor arguments (merged over ``translator_params``); only
            ``sizes[translator]`` is used.
        optim: fields of :class:`~net2net.training.optim.FlowOptimConfig`.
        batch_size: the per-device batch size, used to scale the learning rate.
    """

    def __init__(self, translator: str = "cinn", translator_params: Mapping[str, Any] | None = None,
                 sizes: Mapping[str, Mapping[str, Any]] | None = None, optim: Mapping[str, Any] | None = None,
                 batch_size: int = 128) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        params = {**dict(translator_params or {}), **dict((sizes or {}).get(translator) or {})}
        try:
            self.translator: Translator = build_translator(translator, **params)
        except TypeError as err:
            raise ValueError(f"model.params.translator_params: {err}") from err
        self.optim_cfg = _optim_config(optim)
        self.batch_size = batch_size

    def _step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        per_sample = self.translator.loss(batch["z_tgt"], batch["z_src"])  # (B,)
        loss = per_sample.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage}: the loss is not finite ({loss.item()}); lower the learning rate")
        logs = {f"{stage}/loss": loss}
        if self.translator.loss_is_nll:
            logs[f"{stage}/nats_per_dim"] = loss / self.translator.dim
        on_step = stage == "train"
        self.log_dict(logs, on_step=on_step, on_epoch=not on_step, prog_bar=on_step, batch_size=per_sample.shape[0],
                      sync_dist=not on_step)  # fmt: skip
        return loss

    @torch.no_grad()
    def _fit_closed_form(self) -> None:
        pairs = [(b["z_tgt"], b["z_src"]) for b in self.trainer.train_dataloader]
        z_tgt = torch.cat([p[0] for p in pairs]).to(self.device)
        z_src = torch.cat([p[1] for p in pairs]).to(self.device)
        self.translator.fit_closed_form(z_tgt, z_src)
        log.info("fitted the %s translator in closed form on %d pairs", self.translator.kind, len(z_tgt))

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if self.translator.closed_form:
            self._fit_closed_form()
            self.trainer.should_stop = True
            return None  # no gradient step: the fit is the training
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if not actnorm_ready(self.translator):
            return None  # the sanity check runs before the first training batch initialises ActNorm
        return self._step(batch, "val")

    def configure_optimizers(self) -> dict[str, Any]:
        devices = max(1, self.trainer.world_size) if self._trainer is not None else 1
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        effective_batch = self.batch_size * devices * accumulate
        opt, sched = make_optimizer(self.translator.parameters(), self.optim_cfg, effective_batch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None) -> None:
        clip = gradient_clip_val if gradient_clip_val is not None else self.optim_cfg.grad_clip
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")


class TrainingBudget(L.Callback):
    """Snapshots of a :class:`TranslatorModule`'s translator after ``steps`` optimiser steps
    (``translator-steps.safetensors``) and after ``seconds`` of training (``translator-time.safetensors``), in the
    run folder; stops the run once both are written. Compares translators at the same number of steps and at the
    same wall-clock budget in one run each.

    The clock counts the training loop only (from the first batch; not setup, checkpoints of other callbacks are
    included) and is kept in the checkpoint, so a resumed run continues it.

    Arguments:
        steps: optimiser steps of the first snapshot.
        seconds: training seconds of the second snapshot.
    """

    def __init__(self, steps: int, seconds: float) -> None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"TrainingBudget: steps must be a positive int, got {steps!r}")
        if not seconds > 0:
            raise ValueError(f"TrainingBudget: seconds must be positive, got {seconds!r}")
        self.steps, self.seconds = steps, float(seconds)
        self.elapsed = 0.0  # training seconds before this process (resumed runs)
        self.written: dict[str, dict[str, float]] = {}
        self._t0: float | None = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0 = time.perf_counter()

    def _seconds(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)

    def _save(self, name: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        seconds = self._seconds()
        self.written[name] = {"step": trainer.global_step, "seconds": round(seconds, 2)}
        if trainer.is_global_zero:
            save_translator(pl_module.translator, Path(trainer.default_root_dir) / f"translator-{name}.safetensors",
                            {"global_step": str(trainer.global_step), "train_seconds": f"{seconds:.2f}"})  # fmt: skip

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if "steps" not in self.written and trainer.global_step >= self.steps:
            self._save("steps", trainer, pl_module)
        if "time" not in self.written and self._seconds() >= self.seconds:
            self._save("time", trainer, pl_module)
        if len(self.written) == 2:
            trainer.should_stop = True

    def state_dict(self) -> dict[str, Any]:
        return {"elapsed": self._seconds(), "written": dict(self.written)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.elapsed = float(state_dict["elapsed"])
        self.written = dict(state_dict["written"])
