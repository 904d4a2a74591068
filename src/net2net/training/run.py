"""``train_from_config``: one training run from CompVis-style YAML configs, resumable, with a weights export.

A config has three blocks:

.. code-block:: yaml

    model:      {target: net2net.training.autoencoder.AutoencoderModule, params: {...}}
    data:       {target: net2net.training.datamodule.DataModule, params: {...}}
    lightning:
      trainer:  {max_steps: 5000, val_check_interval: 500, ...}   # keyword arguments of lightning.Trainer
      callbacks:                                                  # name -> target/params block, merged
        image_logger: {params: {every_n_steps: 500}}              # into the defaults below; null removes one
        checkpoint: {params: {every_n_train_steps: 500}}
    seed: 0

A run writes into its log folder (default ``runs/<stem of the first config>``)::

    config.yaml                    the merged config (files + overrides) of the latest call
    checkpoints/last.ckpt          Lightning checkpoint (model, optimisers, loops, callbacks), written atomically
    checkpoints/step=NNNNNN.ckpt   the latest periodic checkpoint (``save_top_k`` of them)
    images/step_NNNNNN_*.png       inputs, reconstructions and prior samples (ImageLogger)
    logs/version_N/metrics.csv     scalars of the N-th call (CSVLogger)
    autoencoder.safetensors        encoder + decoder weights with the architecture as JSON metadata
    cinn.safetensors               (cINN runs) τ's weights and ActNorm state, its flow config as JSON metadata
    mlp.safetensors                (MLP translator baseline runs) its weights and config
    translator.safetensors         (TranslatorModule runs) the translator's weights, kind and parameters
    summary.json                   steps, wall time and seconds per step of the latest call
    compute.json                   time, energy, CO2 and cost of the calls since step 0 (see training/compute.py)

Resuming: ``last.ckpt`` is written every ``every_n_train_steps`` and once more at the end of every call, so it holds
the final step; after Ctrl-C (on which Lightning exits the process) a single-process run writes it before exiting. When it exists (and ``resume`` is
true), the run continues from it: weights, both optimiser states, ``global_step`` and the callbacks' states are
restored, so ``max_steps`` is the *total* number of steps; a call that already reached it trains nothing and only
re-exports the weights. The data order is not restored (the interrupted epoch starts over with a new shuffle).
The checkpoint is read with ``weights_only=True`` (passed to ``Trainer.fit``; it is also torch >= 2.6's default,
which Lightning 2.6 keeps): this works because the module's hyper-parameters are plain dicts, lists and numbers
(``instantiate_from_config`` converts OmegaConf containers) and nothing else in the checkpoint is a custom object.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import instantiate_from_config, load_config
from ..images import atomic_path

__all__ = ["ConfigError", "train_from_config", "default_log_dir", "DEFAULT_CALLBACKS"]

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)

# Callbacks every run gets; a config's lightning.callbacks block is merged into these (CompVis main.py style).
DEFAULT_CALLBACKS: dict[str, dict[str, Any]] = {
    "image_logger": {
        "target": "net2net.training.callbacks.ImageLogger",
        "params": {"every_n_steps": 500, "max_images": 16},
    },
    "checkpoint": {
        "target": "lightning.pytorch.callbacks.ModelCheckpoint",
        "params": {"every_n_train_steps": 500, "save_top_k": 1, "filename": "{step:06d}"},
    },
    "compute": {  # time, energy, CO2 and cost of the training loop (codecarbon, offline) -> compute.json
        "target": "net2net.training.compute.ComputeTracker",
        "params": {"country_iso_code": "DEU", "price_per_kwh": 0.30, "currency": "EUR", "fallback_power_w": 100.0},
    },
}
# Trainer arguments that train_from_config owns: the log folder, logger and checkpointing make resuming work.
_RESERVED_TRAINER_KEYS = ("default_root_dir", "logger", "callbacks", "enable_checkpointing")


class ConfigError(ValueError):
    """A configuration cannot be loaded or instantiated; the message names the config key."""


def default_log_dir(config_paths: PathLike | Sequence[PathLike]) -> Path:
    """``runs/<stem of the first config file>``."""
    first = config_paths if isinstance(config_paths, (str, os.PathLike)) else next(iter(config_paths))
    return Path("runs") / Path(first).stem


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _instantiate(block: Any, key: str) -> Any:
    """instantiate_from_config with every construction error turned into a ConfigError naming ``key``."""
    try:
        return instantiate_from_config(block, key=key)
    except ConfigError:
        raise
    except (ValueError, TypeError, FileNotFoundError, ImportError, KeyError, OmegaConfBaseException) as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(key) else f"{key}: {msg}") from e


def _trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    import inspect

    lightning_cfg = cfg.get("lightning") or {}
    try:
        trainer_cfg = _plain(lightning_cfg.get("trainer")) or {}
    except OmegaConfBaseException as e:
        raise ConfigError(f"lightning.trainer: cannot resolve the values: {e}") from e
    if not isinstance(trainer_cfg, Mapping):
        raise ConfigError(f"lightning.trainer: expected a mapping of Trainer arguments, got {type(trainer_cfg).__name__}")
    accepted = set(inspect.signature(L.Trainer.__init__).parameters) - {"self"}
    unknown = sorted(k for k in trainer_cfg if k not in accepted)
    if unknown:
        raise ConfigError(
            f"lightning.trainer: unknown Trainer argument(s) {unknown}; see lightning.Trainer for the accepted ones"
        )
    reserved = sorted(k for k in trainer_cfg if k in _RESERVED_TRAINER_KEYS)
    if reserved:
        raise ConfigError(
            f"lightning.trainer: {reserved} are set by train_from_config (log folder, CSV logger, checkpoints); "
            "configure callbacks under lightning.callbacks and the folder with log_dir / --log-dir"
        )
    kwargs: dict[str, Any] = {"max_steps": 1000, "accelerator": "auto", "devices": 1}
    kwargs.update(trainer_cfg)
    return kwargs


def _callbacks(cfg: DictConfig, log_dir: Path) -> list[L.Callback]:
    lightning_cfg = cfg.get("lightning") or {}
    user = lightning_cfg.get("callbacks") or {}
    try:
        merged = OmegaConf.merge(OmegaConf.create(DEFAULT_CALLBACKS), user)
    except OmegaConfBaseException as e:
        raise ConfigError(f"lightning.callbacks: cannot merge with the default callbacks: {e}") from e
    callbacks: list[L.Callback] = []
    for name, block in merged.items():
        key = f"lightning.callbacks.{name}"
        if block is None:
            if name == "checkpoint":
                raise ConfigError(f"{key}: the checkpoint callback cannot be removed (resuming needs last.ckpt)")
            continue
        block = _plain(block)
        if name == "checkpoint":  # the folder and last.ckpt are what resuming relies on
            params = dict(block.get("params") or {})
            for fixed in ("dirpath", "save_last", "enable_version_counter"):
                if fixed in params:
                    raise ConfigError(f"{key}.params.{fixed}: set by train_from_config, remove it from the config")
            params.update(dirpath=str(log_dir / "checkpoints"), save_last=True, enable_version_counter=False)
            block["params"] = params
        if name == "image_logger":
            params = dict(block.get("params") or {})
            params.setdefault("out_dir", str(log_dir))
            block["params"] = params
        callbacks.append(_instantiate(block, key))
    return callbacks


class _StepTimer(L.Callback):
    """Steps and wall time of the training loop proper (without setup, checkpoint loading and the export); on
    Ctrl-C of a single-process run it also writes ``last_ckpt``, which Lightning's exit would otherwise skip."""

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
        # Lightning exits the process after a KeyboardInterrupt: save the steps done since the last checkpoint
        # (single process only: under DDP every rank would have to take part in the save)
        if not isinstance(exception, KeyboardInterrupt) or self.last_ckpt is None or trainer.world_size > 1:
            return
        if self.start_step is not None and trainer.global_step > self.start_step and trainer.global_step not in self.saved_steps:
            trainer.save_checkpoint(self.last_ckpt, weights_only=False)
            log.warning("interrupted at step %d: saved %s (the next call resumes from it)", trainer.global_step, self.last_ckpt)


def _save_config(cfg: DictConfig, path: Path) -> None:
    with atomic_path(path) as tmp:
        OmegaConf.save(cfg, tmp, resolve=False)


def _export(model: L.LightningModule, log_dir: Path, global_step: int) -> Path | None:
    """Write ``autoencoder.safetensors`` for modules with an encoder and a decoder, ``cinn.safetensors`` for modules
    with a cINN ``tau``, ``mlp.safetensors`` for the MLP translator baseline (others: nothing)."""
    from .mlp import MLPTranslatorModule
    from .translator import TranslatorModule

    if isinstance(model, TranslatorModule):
        from ..translators import save_translator

        return save_translator(model.translator, log_dir / "translator.safetensors", {"global_step": str(global_step)})
    if isinstance(model, MLPTranslatorModule):
        from .mlp import save_mlp

        return save_mlp(model.translator, log_dir / "mlp.safetensors", {"global_step": str(global_step)})
    if hasattr(model, "tau") and "flow_config" in getattr(model, "hparams", {}):
        from .cinn import save_cinn

        return save_cinn(model.tau, model.hparams["flow_config"], log_dir / "cinn.safetensors",
                         {"global_step": str(global_step)})  # fmt: skip
    if not (hasattr(model, "encoder") and hasattr(model, "decoder")):
        return None
    from ..experts.target import AutoencoderTarget

    target = AutoencoderTarget.from_module(model)
    return target.save_safetensors(log_dir / "autoencoder.safetensors", {"global_step": str(global_step)})


def train_from_config(
    config_paths: PathLike | Sequence[PathLike],
    overrides: Sequence[str] = (),
    log_dir: PathLike | None = None,
    resume: bool = True,
) -> Path:
    """Train the ``model`` of a config on its ``data`` with Lightning; returns the log folder.

    Arguments:
        config_paths: one YAML file or several, merged in order (later files win).
        overrides: dotlist overrides ``key.path=value``, applied after the files.
        log_dir: output folder (default ``runs/<stem of the first config>``).
        resume: continue from ``<log_dir>/checkpoints/last.ckpt`` if it exists; ``False`` starts from step 0
            (the existing ``last.ckpt`` is overwritten by the new run).

    Returns:
        The log folder (see the module docstring for its contents).

    Raises:
        ConfigError: (a ValueError) if a config file cannot be read, a block cannot be instantiated, or a
            Trainer/callback argument is invalid; the message names the config key.

    Example:
        >>> train_from_config("configs/autoencoder/fashion_mnist.yaml", ["lightning.trainer.max_steps=10"],
        ...                   log_dir="runs/try")  # doctest: +SKIP
        PosixPath('runs/try')
    """
    try:
        cfg = load_config(config_paths, overrides)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from e
    for required in ("model", "data"):
        if cfg.get(required) is None:
            raise ConfigError(f"{required}: missing; a training config needs 'model' and 'data' target/params blocks")
    log_dir = Path(log_dir) if log_dir is not None else default_log_dir(config_paths)
    seed = cfg.get("seed", 0)
    if not isinstance(seed, int):
        raise ConfigError(f"seed: expected an int, got {seed!r}")

    L.seed_everything(seed, workers=True, verbose=False)
    model = _instantiate(cfg.model, "model")
    data = _instantiate(cfg.data, "data")
    if isinstance(data, L.LightningDataModule):  # build the datasets now, so that their errors are config errors
        try:
            # prepare_data (e.g. encoding a latent cache) runs once per machine: here on local rank 0 only; the
            # other ranks of a DDP run are launched from trainer.fit below, after it has finished
            if os.environ.get("LOCAL_RANK", "0") == "0":
                data.prepare_data()
            data.setup("fit")
        except ConfigError:
            raise
        except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
            raise ConfigError(str(e) if str(e).startswith("data") else f"data: {e}") from e
    trainer_kwargs = _trainer_kwargs(cfg)
    callbacks = _callbacks(cfg, log_dir)

    ckpt = log_dir / "checkpoints" / "last.ckpt"
    ckpt_path = ckpt if resume and ckpt.is_file() else None
    log_dir.mkdir(parents=True, exist_ok=True)
    _save_config(cfg, log_dir / "config.yaml")

    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    elif ckpt.is_file():
        log.info("not resuming: %s will be overwritten by this run", ckpt)
    logger = CSVLogger(save_dir=str(log_dir), name="logs")
    timer = _StepTimer(ckpt)
    try:
        trainer = L.Trainer(
            **trainer_kwargs, default_root_dir=str(log_dir), logger=logger, callbacks=[*callbacks, timer]
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"lightning.trainer: {e}") from e

    start = time.perf_counter()
    with warnings.catch_warnings():
        # ModelCheckpoint warns under manual optimisation that it saves the weights *after* the update of the step
        # it is named after; that is what we want (global_step counts completed updates).
        warnings.filterwarnings("ignore", message=".*manual optimization and every_n_train_steps.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
        # a resumed run restarts the data order of the interrupted epoch (map-style datasets are not resumable)
        warnings.filterwarnings("ignore", message=".*your dataloader is not resumable.*")
        warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")
        # frozen networks (the perceptual loss's backbone, experts) are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start of training.*")
        trainer.fit(model, datamodule=data if isinstance(data, L.LightningDataModule) else None,
                    train_dataloaders=None if isinstance(data, L.LightningDataModule) else data,
                    ckpt_path=ckpt_path, weights_only=True)  # fmt: skip
    wall = time.perf_counter() - start
    # ModelCheckpoint writes last.ckpt only every every_n_train_steps; make it hold the final state, so that a
    # resumed run continues exactly where this one stopped (after Ctrl-C, _StepTimer.on_exception does this).
    # Written atomically, like every Lightning checkpoint.
    if timer.start_step is not None and trainer.global_step > timer.start_step:
        if trainer.global_step not in timer.saved_steps:
            trainer.save_checkpoint(ckpt, weights_only=False)

    if trainer.is_global_zero:
        start_step = timer.start_step if timer.start_step is not None else trainer.global_step
        export = _export(model, log_dir, trainer.global_step)
        steps = trainer.global_step - start_step
        summary = {
            "global_step": trainer.global_step,
            "resumed_from": str(ckpt_path) if ckpt_path is not None else None,
            "start_step": start_step,
            "steps": steps,
            "wall_seconds": round(wall, 3),
            "train_loop_seconds": round(timer.seconds, 3),
            "seconds_per_step": round(timer.seconds / steps, 4) if steps > 0 else None,
            # median over the steps after the first (start-up work): robust to validation runs and checkpoint writes
            "median_step_seconds": round(statistics.median(timer.step_seconds[1:] or timer.step_seconds), 4)
            if timer.step_seconds
            else None,
            "export": str(export) if export is not None else None,
        }
        with atomic_path(log_dir / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        log.info(
            "trained steps %d..%d in %.1f s (median %s s/step); outputs in %s",
            start_step, trainer.global_step, timer.seconds, summary["median_step_seconds"], log_dir,
        )  # fmt: skip
    return log_dir
