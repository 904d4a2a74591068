"""``net2net fit``: a translation from two row-aligned embedding files, and what to do with a run afterwards.

:func:`fit` checks and standardises the arrays in one pass (:func:`net2net.data.embeddings.scan_pair`), writes a
config of a :class:`~net2net.training.translator.CINNModule` over an
:class:`~net2net.training.datamodule.EmbeddingDataModule` into the run folder and trains it with
:func:`~net2net.training.run.train_from_config` (Lightning: checkpoints, resuming, DDP). Validation on held-out
blocks stops the run early when the held-out NLL stops improving. The run folder::

    config.yaml                    the training config (CINNModule + EmbeddingDataModule)
    standardization.safetensors    per-dimension mean and std of source and target
    data.json                      the files, their sizes, times and content digests, rows and widths
    cinn.safetensors               the translator τ (ConditionalINN on standardised codes)
    model_card.json, model_card.md dims, rows, digests, held-out NLL (nats/dim and bits/dim), the command
    checkpoints/, logs/, summary.json, compute.json   as for every training run

:func:`evaluate_run` measures the held-out NLL of any translation run (fit runs and expert runs) and an estimate of
the information the source carries about the target; :func:`export_run` copies a run into a self-contained folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..config import RUN_PATH_PREFIX
from ..data.embeddings import PairScan, Standardization, open_embeddings, scan_pair
from ..images import atomic_path

__all__ = ["FitSettings", "evaluate_run", "export_run", "fit", "write_model_card"]

PathLike = str | os.PathLike[str]
log = logging.getLogger(__name__)


@dataclass
class FitSettings:
    """The ``fit`` recipe: translator size, optimiser, steps, held-out split, early stopping."""

    steps: int = 5000  # max optimiser steps (early stopping may end sooner)
    batch_size: int = 256  # rows per step and process
    n_blocks: int = 12  # cINN blocks (20 in the paper)
    hidden_dim: int = 512  # width of the coupling subnets
    hidden_depth: int = 2  # hidden layers per subnet
    embedding_dim: int = 128  # width of the condition embedding h = H(z_src)
    max_lr: float = 1e-3  # peak learning rate (reached by warm-up), cosine decay to 0 over the run
    warmup_steps: int = 200
    grad_clip: float = 100.0  # max global gradient norm
    val_every: int = 250  # steps between held-out evaluations (and checkpoints)
    patience: int = 6  # held-out evaluations without improvement before stopping
    val_fraction: float = 0.05  # share of the rows held out (at most max_val_rows)
    max_val_rows: int = 20000
    block_rows: int = 4096  # rows per block: the unit of shuffling, sharding over processes and the split
    seed: int = 0

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"fit: {f.name} must be an int, got {value!r}")
        for name in (
            "steps",
            "batch_size",
            "n_blocks",
            "hidden_dim",
            "embedding_dim",
            "val_every",
            "patience",
            "max_val_rows",
            "block_rows",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"fit: {name} must be positive, got {getattr(self, name)}")


def _stat(path: Path) -> list[list[Any]]:
    files = sorted(f for f in path.iterdir() if f.is_file()) if path.is_dir() else [path]
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def _data_record(
    source: Path, target: Path, scan: PairScan, src_dim: int, tgt_dim: int, keys: Sequence[str | None]
) -> dict[str, Any]:
    return {
        "rows": scan.rows,
        "source": {
            "path": str(source),
            "key": keys[0],
            "dim": src_dim,
            "digest": scan.source_digest,
            "files": _stat(source),
        },
        "target": {
            "path": str(target),
            "key": keys[1],
            "dim": tgt_dim,
            "digest": scan.target_digest,
            "files": _stat(target),
        },
    }


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _config(
    settings: FitSettings,
    source: Path,
    target: Path,
    run: Path,
    src_dim: int,
    tgt_dim: int,
    keys: Sequence[str | None],
    trainer: dict[str, Any],
) -> dict[str, Any]:
    s = settings
    flow = {
        "dim": tgt_dim,
        "cond_dim": src_dim,
        "n_blocks": s.n_blocks,
        "hidden_dim": s.hidden_dim,
        "hidden_depth": s.hidden_depth,
        "embedding_dim": s.embedding_dim,
        "seed": s.seed,
    }
    return {
        "seed": s.seed,
        "model": {
            "target": "net2net.training.translator.CINNModule",
            "params": {
                "flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow},
                "optim": {
                    "max_lr": s.max_lr,
                    "base_lr": 1.0,
                    "warmup_steps": min(s.warmup_steps, s.steps - 1),
                    "decay_steps": "max_steps",
                    "grad_clip": s.grad_clip,
                },
                "batch_size": s.batch_size,
            },
        },
        "data": {
            "target": "net2net.training.datamodule.EmbeddingDataModule",
            "params": {
                "source": str(source),
                "target": str(target),
                "source_key": keys[0],
                "target_key": keys[1],
                "standardization": str(run / "standardization.safetensors"),
                "batch_size": s.batch_size,
                "val_fraction": s.val_fraction,
                "max_val_rows": s.max_val_rows,
                "block_rows": s.block_rows,
                "seed": s.seed,
            },
        },
        "lightning": {
            "trainer": {
                "max_steps": s.steps,
                "val_check_interval": s.val_every,
                "check_val_every_n_epoch": None,
                "num_sanity_val_steps": 0,
                "log_every_n_steps": min(50, s.val_every),
                **trainer,
            },
            "callbacks": {
                "image_logger": None,  # embeddings: no images
                "checkpoint": {"params": {"every_n_train_steps": s.val_every}},
                "early_stopping": {
                    "target": "lightning.pytorch.callbacks.EarlyStopping",
                    "params": {
                        "monitor": "val/nats_per_dim",
                        "mode": "min",
                        "patience": s.patience,
                        "check_on_train_epoch_end": False,
                    },
                },
                "rows_per_s": {"target": "net2net.training.callbacks.RowsPerSecond"},
            },
        },
    }


def _is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def fit(
    source: PathLike,
    target: PathLike,
    out: PathLike,
    settings: FitSettings | None = None,
    *,
    source_key: str | None = None,
    target_key: str | None = None,
    resume: bool = False,
    trainer: dict[str, Any] | None = None,
    overrides: Sequence[str] = (),
    command: str | None = None,
    progress: bool = True,
) -> Path:
    """Train a translation ``p(z_tgt | z_src)`` from two row-aligned embedding files; returns the run folder.

    Arguments:
        source, target: ``.npy`` / ``.safetensors`` files or folders of shards, the same number of rows.
        out: the run folder; it must not exist (or be empty) unless ``resume``.
        settings: the recipe (:class:`FitSettings`).
        source_key, target_key: tensor names in safetensors files that hold several.
        resume: continue the run in ``out`` from its last checkpoint (the data must be the same).
        trainer: extra ``lightning.Trainer`` arguments (``devices``, ``strategy``, ``accelerator``, ``num_nodes``,
            ``precision``).
        overrides: dotlist overrides of the generated config (``model.params.optim.max_lr=5e-4``).
        command: the command line recorded in the model card (default: this process's).
        progress: progress bars.

    Example:
        >>> run = fit("text.npy", "image.npy", "runs/text2image-emb", FitSettings(steps=2000))  # doctest: +SKIP
    """
    from .run import train_from_config

    settings = settings or FitSettings()
    source, target, run = Path(source).expanduser().resolve(), Path(target).expanduser().resolve(), Path(out)
    src, tgt = open_embeddings(source, source_key, "source"), open_embeddings(target, target_key, "target")
    keys = (source_key, target_key)
    record_file, stdz_file = run / "data.json", run / "standardization.safetensors"
    if _is_rank_zero() and run.exists() and any(run.iterdir()) and not resume:
        raise FileExistsError(
            f"{run} exists and is not empty: pass --resume to continue that run, or choose a new --out"
        )
    if resume and _is_rank_zero():
        if not (record_file.is_file() and stdz_file.is_file()):
            raise FileNotFoundError(
                f"{run}: nothing to resume (no data.json / standardization.safetensors of a fit run)"
            )
        old = json.loads(record_file.read_text(encoding="utf-8"))
        for name, path in (("source", source), ("target", target)):
            if old[name]["path"] != str(path):
                raise ValueError(f"--resume: the run was made from {name} {old[name]['path']}, not {path}")
        if [old["source"]["files"], old["target"]["files"]] != [_stat(source), _stat(target)]:
            log.info("the data files changed size or time since the run started: checking their content")
            scan = scan_pair(src, tgt, progress=progress)
            if (scan.source_digest, scan.target_digest) != (old["source"]["digest"], old["target"]["digest"]):
                raise ValueError(f"--resume: the content of the data changed since {run} was started; start a new run")
            _write_json(record_file, _data_record(source, target, scan, src.dim, tgt.dim, keys))
    elif _is_rank_zero():
        if src.rows != tgt.rows:
            raise ValueError(
                f"source has {src.rows} rows but target has {tgt.rows}: the arrays must hold aligned pairs"
            )
        scan = scan_pair(src, tgt, progress=progress)
        run.mkdir(parents=True, exist_ok=True)
        scan.standardization.save(stdz_file)
        _write_json(record_file, _data_record(source, target, scan, src.dim, tgt.dim, keys))
    src.close()
    tgt.close()
    cfg = _config(settings, source, target, run.resolve(), src.dim, tgt.dim, keys, dict(trainer or {}))
    config_file = run / "fit.yaml"
    if _is_rank_zero():
        with atomic_path(config_file) as tmp:
            tmp.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    train_from_config(config_file, overrides, log_dir=run, resume=True)
    if _is_rank_zero():
        write_model_card(run, command=command if command is not None else " ".join(["net2net", *sys.argv[1:]]))
    return run


# -- evaluation --------------------------------------------------------------------------------------------------
def _run_config(run: Path) -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg_file = run / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{run} is not a training run folder (no config.yaml)")
    return OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=True)  # type: ignore[return-value]


def _pairs(loader: Any, max_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    src, tgt, n = [], [], 0
    for batch in loader:
        src.append(batch["z_src"])
        tgt.append(batch["z_tgt"])
        n += len(batch["z_tgt"])
        if n >= max_rows:
            break
    if not src:
        raise ValueError("the run's data module gave no batches")
    return torch.cat(src)[:max_rows], torch.cat(tgt)[:max_rows]


def evaluate_run(run_dir: PathLike, information_steps: int = 600, max_train_rows: int = 20000) -> dict[str, Any]:
    """Held-out NLL of a translation run and an estimate of the information its source carries about the target.

    The held-out pairs are the run's validation data (a fit run's held-out blocks; an expert run's validation
    split from the latent cache). The information estimate (:func:`net2net.metrics.information.information_estimate`)
    compares τ with an unconditional flow fitted here to ``information_steps`` steps on up to ``max_train_rows``
    training pairs (0 skips it). For fit runs the NLL is also given for the raw (unstandardised) embeddings.

    Returns:
        ``{"rows", "dim", "nats_per_dim", "bits_per_dim", "nll_nats", ...}``, JSON-serialisable.
    """
    from ..config import instantiate_from_config
    from ..flows import load_cinn
    from ..metrics.information import heldout_nll, information_estimate
    from .datamodule import EmbeddingDataModule  # Lightning: imported here, so that the CLI starts without it
    from .in_memory import fit_unconditional_flow

    run = Path(run_dir)
    cfg = _run_config(run)
    tau = load_cinn(run / "cinn.safetensors")
    dm = instantiate_from_config(cfg["data"], key="data")
    if hasattr(dm, "prepare_data") and not isinstance(dm, EmbeddingDataModule):
        dm.prepare_data()  # an expert run: encodes the validation split if its latent cache is missing
    dm.setup("fit")
    if isinstance(dm, EmbeddingDataModule):
        val_src, val_tgt = dm.held_out()
    else:
        val_loader = dm.val_dataloader()
        if isinstance(val_loader, list) and not val_loader:
            raise ValueError(f"{run}: the run's data has no validation split to evaluate on")
        val_src, val_tgt = _pairs(val_loader, 10**9)
    val_src, val_tgt = val_src.float(), val_tgt.float()
    dim = val_tgt.shape[1]
    nll_c = heldout_nll(tau, val_tgt, val_src)  # (N,) nats, standardised space for fit runs
    out: dict[str, Any] = {
        "run": str(run),
        "rows": int(val_tgt.shape[0]),
        "dim": dim,
        "nll_nats": float(nll_c.mean()),
        "nats_per_dim": float(nll_c.mean()) / dim,
        "bits_per_dim": float(nll_c.mean()) / dim / math.log(2),
    }
    stdz = getattr(dm, "standardization", None)
    if isinstance(stdz, Standardization):
        raw = float(nll_c.mean()) - stdz.target_log_det
        out.update(space="standardised", raw_nll_nats=raw, raw_nats_per_dim=raw / dim)
    if information_steps > 0:
        if isinstance(dm, EmbeddingDataModule):  # the stream is endless: take each training row at most once
            max_train_rows = min(max_train_rows, dm.rows - dm.n_val_rows)
        _, train_tgt = _pairs(dm.train_dataloader(), max_train_rows)
        uncond = fit_unconditional_flow(train_tgt.float(), steps=information_steps, seed=0)
        est = information_estimate(heldout_nll(uncond, val_tgt), nll_c, dim=dim)
        out.update(
            information=dict(est), information_train_rows=int(train_tgt.shape[0]), information_steps=information_steps
        )
    return out


def write_model_card(run_dir: PathLike, command: str) -> dict[str, Any]:
    """Write ``model_card.json`` and ``model_card.md`` of a fit run (held-out NLL measured now)."""
    run = Path(run_dir)
    data = json.loads((run / "data.json").read_text(encoding="utf-8"))
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8")) if (run / "summary.json").is_file() else {}
    ev = evaluate_run(run, information_steps=0)
    cfg = _run_config(run)
    card = {
        "kind": "net2net fit: p(z_tgt | z_src) by a conditional INN on standardised embeddings",
        "command": command,
        "source": {k: data["source"][k] for k in ("path", "key", "dim", "digest")},
        "target": {k: data["target"][k] for k in ("path", "key", "dim", "digest")},
        "rows": data["rows"],
        "held_out_rows": ev["rows"],
        "held_out_nats_per_dim": ev["nats_per_dim"],
        "held_out_bits_per_dim": ev["bits_per_dim"],
        "held_out_raw_nats_per_dim": ev["raw_nats_per_dim"],
        "steps": summary.get("global_step"),
        "translator": cfg["model"]["params"]["flow_config"],
    }
    _write_json(run / "model_card.json", card)
    md = "\n".join(
        [
            f"# Model card: {run.name}",
            "",
            f"Translation p(z_tgt | z_src) learned by a conditional INN (net2net `fit`) on {data['rows']} "
            "row-aligned pairs.",
            "",
            "| | |",
            "|---|---|",
            f"| source | `{data['source']['path']}`: {data['source']['dim']}-d, {data['source']['digest']} |",
            f"| target | `{data['target']['path']}`: {data['target']['dim']}-d, {data['target']['digest']} |",
            f"| rows (held out) | {data['rows']} ({ev['rows']}) |",
            f"| held-out NLL, standardised | {ev['nats_per_dim']:.4f} nats/dim, {ev['bits_per_dim']:.4f} bits/dim |",
            f"| held-out NLL, raw embeddings | {ev['raw_nats_per_dim']:.4f} nats/dim |",
            f"| steps | {summary.get('global_step')} |",
            f"| command | `{command}` |",
            "",
        ]
    )
    with atomic_path(run / "model_card.md") as tmp:
        tmp.write_text(md, encoding="utf-8")
    return card


# -- export --------------------------------------------------------------------------------------------------------
_RUN_FILES = (
    "config.yaml",
    "cinn.safetensors",
    "standardization.safetensors",
    "data.json",
    "model_card.json",
    "model_card.md",
    "summary.json",
    "compute.json",
)


def _localise(block: Any, run: Path, out: Path, key: str) -> Any:
    """Copy every existing file a config block names into ``out/experts/`` and point the config at the copy."""
    if isinstance(block, dict):
        return {k: _localise(v, run, out, f"{key}.{k}") for k, v in block.items()}
    if isinstance(block, list):
        return [_localise(v, run, out, f"{key}[{i}]") for i, v in enumerate(block)]
    if isinstance(block, str) and block.startswith(RUN_PATH_PREFIX):
        src = run / block.removeprefix(RUN_PATH_PREFIX)
        dst = out / block.removeprefix(RUN_PATH_PREFIX)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        return block
    if isinstance(block, str) and os.path.isfile(block):
        src = Path(block)
        name = f"experts/{key.replace('.', '_')}{src.suffix}"
        (out / "experts").mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out / name)
        return RUN_PATH_PREFIX + name
    return block


def export_run(run_dir: PathLike, out: PathLike) -> Path:
    """Copy a translation into one self-contained folder: τ, the standardisation (fit runs), the config, the model
    card, and every weights file its experts' configs name (``pretrained:NAME`` stays a name: it ships with the
    package). :meth:`net2net.apps.translate.Net2Net.from_run` loads the folder; the training data is not copied.
    """
    run, dst = Path(run_dir), Path(out)
    cfg = _run_config(run)
    if not (run / "cinn.safetensors").is_file():
        raise FileNotFoundError(f"{run}: no cinn.safetensors (the run has not finished a training call)")
    if dst.exists() and any(dst.iterdir()):
        raise FileExistsError(f"{dst} exists and is not empty; choose a new folder")
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    for name in _RUN_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, tmp / name)
    params = (cfg.get("data") or {}).get("params") or {}
    for role in ("source", "target"):
        if isinstance(params.get(role), dict):
            params[role] = _localise(params[role], run, tmp, role)
    with atomic_path(tmp / "config.yaml") as f:
        f.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    if dst.exists():
        dst.rmdir()
    tmp.rename(dst)  # the folder appears complete or not at all
    return dst
