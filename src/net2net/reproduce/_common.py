"""What the experiments of :mod:`net2net.reproduce` share: training runs that are reused, the cINN config of the
CPU experiments, batched evaluation, and writing a results page with its figures and JSON."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data.latent_cache import default_cache_dir
from ..images import make_grid, save_png
from ..io import atomic_path

__all__ = [
    "AUTOENCODER",
    "CLASSIFIER",
    "batched",
    "check_ints",
    "cinn_config",
    "classifier_features",
    "config_key",
    "encode_dist",
    "optim_config",
    "runs_root",
    "load_images",
    "save_figure",
    "train_once",
    "trainer_config",
    "used_runs",
    "write_page",
]

log = logging.getLogger(__name__)

CLASSIFIER = "pretrained:fashion_mnist_classifier"
AUTOENCODER = "pretrained:fashion_mnist_autoencoder"

_USED_RUNS: list[Path] = []  # run folders train_once gave out in this process (for the compute report)


def used_runs(clear: bool = False) -> list[Path]:
    """The run folders :func:`train_once` trained or reused so far in this process (``clear``: forget them after)."""
    runs = list(dict.fromkeys(_USED_RUNS))
    if clear:
        _USED_RUNS.clear()
    return runs


def check_ints(settings: object, minimums: Mapping[str, int]) -> None:
    """Raise a ``ValueError`` naming the field unless each ``settings.<name>`` is an int ``>= minimums[name]``."""
    for name, minimum in minimums.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{type(settings).__name__}.{name} must be an int >= {minimum}, got {value!r}")


def load_images(dataset: Any, key: str = "label") -> tuple[Tensor, Tensor]:
    """All images of a dataset of dict items and their ``key`` entries: ``(N, C, H, W)``, ``(N,)``."""
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.tensor([it[key] for it in items])


def runs_root(runs_dir: str | Path | None) -> Path:
    """Where an experiment's training runs live: ``runs_dir``, else ``<cache>/runs/reproduce``."""
    return Path(runs_dir) if runs_dir is not None else default_cache_dir("runs") / "reproduce"


def config_key(obj: Any) -> str:
    """A short hash of a JSON-serialisable config: the name of its run folder, so that a changed config retrains."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def train_once(cfg: Mapping[str, Any], runs: Path, name: str, weights: str = "cinn.safetensors") -> tuple[Path, float]:
    """Train ``cfg`` into ``runs/<name>-<config hash>`` unless its ``weights`` file exists.

    Returns the run folder and the training seconds (0 when the run was reused).
    """
    from omegaconf import OmegaConf

    from ..training.run import train_from_config

    run = runs / f"{name}-{config_key(cfg)}"
    _USED_RUNS.append(run)
    if (run / weights).is_file():
        log.info("reusing %s", run / weights)
        return run, 0.0
    run.mkdir(parents=True, exist_ok=True)
    with atomic_path(run / "experiment.yaml") as tmp:
        OmegaConf.save(OmegaConf.create(dict(cfg)), tmp)
    t0 = time.perf_counter()
    with torch.enable_grad():
        train_from_config(run / "experiment.yaml", log_dir=run)
    if not (run / weights).is_file():
        raise RuntimeError(f"training {run} finished without writing {weights}")
    return run, time.perf_counter() - t0


def optim_config(steps: int) -> dict[str, Any]:
    """The cINN/MLP schedule of the CPU experiments: lr 1.5e-3 after a warm-up, cosine decay to the last step."""
    return {"base_lr": 1.2e-5, "max_lr": 1.5e-3, "warmup_steps": min(200, max(1, steps // 4)), "decay_steps": steps}


def cinn_config(cond: Mapping[str, Any], steps: int, dim: int = 64, batch_size: int = 128, n_blocks: int = 12,
                hidden_dim: int = 256, embedding_dim: int = 64) -> dict[str, Any]:  # fmt: skip
    """The ``model`` block of a cINN for the CPU experiments (``cond`` = ``{"cond_dim": D}`` or
    ``{"cond_shape": [C, H, W]}``): 12 blocks of width 256, as the text-to-image main job."""
    flow = {"dim": dim, "n_blocks": n_blocks, "hidden_dim": hidden_dim, "hidden_depth": 2,
            "embedding_dim": embedding_dim, **dict(cond)}  # fmt: skip
    return {"target": "net2net.training.translator.CINNModule", "params": {
        "batch_size": batch_size, "optim": optim_config(steps),
        "flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow}}}  # fmt: skip


def trainer_config(steps: int, val_batches: int = 4) -> dict[str, Any]:
    """The ``lightning`` block: ``steps`` optimiser steps, one validation and one image grid at the end."""
    return {
        "trainer": {"max_steps": steps, "val_check_interval": steps, "check_val_every_n_epoch": None,
                    "limit_val_batches": val_batches, "num_sanity_val_steps": 0, "log_every_n_steps": 50},
        "callbacks": {"image_logger": {"params": {"every_n_steps": steps, "max_images": 16, "scale": 2}},
                      "checkpoint": {"params": {"every_n_train_steps": min(1000, steps)}}},
    }  # fmt: skip


@torch.no_grad()
def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 500) -> Tensor:
    """``fn`` applied to ``x`` in chunks of ``batch_size`` along the first dimension, concatenated."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def encode_dist(target: Any, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Mean and std of the target autoencoder's ``q(z | y)`` for ``images``, in batches: ``(N, D)`` each."""
    mean, std = batched(lambda x: torch.cat(target.encode_dist(x), 1), images, batch_size).chunk(2, 1)
    return mean, std


def classifier_features(classifier: Any) -> Callable[[Tensor], Tensor]:
    """The pooled features of the Fashion-MNIST classifier: the feature space of the domain FID."""
    return lambda x: classifier.features(x, ["pool"])["pool"]


def save_figure(images: Tensor, path: Path, nrow: int, scale: int = 2) -> Path:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into a PNG at ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(make_grid(images.clamp(-1, 1), nrow=nrow, scale=scale, padding=2), path)


def write_page(out: Path, name: str, lines: Sequence[str], summary: Mapping[str, Any]) -> Path:
    """Write ``<out>/<name>.md`` (``lines``) and ``<out>/<name>.json`` (``summary``), atomically."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / f"{name}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / f"{name}.md"
