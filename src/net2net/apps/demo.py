"""The built-in demo: translate a class label into handwritten digits with a cINN.

Source expert: the one-hot class label (the original's "Labelator"). Target: the 8x8 digits of
scikit-learn, dequantised pixels as ``z_tgt`` (64-d). The cINN learns ``p(image | label)``; the demo
samples several digits per class, writes one PNG grid, and measures what it learned on the held-out
split: NLL (nats and bits per dimension), how often a classifier trained on real digits recognises the
sampled class, and the diversity of samples against that of real digits.

The trained weights are cached (safetensors) under the cache directory, keyed by the settings, and
reused by the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ..config import instantiate_from_config
from ..data import Digits
from ..flows import ConditionalINN, nll
from ..images import make_grid, save_png
from ..io import atomic_path, atomic_save_safetensors, load_safetensors
from ..training.translator import CINNModule

__all__ = ["DemoSettings", "LabelToDigits", "run_demo"]

log = logging.getLogger(__name__)

LEVELS = 16  # sklearn digits take the values 0..16
STEP = 2.0 / LEVELS  # spacing of those levels once mapped to [-1, 1]


@dataclass
class DemoSettings:
    """Settings of the label-to-digits demo (all have working defaults)."""

    steps: int = 1500  # optimiser steps (longer training lowers the held-out NLL no further: 1437 images)
    batch_size: int = 128
    n_blocks: int = 6  # cINN blocks
    hidden_dim: int = 128  # subnet width
    embedding_dim: int = 32
    max_lr: float = 1e-3
    samples_per_class: int = 10  # columns of the PNG grid
    eval_samples_per_class: int = 100  # samples classified for the accuracy
    seed: int = 0

    def key(self) -> str:
        """Hash of the settings that change the trained weights."""
        train = {k: v for k, v in asdict(self).items() if k not in ("samples_per_class", "eval_samples_per_class")}
        return hashlib.sha256(json.dumps(train, sort_keys=True).encode()).hexdigest()[:12]


class LabelToDigits(Dataset):
    """Pairs ``{"z_src": one-hot label (10,), "z_tgt": dequantised pixels (64,)}`` from sklearn digits.

    Dequantisation adds uniform noise of one grey level to each pixel, fresh at every access, so the
    flow models a continuous density whose NLL bounds that of the discrete images.
    """

    def __init__(self, split: str, seed: int = 0) -> None:
        ds = Digits(split=split, size=8, channels=1, seed=seed)
        self.pixels = torch.stack([ds[i]["image"].flatten() for i in range(len(ds))])  # (N, 64) in [-1, 1]
        self.labels = torch.tensor([int(ds[i]["label"]) for i in range(len(ds))])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        z = self.pixels[i] + STEP * (torch.rand(64) - 0.5)
        return {"z_src": F.one_hot(self.labels[i], 10).float(), "z_tgt": z}


def _flow_config(s: DemoSettings) -> dict[str, Any]:
    return {
        "target": "net2net.flows.ConditionalINN",
        "params": {
            "dim": 64,
            "cond_dim": 10,
            "n_blocks": s.n_blocks,
            "hidden_dim": s.hidden_dim,
            "hidden_depth": 2,
            "embedding_dim": s.embedding_dim,
            "embedder_hidden_dim": 64,
        },
    }


def _train(s: DemoSettings, data: LabelToDigits) -> ConditionalINN:
    L.seed_everything(s.seed, workers=True, verbose=False)
    module = CINNModule(
        _flow_config(s), optim={"max_lr": s.max_lr, "warmup_steps": 100, "grad_clip": 100.0}, batch_size=s.batch_size
    )
    loader = DataLoader(data, batch_size=s.batch_size, shuffle=True, drop_last=True)
    trainer = L.Trainer(
        max_steps=s.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=True,
        log_every_n_steps=50,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*validation_step.*val_dataloader.*")
        warnings.filterwarnings("ignore", message=".*LeafSpec.*")
        trainer.fit(module, loader)
    return module.tau


def _classifier(train: LabelToDigits):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=3000)
    clf.fit(train.pixels.numpy(), train.labels.numpy())
    return clf


def _mean_pairwise_distance(x: Tensor) -> float:
    d = torch.cdist(x, x)  # (N, N)
    n = x.shape[0]
    return float(d.sum() / (n * (n - 1)))


@torch.no_grad()
def evaluate(tau: ConditionalINN, train: LabelToDigits, test: LabelToDigits, s: DemoSettings) -> dict[str, Any]:
    """Held-out NLL, class accuracy of samples under a classifier of real digits, and diversity."""
    tau.eval()
    g = torch.Generator().manual_seed(s.seed + 1)
    onehot = F.one_hot(test.labels, 10).float()
    nats = []
    for _ in range(4):  # average over dequantisation noise
        z = test.pixels + STEP * (torch.rand(test.pixels.shape, generator=g) - 0.5)
        nats.append(nll(*tau(z, onehot)).nats_per_dim.mean())
    nats_per_dim = float(torch.stack(nats).mean())
    # discrete NLL bound of the 17-level images: continuous NLL minus log of the bin width per dim
    bits_discrete = (nats_per_dim + math.log(STEP)) / math.log(2)

    clf = _classifier(train)
    real_acc = float((torch.from_numpy(clf.predict(test.pixels.numpy())) == test.labels).float().mean())
    n = s.eval_samples_per_class
    labels = torch.arange(10)
    samples = tau.sample(F.one_hot(labels, 10).float(), n, generator=g).clamp(-1, 1)  # (10, n, 64)
    pred = torch.from_numpy(clf.predict(samples.reshape(-1, 64).numpy())).view(10, n)
    per_class = (pred == labels[:, None]).float().mean(1)
    div_samples = sum(_mean_pairwise_distance(samples[k]) for k in range(10)) / 10
    div_real = sum(_mean_pairwise_distance(test.pixels[test.labels == k]) for k in range(10)) / 10
    return {
        "test_nats_per_dim": round(nats_per_dim, 4),
        "test_bits_per_dim_discrete": round(bits_discrete, 4),
        "classifier_accuracy_real_test": round(real_acc, 4),
        "classifier_accuracy_samples": round(float(per_class.mean()), 4),
        "classifier_accuracy_samples_per_class": [round(float(a), 3) for a in per_class],
        "diversity_samples": round(div_samples, 3),
        "diversity_real_test": round(div_real, 3),
    }


def run_demo(out_dir: str | Path = "outputs/demo", cache_dir: str | Path | None = None, settings: DemoSettings | None = None, retrain: bool = False) -> dict[str, Any]:
    """Train (or reuse) the label-to-digits cINN, write ``label_to_digits.png`` and ``metrics.json``.

    Arguments:
        out_dir: where the PNG grid, the sampled tensors (safetensors) and the metrics go.
        cache_dir: where trained weights are kept between runs (default ``~/.cache/net2net/demo``).
        settings: demo settings; defaults to :class:`DemoSettings`.
        retrain: train again even when cached weights exist.

    Returns:
        The metrics, also written to ``out_dir/metrics.json``.
    """
    s = settings or DemoSettings()
    out_dir = Path(out_dir)
    cache_dir = Path(cache_dir) if cache_dir is not None else Path.home() / ".cache" / "net2net" / "demo"
    weights = cache_dir / f"label_to_digits-{s.key()}.safetensors"
    train, test = LabelToDigits("train", s.seed), LabelToDigits("test", s.seed)

    t0 = time.perf_counter()
    if weights.exists() and not retrain:
        log.info("reusing trained cINN from %s", weights)
        tau = instantiate_from_config(_flow_config(s))
        tau.load_state_dict(load_safetensors(weights, "the demo's trained cINN", "run the demo with --retrain"))
        trained = False
    else:
        log.info("training the cINN for %d steps (weights will be cached in %s)", s.steps, weights)
        tau = _train(s, train)
        atomic_save_safetensors(tau.state_dict(), weights, metadata={"settings": json.dumps(asdict(s))})
        trained = True
    train_seconds = time.perf_counter() - t0

    metrics = evaluate(tau, train, test, s)
    metrics.update(trained_now=trained, train_seconds=round(train_seconds, 1), settings=asdict(s), weights=str(weights))

    g = torch.Generator().manual_seed(s.seed + 2)
    with torch.no_grad():
        samples = tau.sample(F.one_hot(torch.arange(10), 10).float(), s.samples_per_class, generator=g)
    images = samples.reshape(-1, 1, 8, 8)  # (10 * n, 64) -> (10 * n, 1, 8, 8), one row per class
    grid = make_grid(images, nrow=s.samples_per_class, scale=4, padding=2)
    png = save_png(grid, out_dir / "label_to_digits.png")
    atomic_save_safetensors({"samples": images, "labels": torch.arange(10).repeat_interleave(s.samples_per_class)}, out_dir / "label_to_digits.safetensors")
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    metrics["png"] = str(png)
    return metrics
