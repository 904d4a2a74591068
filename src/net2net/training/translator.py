"""The LightningModules that train what learns ``p(z_tgt | z_src)``, and a callback that keeps snapshots after a
number of steps and after a wall-clock budget.

:class:`TranslatorModule` trains any translator of :mod:`net2net.translators`, chosen by its kind:

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
(``configs/translation/text2image_translators.yaml``). The MLP baseline of the paper's ablation (Sec. E, Tab. S4)
is ``translator: mlp``.

:class:`CINNModule` is the paper's cINN τ with its own ``flow_config`` block (``configs/translation/text2image.yaml``),
its NLL per dimension in nats and bits, a reference line and image grids of translations. It shares the training
step and the optimiser recipe with :class:`TranslatorModule` and stays a class of its own because its runs export
``cinn.safetensors`` and its checkpoints keep τ as ``tau``: the main job's run and every experiment's run on disk
are of this kind.

The closed-form translator (``linear``) is fitted on the whole training set at the first step and the run stops
there; the others minimise their :meth:`~net2net.translators.Translator.loss` with the cINN's optimiser recipe
(:func:`~net2net.training.optim.configure_flow_optimizer`). :func:`~net2net.training.run.train_from_config`
exports ``translator.safetensors`` (see :func:`~net2net.translators.save_translator`) or, for :class:`CINNModule`,
``cinn.safetensors`` (:func:`~net2net.flows.save_cinn`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
from torch import Tensor, nn

from ..config import instantiate_from_config
from ..flows import ConditionalINN, nll
from ..flows.layers import actnorm_ready
from ..translators import TRANSLATORS, Translator, build_translator, save_translator
from .optim import configure_flow_optimizer, optim_config

__all__ = ["CINNModule", "TrainingBudget", "TranslatorModule"]

log = logging.getLogger(__name__)


class _PairModule(L.LightningModule):
    """What both modules share: the step on ``{"z_src": (B, ...), "z_tgt": (B, D)}`` batches, its logs, the
    validation that waits for ActNorm's initialisation, and the optimiser recipe. Subclasses provide :attr:`net`
    and :meth:`_losses`."""

    optim_cfg: Any
    batch_size: int

    @property
    def net(self) -> nn.Module:
        """The network being trained."""
        raise NotImplementedError

    def _setup_training(self, optim: Mapping[str, Any] | None, batch_size: int) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"model.params.batch_size: expected a positive int, got {batch_size!r}")
        self.optim_cfg = optim_config(optim)
        self.batch_size = batch_size

    def _losses(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """The per-sample loss ``(B,)`` and what to log besides ``loss`` (per-batch means)."""
        raise NotImplementedError

    def _step(self, batch: Mapping[str, Tensor], stage: str) -> Tensor:
        per_sample, extra = self._losses(batch)
        loss = per_sample.mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{stage}: the loss is not finite ({loss.item()}); lower the learning rate")
        on_step = stage == "train"
        self.log_dict({f"{stage}/loss": loss, **{f"{stage}/{k}": v for k, v in extra.items()}}, on_step=on_step,
                      on_epoch=not on_step, prog_bar=on_step, batch_size=per_sample.shape[0],
                      sync_dist=not on_step)  # fmt: skip
        return loss

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        return self._step(batch, "train")

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> Tensor | None:
        if not actnorm_ready(self.net):
            return None  # Lightning's sanity check runs before the first training batch initialises ActNorm
        return self._step(batch, "val")

    def configure_optimizers(self) -> OptimizerLRSchedulerConfig:
        return configure_flow_optimizer(self.net.parameters(), self.optim_cfg, self.batch_size, self._trainer)

    def _decoder(self) -> Any:
        """The data module's ``decode(z)`` for image grids, or ``None`` (no trainer, or data without images)."""
        dm = getattr(self._trainer, "datamodule", None) if self._trainer is not None else None
        return getattr(dm, "decode", None)


class TranslatorModule(_PairModule):
    """Train the translator ``translator`` (a kind of :data:`~net2net.translators.TRANSLATORS`) by its loss.

    Logs ``train/loss`` (the mean per-sample loss); for translators with a likelihood ``train/nats_per_dim``; for
    the deterministic MLP ``train/mse`` (the same as the loss) and ``train/ref_mse`` (the batch's per-dimension
    variance of ``z_tgt``: what predicting the batch mean would score); the same on the validation set.

    Arguments:
        translator: the kind: ``cinn``, ``mlp``, ``spline``, ``flow_matching`` or ``linear``.
        translator_params: its constructor arguments (those every kind shares, e.g. ``dim`` and ``cond_dim``).
        sizes: per kind, more constructor arguments (merged over ``translator_params``); only
            ``sizes[translator]`` is used.
        optim: fields of :class:`~net2net.training.optim.FlowOptimConfig`.
        batch_size: the per-device batch size, used to scale the learning rate.
    """

    def __init__(self, translator: str = "cinn", translator_params: Mapping[str, Any] | None = None, *,
                 sizes: Mapping[str, Mapping[str, Any]] | None = None, optim: Mapping[str, Any] | None = None,
                 batch_size: int = 128) -> None:  # fmt: skip
        # sizes/optim are keyword-only: both are mappings, and an optimiser block passed third by position was once
        # taken for `sizes` and silently ignored (the known-answer runs of `reproduce translators`)
        super().__init__()
        self.save_hyperparameters()
        self._setup_training(optim, batch_size)
        if sizes is not None:
            if not isinstance(sizes, Mapping):
                raise TypeError(f"TranslatorModule: sizes must map a translator kind to its arguments, received "
                                f"{type(sizes).__name__}")  # fmt: skip
            unknown = sorted(str(k) for k in sizes if k not in TRANSLATORS)
            if unknown:
                raise ValueError(f"TranslatorModule: sizes has keys {unknown} that are not translator kinds; "
                                 f"expected some of {sorted(TRANSLATORS)} (optimiser settings go in optim=)")
        params = {**dict(translator_params or {}), **dict((sizes or {}).get(translator) or {})}
        try:
            self.translator: Translator = build_translator(translator, **params)
        except TypeError as err:
            raise ValueError(f"model.params.translator_params: {err}") from err

    @classmethod
    def from_translator_config(cls, translator_config: Mapping[str, Any], optim: Mapping[str, Any] | None = None,
                               batch_size: int = 25) -> TranslatorModule:  # fmt: skip
        """The module of a ``target``/``params`` block of a translator class, e.g. the blocks of the former
        ``net2net.training.mlp.MLPTranslatorModule`` (``config.MOVED_TARGETS`` leads that name here)."""
        from ..config import get_obj_from_str

        cls_ = get_obj_from_str(str(translator_config.get("target", "")))
        if not (isinstance(cls_, type) and issubclass(cls_, Translator)):
            raise TypeError(f"model.params.translator_config: expected a block building a "
                            f"net2net.translators.Translator, got {translator_config.get('target')!r}")  # fmt: skip
        return cls(cls_.kind, dict(translator_config.get("params") or {}), optim=optim, batch_size=batch_size)

    @property
    def net(self) -> nn.Module:
        return self.translator

    def _losses(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        z_tgt = batch["z_tgt"]
        per_sample = self.translator.loss(z_tgt, batch["z_src"])  # (B,)
        extra: dict[str, Tensor] = {}
        if self.translator.loss_is_nll:
            extra["nats_per_dim"] = per_sample.mean() / self.translator.dim
        if self.translator.deterministic:  # a regression: its loss is the MSE
            extra["mse"] = per_sample.mean()
            extra["ref_mse"] = z_tgt.detach().var(0, unbiased=False).mean()
        return per_sample, extra

    @torch.no_grad()
    def _fit_closed_form(self) -> None:
        loader = self.trainer.train_dataloader
        assert loader is not None  # set by the fit loop before the first training step
        pairs = [(b["z_tgt"], b["z_src"]) for b in loader]
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

    # -- image logs (ImageLogger) ----------------------------------------------------------------------
    image_grid_nrow = 2  # per condition: the decoded target code, then the decoded prediction

    @torch.no_grad()
    def log_images(
        self, batch: Mapping[str, Tensor], max_images: int = 8, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """For the deterministic MLP, one row per condition: the decoded target code ``z_tgt`` of the pair and the
        decoded prediction. Needs a data module with ``decode(z)``
        (:class:`net2net.training.translation.TranslationDataModule`); ``{}`` otherwise and for other kinds."""
        decode = self._decoder()
        if decode is None or not self.translator.deterministic:
            return {}
        rows = max(1, max_images // self.image_grid_nrow)
        z_src, z_tgt = batch["z_src"][:rows], batch["z_tgt"][:rows]
        codes = torch.cat([z_tgt[:, None], self.translator.sample(z_src, 1)], dim=1)  # (R, 2, D)
        return {"translations": decode(codes.flatten(0, 1)).clamp(-1, 1)}  # (R * 2, C, H, W)


class CINNModule(_PairModule):
    """Train the cINN ``τ`` on batches ``{"z_src": (B, ...), "z_tgt": (B, D)}`` by the NLL of Eq. 4.

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
        self._setup_training(optim, batch_size)
        self.tau: ConditionalINN = instantiate_from_config(flow_config, key="model.params.flow_config")

    @property
    def net(self) -> nn.Module:
        return self.tau

    def _losses(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        v, logdet = self.tau(batch["z_tgt"], batch["z_src"])
        stats = nll(v, logdet)
        ref = 0.5 * torch.randn_like(v).square().sum(1).mean() / v.shape[1] + 0.5 * math.log(2 * math.pi)
        extra = {"nats_per_dim": stats.nats_per_dim.mean(), "bits_per_dim": stats.bits_per_dim.mean(),
                 "ref_nats_per_dim": ref}  # fmt: skip
        return stats.per_sample, extra

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
        decode = self._decoder()
        if decode is None:
            return {}
        rows = max(1, max_images // self.image_grid_nrow)
        z_src, z_tgt = batch["z_src"][:rows], batch["z_tgt"][:rows]
        v, _ = self.tau(z_tgt, z_src)
        cycle, _ = self.tau.inverse(v, z_src)
        samples = self.tau.sample(z_src, self.n_log_samples, generator=generator)  # (R, n, D)
        codes = torch.cat([z_tgt[:, None], cycle[:, None], samples], dim=1)  # (R, 2 + n, D)
        images = decode(codes.flatten(0, 1))  # (R * (2 + n), C, H, W)
        return {"translations": images.clamp(-1, 1)}


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
            assert isinstance(pl_module, TranslatorModule), f"TrainingBudget needs a TranslatorModule, got {pl_module}"
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
