"""``train_from_config``: one training run from CompVis-style YAML configs, resumable, with a weights export.

A config has three blocks:

.. code-block:: yaml

    model:      {target: net2net.training.autoencoder_module.AutoencoderModule, params: {...}}
    data:       {target: net2net.training.datamodule.DataModule, params: {...}}
    lightning:
      trainer:  {max_steps: 5000, val_check_interval: 500, ...}   # keyword arguments of lightning.Trainer
      callbacks:                                                  # name -> target/params block, merged
        image_logger: {params: {every_n_steps: 500}}              # into the defaults below; null removes one
        checkpoint: {params: {every_n_train_steps: 500}}
    seed: 0

A run writes into its log folder (default ``$NET2NET_CACHE/runs/<stem of the first config>``, see
:mod:`net2net.training.runs`)::

    config.yaml                    the merged config (files + overrides) of the latest call
    checkpoints/last.ckpt          Lightning checkpoint (model, optimisers, loops, callbacks), written atomically
    checkpoints/step=NNNNNN.ckpt   the latest periodic checkpoint (``save_top_k`` of them)
    images/step_NNNNNN_*.png       inputs, reconstructions and prior samples (ImageLogger)
    logs/version_N/metrics.csv     scalars of the N-th call (CSVLogger)
    autoencoder.safetensors        encoder + decoder weights with the architecture as JSON metadata
    cinn.safetensors               (cINN runs) τ's weights and ActNorm state, its flow config as JSON metadata
    classifier.safetensors         (ClassifierModule runs) the SmallResNet, with its test accuracy in the metadata
    dequantization_vae.safetensors (DequantizationVAEModule runs) the VAE of Tab. S4
    translator.safetensors         (TranslatorModule runs) the translator's weights, kind and parameters
    summary.json                   steps, wall time, seconds per step (median and mean), threads and precision of the latest call
    compute.json                   time, energy, CO2 and cost of the calls since step 0 (see training/compute.py)
    .lock                          held while a call trains (a second call on the folder is refused, naming the holder)

Every checkpoint is written to a temporary file beside it, flushed to disk and renamed over the destination
(:class:`AtomicCheckpointIO`), so a kill, a crash or a full disk never leaves a truncated one.

Resuming: ``last.ckpt`` is written every ``every_n_train_steps`` and once more at the end of every call, so it holds
the final step; after Ctrl-C (on which Lightning exits the process) or SIGTERM (``timeout``, ``docker stop``, SLURM,
Kubernetes; the call then raises :class:`TrainingInterrupted`) a single-process run writes it before stopping.
Before resuming, the checkpoints of the folder (``last.ckpt``, ``step=*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt``)
are read and checked; the run continues from the intact one with the highest step, with a warning naming any that
is damaged. When one exists (and ``resume`` is
true), the run continues from it: weights, both optimiser states, ``global_step`` and the callbacks' states are
restored, so ``max_steps`` is the *total* number of steps; a call that already reached it trains nothing and only
re-exports the weights. The data order is not restored (the interrupted epoch starts over with a new shuffle).
The checkpoint is read with ``weights_only=True`` (passed to ``Trainer.fit``; it is also torch >= 2.6's default,
which Lightning 2.6 keeps): this works because the module's hyper-parameters are plain dicts, lists and numbers
(``instantiate_from_config`` converts OmegaConf containers) and nothing else in the checkpoint is a custom object.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import statistics
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..config import ConfigError, instantiate, load_config, nearest
from ..io import atomic_path
from .callbacks import StepTimer
from .threads import warn_if_busy

__all__ = [
    "DEFAULT_CALLBACKS",
    "AtomicCheckpointIO",
    "ConfigError",
    "ProgressLog",
    "RunLockedError",
    "TrainingInterrupted",
    "default_log_dir",
    "find_resume_checkpoint",
    "load_run_module",
    "train_from_config",
]

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
TOP_LEVEL_KEYS = ("model", "data", "lightning", "seed")  # what a training config may hold
LIGHTNING_KEYS = ("trainer", "callbacks")
# Trainer arguments that count steps or batches: (minimum, whether -1 means "no limit", whether a fraction works)
_TRAINER_COUNTS: dict[str, tuple[int, bool, bool]] = {
    "max_steps": (1, True, False), "min_steps": (0, False, False), "max_epochs": (1, True, False),
    "min_epochs": (0, False, False), "log_every_n_steps": (1, False, False),
    "accumulate_grad_batches": (1, False, False), "check_val_every_n_epoch": (1, False, False),
    "num_sanity_val_steps": (0, True, False), "val_check_interval": (1, False, True),
    "limit_train_batches": (0, False, True), "limit_val_batches": (0, False, True),
}  # fmt: skip


class TrainingInterrupted(RuntimeError):
    """Training stopped on SIGTERM; ``last.ckpt`` holds the last step and the next call resumes from it."""

    def __init__(self, log_dir: Path, step: int) -> None:
        super().__init__(f"stopped by SIGTERM at step {step}; saved {log_dir / 'checkpoints' / 'last.ckpt'}, "
                         "the next call resumes from it")  # fmt: skip
        self.log_dir, self.step = log_dir, step


class RunLockedError(RuntimeError):
    """Another process is training in the same run folder."""


def default_log_dir(config_paths: PathLike | Mapping[str, Any] | Sequence[PathLike | Mapping[str, Any]]) -> Path:
    """``<runs_dir()>/<stem of the first config file>`` (``$NET2NET_CACHE/runs``, see :mod:`net2net.training.runs`);
    a config given as a mapping has no default (pass ``log_dir``)."""
    from .runs import runs_dir

    first = config_paths if isinstance(config_paths, (str, os.PathLike, Mapping)) else next(iter(config_paths))
    if isinstance(first, Mapping):
        raise ConfigError("log_dir: a config given as a mapping needs an explicit log_dir")
    return runs_dir() / Path(first).stem


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg


def _check_keys(cfg: DictConfig) -> None:
    """Unknown top-level and ``lightning`` keys are errors naming the nearest valid key (typos such as ``modle:``
    or ``lightnin.trainer.max_steps=5`` would otherwise be ignored)."""
    for k in map(str, cfg):  # keys as written in YAML (OmegaConf also allows int/enum/bytes keys)
        if k not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{k}: unknown top-level key{nearest(k, TOP_LEVEL_KEYS)}; a training config holds "
                              f"{', '.join(TOP_LEVEL_KEYS)}")  # fmt: skip
    lightning_cfg = cfg.get("lightning")
    if lightning_cfg is None:
        return
    if not isinstance(lightning_cfg, DictConfig):
        raise ConfigError(f"lightning: expected a mapping with {' and '.join(LIGHTNING_KEYS)}, got {lightning_cfg!r}")
    for k in map(str, lightning_cfg):
        if k not in LIGHTNING_KEYS:
            raise ConfigError(f"lightning.{k}: unknown key{nearest(k, LIGHTNING_KEYS)}; the lightning block holds "
                              f"{', '.join(LIGHTNING_KEYS)}")  # fmt: skip


def _check_count(key: str, value: Any, minimum: int, unlimited: bool, fraction: bool) -> None:
    if value is None:
        return
    if isinstance(value, float) and fraction and 0.0 < value <= 1.0:
        return
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= minimum or (unlimited and value == -1))
    if not ok:
        expected = f"an int >= {minimum}" + (" or -1 (no limit)" if unlimited else "")
        expected += " or a fraction in (0, 1]" if fraction else ""
        raise ConfigError(f"{key}: expected {expected}, got {value!r} ({type(value).__name__})")


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
            f"lightning.trainer.{unknown[0]}: unknown Trainer argument{nearest(unknown[0], accepted)}; see "
            "lightning.Trainer for the accepted ones"
        )
    for name, (minimum, unlimited, fraction) in _TRAINER_COUNTS.items():
        if name in trainer_cfg:
            _check_count(f"lightning.trainer.{name}", trainer_cfg[name], minimum, unlimited, fraction)
    reserved = sorted(k for k in trainer_cfg if k in _RESERVED_TRAINER_KEYS)
    if reserved:
        raise ConfigError(
            f"lightning.trainer: {reserved} are set by train_from_config (log folder, CSV logger, checkpoints); "
            "configure callbacks under lightning.callbacks and the folder with log_dir / --log-dir"
        )
    kwargs: dict[str, Any] = {"max_steps": 1000, "accelerator": "auto", "devices": 1}
    if not sys.stdout.isatty():  # a file or CI log: ProgressLog writes lines instead of a carriage-return bar
        kwargs["enable_progress_bar"] = False
    kwargs.update(trainer_cfg)
    if kwargs.get("max_steps") == -1 and kwargs.get("max_epochs") in (None, -1):
        raise ConfigError("lightning.trainer.max_steps: -1 (no limit) needs lightning.trainer.max_epochs")
    plugins = kwargs.get("plugins")
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    kwargs["plugins"] = [*plugins, AtomicCheckpointIO()]
    # "auto" (bf16-mixed where the model's own step is measured faster) is resolved in _train, once the model is built
    return kwargs


def _callbacks(cfg: DictConfig, log_dir: Path) -> list[L.Callback]:
    lightning_cfg = cfg.get("lightning") or {}
    user = lightning_cfg.get("callbacks") or {}
    try:
        merged = OmegaConf.merge(OmegaConf.create(DEFAULT_CALLBACKS), user)
    except OmegaConfBaseException as e:
        raise ConfigError(f"lightning.callbacks: cannot merge with the default callbacks: {e}") from e
    callbacks: list[L.Callback] = []
    for raw_name, block in merged.items():
        name = str(raw_name)
        key = f"lightning.callbacks.{name}"
        if block is None:
            if name == "checkpoint":
                raise ConfigError(f"{key}: the checkpoint callback cannot be removed (resuming needs last.ckpt)")
            continue
        block = _plain(block)
        if not isinstance(block, Mapping):
            raise ConfigError(f"{key}: expected a target/params block or null, got {block!r}")
        block = dict(block)  # a plain dict already (to_container); typed as one so params can be set
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
        callbacks.append(instantiate(block, key))
    return callbacks


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, atomic on every filesystem: the checkpoint goes to a temporary file in the
    destination's folder, is flushed to disk and renamed over it (Lightning's own writer stages it in ``$TMPDIR``
    and, when that is another filesystem, rewrites the destination in place)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"AtomicCheckpointIO takes no storage_options, got {storage_options!r}")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def _checkpoint_step(path: Path) -> int:
    """The ``global_step`` of a complete, loadable checkpoint; ``ValueError`` naming the file otherwise."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, bad pickle opcodes, refused globals, I/O errors
        raise ValueError(f"{path}: unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("global_step"), int) or "state_dict" not in ckpt:
        raise ValueError(f"{path}: not a Lightning checkpoint (no global_step / state_dict)")
    if "loops" not in ckpt or "optimizer_states" not in ckpt:
        raise ValueError(f"{path}: a weights-only checkpoint (no loop or optimiser state): cannot resume from it")
    return ckpt["global_step"]


def find_resume_checkpoint(log_dir: PathLike) -> Path | None:
    """The intact checkpoint of a run folder with the highest step (``last.ckpt`` on a tie), or ``None``.

    Candidates: ``checkpoints/last.ckpt``, ``checkpoints/step=*.ckpt`` and SLURM's ``hpc_ckpt_*.ckpt`` (written on
    requeue). Each is loaded (``weights_only=True``) and checked; damaged ones are skipped with a warning.
    """
    log_dir = Path(log_dir)
    last = log_dir / "checkpoints" / "last.ckpt"
    steps = sorted((log_dir / "checkpoints").glob("step=*.ckpt"))
    candidates = [last, *steps, *sorted(log_dir.glob("hpc_ckpt_*.ckpt"))]
    best: tuple[int, int, Path] | None = None
    damaged = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            step = _checkpoint_step(path)
        except ValueError as e:
            damaged.append(str(e))
            continue
        rank = (step, int(path == last), path)
        if best is None or rank[:2] > best[:2]:
            best = rank
    if damaged:
        chosen = f"resuming from {best[2]} (step {best[0]})" if best else "no intact checkpoint: starting from step 0"
        warnings.warn(f"skipping damaged checkpoint(s): {'; '.join(damaged)}; {chosen}", RuntimeWarning, stacklevel=2)
    return best[2] if best else None


class _RunLock:
    """An exclusive ``flock`` on ``<log_dir>/.lock`` while a call trains; the file names the holder."""

    def __init__(self, log_dir: Path) -> None:
        self.path = log_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> _RunLock:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent calls are not detected
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 1024).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(f"{self.path.parent} is in use by {holder}; wait for it to finish, or give another "
                                 "--log-dir") from None  # fmt: skip
        os.ftruncate(fd, 0)
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {since}\n".encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock; the file stays (deleting it would race a new holder)
            self.fd = None


class ProgressLog(L.Callback):
    """One log line every ``every_seconds`` of training: step, loss, held-out NLL (once validated), steps/s and
    the time left. ``train_from_config`` adds it when stdout is not a terminal (files, CI logs), where Lightning's
    progress bar would print nothing useful."""

    def __init__(self, every_seconds: float = 30.0) -> None:
        if not isinstance(every_seconds, (int, float)) or isinstance(every_seconds, bool) or every_seconds <= 0:
            raise ValueError(f"ProgressLog: every_seconds must be a positive number, got {every_seconds!r}")
        self.every_seconds = float(every_seconds)
        self._t_last = 0.0
        self._step_last = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t_last, self._step_last = time.perf_counter(), trainer.global_step

    def line(self, trainer: L.Trainer, now: float) -> str:
        """The progress line at ``now`` (``time.perf_counter()``)."""
        step, total = trainer.global_step, trainer.max_steps
        rate = (step - self._step_last) / max(now - self._t_last, 1e-9)  # steps/s since the last line
        parts = [f"step {step}/{total}" if total and total > 0 else f"step {step}"]
        metrics = trainer.callback_metrics
        for label, key in (("loss", "train/loss"), ("val nats/dim", "val/nats_per_dim"), ("val loss", "val/loss")):
            value = metrics.get(key)
            if value is not None and (label != "val loss" or "val/nats_per_dim" not in metrics):
                parts.append(f"{label} {float(value):.4g}")
        parts.append(f"{rate:.2f} steps/s")
        if total and total > 0 and rate > 0:
            left = (total - step) / rate
            parts.append(f"{int(left // 60)} min {int(left % 60):02d} s left")
        return ", ".join(parts)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        now = time.perf_counter()
        if now - self._t_last >= self.every_seconds and trainer.is_global_zero:
            log.info("%s", self.line(trainer, now))
            self._t_last, self._step_last = now, trainer.global_step


def _check_dims(model: Any, data: Any) -> None:
    """The flow's ``dim`` must be the target expert's code size (before any encoding starts)."""
    net = getattr(model, "tau", None) or getattr(model, "translator", None)
    target = getattr(data, "target", None) if hasattr(type(data), "target") else None
    dim, z_dim = getattr(net, "dim", None), getattr(target, "z_dim", None)
    if isinstance(dim, int) and isinstance(z_dim, int) and dim != z_dim:
        key = "model.params.flow_config.params.dim" if hasattr(model, "tau") else "model.params.translator_params.dim"
        raise ConfigError(f"{key}: {dim}, but the target expert's codes have {z_dim} dimensions (its z_dim); "
                          f"set it to {z_dim}")  # fmt: skip


def _save_config(cfg: DictConfig, path: Path) -> None:
    with atomic_path(path) as tmp:
        OmegaConf.save(cfg, tmp, resolve=False)


def _export(model: L.LightningModule, log_dir: Path, global_step: int) -> Path | None:
    """Write ``autoencoder.safetensors`` for modules with an encoder and a decoder, ``cinn.safetensors`` for modules
    with a cINN ``tau``, ``translator.safetensors`` for a :class:`TranslatorModule`; a module with an
    ``export_weights(log_dir, global_step)`` method writes its own file (the classifier, the dequantisation VAE);
    others: nothing."""
    export_weights = getattr(model, "export_weights", None)
    if callable(export_weights):
        return export_weights(log_dir, global_step)
    from .translator import TranslatorModule

    if isinstance(model, TranslatorModule):
        from ..translators import save_translator

        return save_translator(model.translator, log_dir / "translator.safetensors", {"global_step": str(global_step)})
    if hasattr(model, "tau") and "flow_config" in getattr(model, "hparams", {}):
        from ..flows import ConditionalINN, save_cinn

        if type(model.tau) is not ConditionalINN:
            log.warning("not exporting cinn.safetensors: tau is a %s, not a ConditionalINN", type(model.tau).__name__)
            return None
        return save_cinn(model.tau, log_dir / "cinn.safetensors", {"global_step": str(global_step)})
    if not (hasattr(model, "encoder") and hasattr(model, "decoder")):
        return None
    from ..experts.target import AutoencoderTarget

    target = AutoencoderTarget.from_module(model)
    return target.save_safetensors(log_dir / "autoencoder.safetensors", {"global_step": str(global_step)})


def train_from_config(
    config_paths: PathLike | Mapping[str, Any] | Sequence[PathLike | Mapping[str, Any]],
    overrides: Sequence[str] = (),
    log_dir: PathLike | None = None,
    resume: bool = True,
) -> Path:
    """Train the ``model`` of a config on its ``data`` with Lightning; returns the log folder.

    Arguments:
        config_paths: one YAML file or mapping (``dict``/``DictConfig``), or several, merged in order (later
            ones win).
        overrides: dotlist overrides ``key.path=value``, applied after the files.
        log_dir: output folder (default ``$NET2NET_CACHE/runs/<stem of the first config>``).
        resume: continue from ``<log_dir>/checkpoints/last.ckpt`` if it exists; ``False`` starts from step 0
            (the existing ``last.ckpt`` is overwritten by the new run).

    Returns:
        The log folder (see the module docstring for its contents).

    Raises:
        ConfigError: (a ValueError) if a config file cannot be read, holds an unknown key, a block cannot be
            instantiated, or a Trainer/callback argument is invalid; the message names the config key. Raised
            before any encoding or training starts.
        RunLockedError: another process is training in ``log_dir``.
        TrainingInterrupted: the run stopped on SIGTERM (``last.ckpt`` saved; call again to resume).

    Example:
        >>> train_from_config("configs/autoencoder/fashion_mnist.yaml", ["lightning.trainer.max_steps=10"],
        ...                   log_dir="runs/try")  # doctest: +SKIP
        PosixPath('runs/try')
    """
    try:
        cfg = load_config(config_paths, overrides)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from e
    _check_keys(cfg)
    for required in ("model", "data"):
        if cfg.get(required) is None:
            raise ConfigError(f"{required}: missing; a training config needs 'model' and 'data' target/params blocks")
    log_dir = Path(log_dir) if log_dir is not None else default_log_dir(config_paths)
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"seed: expected an int, got {seed!r}")
    trainer_kwargs = _trainer_kwargs(cfg)  # checked before anything is built or encoded

    # one call per run folder at a time (rank 0 of a multi-process run holds it for all)
    lock = _RunLock(log_dir) if os.environ.get("LOCAL_RANK", "0") == "0" else contextlib.nullcontext()
    with lock:
        return _train(cfg, log_dir, seed, trainer_kwargs, resume)


def _train(cfg: DictConfig, log_dir: Path, seed: int, trainer_kwargs: dict[str, Any], resume: bool) -> Path:
    L.seed_everything(seed, workers=True, verbose=False)
    model = instantiate(cfg.model, "model")
    if trainer_kwargs.get("precision") == "auto":  # bf16-mixed where the model's step measures faster, else 32-true
        from .precision import trainer_precision

        trainer_kwargs = {**trainer_kwargs, "precision": trainer_precision("auto", trainer_kwargs["accelerator"], model)}
    data = instantiate(cfg.data, "data")
    callbacks = _callbacks(cfg, log_dir)
    if isinstance(data, L.LightningDataModule):  # build the datasets now, so that their errors are config errors
        try:
            _check_dims(model, data)
            # prepare_data (e.g. encoding a latent cache) runs once per machine: here on local rank 0 only; the
            # other ranks of a DDP run are launched from trainer.fit below, after it has finished
            if os.environ.get("LOCAL_RANK", "0") == "0":
                data.prepare_data()
            data.setup("fit")
        except ConfigError:
            raise
        except (ValueError, TypeError, FileNotFoundError, ImportError) as e:
            raise ConfigError(str(e) if str(e).startswith("data") else f"data: {e}") from e

    ckpt = log_dir / "checkpoints" / "last.ckpt"
    ckpt_path = find_resume_checkpoint(log_dir) if resume else None
    log_dir.mkdir(parents=True, exist_ok=True)
    _save_config(cfg, log_dir / "config.yaml")

    if ckpt_path is not None:
        log.info("resuming from %s", ckpt_path)
    elif ckpt.is_file():
        log.info("not resuming: %s will be overwritten by this run", ckpt)
    logger = CSVLogger(save_dir=str(log_dir), name="logs")
    timer = StepTimer(ckpt)
    extra: list[L.Callback] = [timer]
    if not sys.stdout.isatty() and not any(isinstance(c, ProgressLog) for c in callbacks):
        extra.append(ProgressLog())
    try:
        trainer = L.Trainer(
            **trainer_kwargs, default_root_dir=str(log_dir), logger=logger, callbacks=[*callbacks, *extra]
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"lightning.trainer: {e}") from e
    warn_if_busy()

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
        try:
            trainer.fit(model, datamodule=data if isinstance(data, L.LightningDataModule) else None,
                        train_dataloaders=None if isinstance(data, L.LightningDataModule) else data,
                        ckpt_path=ckpt_path, weights_only=True)  # fmt: skip
        except SIGTERMException:
            raise TrainingInterrupted(log_dir, trainer.global_step) from None
    wall = time.perf_counter() - start
    # ModelCheckpoint writes last.ckpt only every every_n_train_steps; make it hold the final state, so that a
    # resumed run continues exactly where this one stopped (after Ctrl-C, StepTimer.on_exception does this).
    # Written atomically, like every Lightning checkpoint.
    started = timer.start_step is not None and trainer.global_step > timer.start_step
    if started and trainer.global_step not in timer.saved_steps:
        trainer.save_checkpoint(ckpt, weights_only=False)

    if trainer.is_global_zero:
        start_step = timer.start_step if timer.start_step is not None else trainer.global_step
        export = _export(model, log_dir, trainer.global_step)
        steps = trainer.global_step - start_step
        # after the first step (start-up work); the median is robust to validation runs and checkpoint writes, the
        # mean is what the wall time per step was (the two differ much on a busy machine)
        times = timer.step_seconds[1:] or timer.step_seconds
        summary = {
            "global_step": trainer.global_step,
            "resumed_from": str(ckpt_path) if ckpt_path is not None else None,
            "start_step": start_step,
            "steps": steps,
            "wall_seconds": round(wall, 3),
            "train_loop_seconds": round(timer.seconds, 3),
            "seconds_per_step": round(timer.seconds / steps, 4) if steps > 0 else None,
            "median_step_seconds": round(statistics.median(times), 4) if times else None,
            "mean_step_seconds": round(statistics.fmean(times), 4) if times else None,
            "threads": torch.get_num_threads(),
            "precision": str(trainer.precision),  # what `precision: auto` chose: it changes the trained weights
            "export": str(export) if export is not None else None,
        }
        with atomic_path(log_dir / "summary.json") as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        log.info(
            "trained steps %d..%d in %.1f s (median %s s/step, mean %s s/step); outputs in %s",
            start_step, trainer.global_step, timer.seconds, summary["median_step_seconds"],
            summary["mean_step_seconds"], log_dir,
        )  # fmt: skip
    return log_dir


def load_run_module(run_dir: PathLike) -> L.LightningModule:
    """The module of a run folder (built from ``config.yaml``'s ``model`` block) with the weights of its latest intact
    checkpoint (read with ``weights_only=True``), in eval mode.

    Raises:
        FileNotFoundError: the folder has no ``config.yaml`` or no checkpoint.
    """
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} is not a training run folder (no config.yaml)")
    ckpt = find_resume_checkpoint(run)
    if ckpt is None:
        raise FileNotFoundError(f"{run} has no checkpoint: the run has not trained a step")
    model = instantiate(load_config(run / "config.yaml").model, "model")
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"])
    return model.eval()
