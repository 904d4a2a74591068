"""The small demo (``net2net demo digits``): translate a class label into handwritten digits with a cINN.

Source expert: the one-hot class label (the original's "Labelator"). Target: the 8x8 digits of
scikit-learn, dequantised pixels as ``z_tgt`` (64-d). The cINN of ``configs/demo/digits.yaml`` learns
``p(image | label)``; the demo samples several digits per class, writes one PNG grid, and measures what it learned
on the held-out split: NLL (nats and bits per dimension), how often a classifier trained on real digits recognises
the sampled class, and the diversity of samples against that of real digits.

Training goes through the run manager (:func:`net2net.training.runs.train_or_reuse`): the run folder is
``<cache>/runs/digits-<key>`` (``$NET2NET_CACHE``, default ``~/.cache/net2net``), keyed by the config, and the
next call with the same config reuses it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..data import Digits
from ..flows import ConditionalINN, nll
from ..images import make_grid, save_png
from ..io import atomic_path, atomic_save_safetensors
from ..training.runs import job_config, train_or_reuse

__all__ = ["DIGITS_CONFIG", "LabelToDigits", "digits_config", "run_demo"]

log = logging.getLogger(__name__)

DIGITS_CONFIG = "demo/digits.yaml"  # the shipped config (net2net.config.shipped_config)
LEVELS = 16  # sklearn digits take the values 0..16
STEP = 2.0 / LEVELS  # spacing of those levels once mapped to [-1, 1]


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
def evaluate(
    tau: ConditionalINN, train: LabelToDigits, test: LabelToDigits, seed: int = 0, eval_samples_per_class: int = 100
) -> dict[str, Any]:
    """Held-out NLL, class accuracy of samples under a classifier of real digits, and diversity."""
    tau.eval()
    g = torch.Generator().manual_seed(seed + 1)
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
    n = eval_samples_per_class
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


def digits_config(steps: int | None = None, seed: int | None = None, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The demo's training config: ``configs/demo/digits.yaml`` with ``steps``, ``seed`` and dotlist ``overrides``
    (see :func:`net2net.training.runs.job_config`)."""
    return job_config(DIGITS_CONFIG, steps=steps, seed=seed, overrides=overrides)


def run_demo(
    out_dir: str | Path = "outputs/demo",
    run_dir: str | Path | None = None,
    *,
    steps: int | None = None,
    seed: int | None = None,
    overrides: Sequence[str] = (),
    samples_per_class: int = 10,
    eval_samples_per_class: int = 100,
    retrain: bool = False,
) -> dict[str, Any]:
    """Train (or reuse) the label-to-digits cINN, write ``label_to_digits.png`` and ``metrics.json``.

    Arguments:
        out_dir: where the PNG grid, the sampled tensors (safetensors) and the metrics go.
        run_dir: the training run folder (default ``<cache>/runs/digits-<key>``, reused by the next call).
        steps: training steps (default: the config's 1500).
        seed: seed of the data split, training and sampling (default: the config's 0).
        overrides: dotlist overrides of the config, e.g. ``["model.params.flow_config.params.n_blocks=2"]``.
        samples_per_class: columns of the PNG grid.
        eval_samples_per_class: samples classified per class for the accuracy.
        retrain: train again even when a finished run exists.

    Returns:
        The metrics, also written to ``out_dir/metrics.json``, with ``png``.
    """
    from .. import load_cinn

    for name, value in (("samples_per_class", samples_per_class), ("eval_samples_per_class", eval_samples_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an int >= 2, got {value!r}")
    cfg = digits_config(steps, seed, overrides)
    seed = int(cfg["seed"])
    out_dir = Path(out_dir)
    run = train_or_reuse(cfg, "digits", folder=run_dir, retrain=retrain)
    tau = load_cinn(run.path / "cinn.safetensors")
    train, test = LabelToDigits("train", seed), LabelToDigits("test", seed)

    metrics = evaluate(tau, train, test, seed, eval_samples_per_class)
    metrics.update(trained_now=run.trained_now, train_seconds=round(run.train_seconds, 1), run_dir=str(run.path),
                   steps=cfg["lightning"]["trainer"]["max_steps"], seed=seed)  # fmt: skip

    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        samples = tau.sample(F.one_hot(torch.arange(10), 10).float(), samples_per_class, generator=g)
    images = samples.reshape(-1, 1, 8, 8)  # (10, n, 64) -> (10 * n, 1, 8, 8), one row per class
    grid = make_grid(images, nrow=samples_per_class, scale=4, padding=2)
    png = save_png(grid, out_dir / "label_to_digits.png")
    labels = torch.arange(10).repeat_interleave(samples_per_class)
    atomic_save_safetensors({"samples": images, "labels": labels}, out_dir / "label_to_digits.safetensors")
    with atomic_path(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    metrics["png"] = str(png)
    return metrics
