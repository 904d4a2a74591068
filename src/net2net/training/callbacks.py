"""Lightning callbacks: PNG grids of inputs, reconstructions and prior samples during training; rows per second;
the training loop's step times (and the checkpoint of an interrupted run)."""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from ..images import make_grid, save_png

__all__ = ["ImageLogger", "RowsPerSecond", "StepTimer"]

log = logging.getLogger(__name__)


class ImageLogger(Callback):
    """Every ``every_n_steps`` training steps, write PNG grids of the module's ``log_images`` to
    ``<out_dir>/images/step_XXXXXX_<name>.png`` (rank zero only).

    The module must provide ``log_images(batch, max_images, generator) -> dict[str, Tensor]`` of image batches
    in [-1, 1] (for :class:`net2net.training.autoencoder_module.AutoencoderModule`: ``inputs``, ``reconstructions`` and
    ``samples`` from the prior). It is called in eval mode on the current training batch and put back in its
    previous mode afterwards. The prior codes come from a generator seeded with ``seed`` at every call, so
    the ``samples`` grids of different steps show the same codes.

    Where there are no images (a module without ``log_images``, or entries that are not ``(N, 1 or 3, H, W)``
    batches, e.g. a translation between embeddings), the logger warns once and switches itself off.

    Arguments:
        every_n_steps: interval in global steps (the PNGs are named by the step reached after the update).
        max_images: images per grid.
        out_dir: root folder; ``None`` uses the trainer's ``default_root_dir``.
        log_first_step: also log after the first step of a fresh run (a quick look at the initial state).
        seed: seed of the prior codes.
        nrow: images per grid row (default ``ceil(sqrt(max_images))``).
        scale: integer upscaling of each image in the grid.

    Example:
        >>> ImageLogger(every_n_steps=500, max_images=16)
        ImageLogger(every_n_steps=500, max_images=16)
    """

    def __init__(
        self,
        every_n_steps: int = 500,
        max_images: int = 8,
        out_dir: str | Path | None = None,
        log_first_step: bool = True,
        seed: int = 0,
        nrow: int | None = None,
        scale: int = 1,
    ) -> None:
        super().__init__()
        if every_n_steps < 1 or max_images < 1 or scale < 1 or (nrow is not None and nrow < 1):
            raise ValueError(
                f"ImageLogger: every_n_steps, max_images, nrow and scale must be positive, got every_n_steps="
                f"{every_n_steps}, max_images={max_images}, nrow={nrow}, scale={scale}"
            )
        self.every_n_steps = every_n_steps
        self.max_images = max_images
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.log_first_step = log_first_step
        self.seed = seed
        self.nrow = nrow if nrow is not None else math.ceil(math.sqrt(max_images))
        self.scale = scale
        self._last_step = -1
        self.enabled = True

    def __repr__(self) -> str:
        return f"ImageLogger(every_n_steps={self.every_n_steps}, max_images={self.max_images})"

    def image_dir(self, trainer: L.Trainer) -> Path:
        """``<out_dir>/images`` (``out_dir`` defaults to the trainer's ``default_root_dir``)."""
        root = self.out_dir if self.out_dir is not None else Path(trainer.default_root_dir)
        return root / "images"

    def _due(self, step: int) -> bool:
        return step != self._last_step and (step % self.every_n_steps == 0 or (self.log_first_step and step == 1))

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        step = trainer.global_step
        if not self.enabled or not trainer.is_global_zero or not self._due(step):
            return
        self.log_images(trainer, pl_module, batch, step)

    def log_images(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, step: int) -> list[Path]:
        """Write the grids of ``batch`` for ``step`` now; returns the written paths."""
        if not hasattr(pl_module, "log_images"):
            return self._switch_off(f"{type(pl_module).__name__} has no log_images(batch, max_images, generator)")
        was_training = pl_module.training
        pl_module.eval()
        try:
            with torch.no_grad():
                images: Mapping[str, torch.Tensor] = getattr(pl_module, "log_images")(  # noqa: B009 (typed Any)
                    batch, max_images=self.max_images, generator=torch.Generator().manual_seed(self.seed)
                )
        finally:
            pl_module.train(was_training)
        out = self.image_dir(trainer)
        paths = []
        shapes = {name: tuple(x.shape) for name, x in images.items() if x.dim() != 4 or x.shape[1] not in (1, 3)}
        if shapes:
            return self._switch_off(f"{type(pl_module).__name__}.log_images gave no image batches (N, 1 or 3, H, W): "
                                    f"{shapes}")  # fmt: skip
        for name, x in images.items():
            nrow = getattr(pl_module, "image_grid_nrow", self.nrow)  # a module may fix its grids' row length
            grid = make_grid(x[: max(self.max_images, nrow)], nrow=nrow, scale=self.scale)  # (N, C, H, W) -> (C, H', W')
            paths.append(save_png(grid, out / f"step_{step:06d}_{name}.png"))
        self._last_step = step
        return paths

    def _switch_off(self, why: str) -> list[Path]:
        warnings.warn(f"ImageLogger: switched off, no images to log: {why}", stacklevel=3)
        self.enabled = False
        return []


class RowsPerSecond(Callback):
    """Show training rows (pairs) per second in the progress bar (``rows_per_s``), over the last ``window`` steps.

    Arguments:
        window: optimiser steps averaged.
    """

    def __init__(self, window: int = 20) -> None:
        super().__init__()
        if window < 1:
            raise ValueError(f"RowsPerSecond: window must be positive, got {window}")
        self.window = window
        self._times: list[float] = []
        self._rows: list[int] = []

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        rows = int(next(iter(batch.values())).shape[0]) * trainer.world_size if isinstance(batch, Mapping) else 0
        self._times.append(time.perf_counter())
        self._rows.append(rows)
        del self._times[: -self.window - 1], self._rows[: -self.window - 1]
        if len(self._times) > 1:
            rate = sum(self._rows[1:]) / max(self._times[-1] - self._times[0], 1e-9)
            pl_module.log("rows_per_s", rate, prog_bar=True, on_step=True, on_epoch=False, rank_zero_only=True)


class StepTimer(Callback):
    """Steps and wall time of the training loop proper (without setup, checkpoint loading and the export): the
    ``summary.json`` of :func:`~net2net.training.run.train_from_config`. On Ctrl-C or SIGTERM of a single-process run
    it also writes ``last_ckpt``, which Lightning's exit would skip.

    Arguments:
        last_ckpt: where to save the interrupted run (``None``: nothing is saved).
    """

    def __init__(self, last_ckpt: Path | None = None) -> None:
        self.last_ckpt = last_ckpt
        self.start_step: int | None = None
        self.seconds = 0.0
        self._t0 = 0.0
        self.saved_steps: set[int] = set()  # global steps at which a checkpoint was written
        self.step_seconds: list[float] = []  # wall time between consecutive training batch ends
        self._t_last = 0.0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start_step = trainer.global_step
        self._t0 = self._t_last = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        now = time.perf_counter()
        self.step_seconds.append(now - self._t_last)
        self._t_last = now

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.seconds = time.perf_counter() - self._t0

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        self.saved_steps.add(int(checkpoint.get("global_step", -1)))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        # Lightning exits the process after a KeyboardInterrupt and stops with SIGTERMException on SIGTERM: save the
        # steps done since the last checkpoint (single process only: under DDP every rank would take part in a save)
        if not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if self.last_ckpt is None or trainer.world_size > 1:
            return
        if self.start_step is not None and trainer.global_step > self.start_step and trainer.global_step not in self.saved_steps:
            trainer.save_checkpoint(self.last_ckpt, weights_only=False)
            what = "SIGTERM" if isinstance(exception, SIGTERMException) else "interrupted"
            log.warning("%s at step %d: saved %s (the next call resumes from it)",
                        what, trainer.global_step, self.last_ckpt)  # fmt: skip
