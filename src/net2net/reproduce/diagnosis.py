"""Experiment ``diagnosis``: what does a layer of a classifier know? (paper Fig. 5, supplementary Sec. E, Fig. S4)

An early, a middle and the last layer of the Fashion-MNIST classifier (the source expert Φ) are translated into the
Fashion-MNIST autoencoder (the target expert) twice: by a cINN, which samples ``p(z_tgt | z_src)``, and by the
deterministic MLP translator of the ablation (the same kind of embedder plus a fully connected network, trained by
mean squared error on the same pairs). Measured on held-out test images, per layer:

* domain FID (Fréchet distance in the classifier's pooled features) of the translations against real test images,
  next to the floor of the autoencoder's own reconstructions;
* diversity: mean pairwise RMS distance between the cINN's translations of one input (the MLP has one output);
* the classifier's accuracy on the translations w.r.t. the input's class (does the layer keep the class?);
* the cINN's held-out NLL of ``z_tgt`` (nats/dim) and the information the layer holds about the image code,
  ``I(z_src; z_tgt) ≈ H(z_tgt) − H(z_tgt | z_src)``, from an unconditional flow's and the cINN's held-out NLL.

The paper's finding to check: both translators work on early layers (which determine the image); at the last layer
the MLP regresses to a mean image per class (FID far worse, no diversity) while the cINN stays sharp and diverse.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import FashionMNIST, Subset
from ..images import make_grid
from ..io import atomic_path
from ..metrics import domain_fid, heldout_nll, information_estimate, mean_pairwise_distance
from ..training.in_memory import fit_unconditional_flow
from ._common import (
    AUTOENCODER,
    CLASSIFIER,
    batched,
    cinn_config,
    classifier_features,
    encode_dist,
    load_images,
    optim_config,
    runs_root,
    train_once,
    trainer_config,
)

__all__ = ["LAYERS", "DiagnosisSettings", "diagnosis_config", "run_diagnosis"]

log = logging.getLogger(__name__)

# name -> layer of the shipped SmallResNet (widths 16-32-64): (16, 28, 28), (64, 7, 7) and the 10 logits
LAYERS: dict[str, str] = {"early": "stage1", "middle": "stage3", "last": "fc"}


@dataclass(frozen=True)
class DiagnosisSettings:
    """Sizes of one reproduction.

    Arguments:
        train_images: Fashion-MNIST training images encoded and trained on (the early layer's activations take
            50 kB per image in the latent cache).
        steps: optimiser steps of every cINN and MLP.
        test_images: held-out test images evaluated.
        samples: cINN translations per test image.
        prior_steps: optimiser steps of the unconditional flow that estimates H(z_tgt) (None: ``steps``); it has the
            cINN's blocks and widths, so that the two NLLs differ by the condition, not by capacity.
        seed: of the data subsets, training and sampling.
    """

    train_images: int = 60000
    steps: int = 6000
    test_images: int = 2000
    samples: int = 8
    prior_steps: int | None = None
    seed: int = 0


QUICK = DiagnosisSettings(train_images=10000, steps=1500, test_images=1000)
FULL = DiagnosisSettings()


def _source(layer: str) -> dict[str, Any]:
    return {"target": "net2net.experts.layer.classifier_expert", "params": {"path_or_model": CLASSIFIER, "layer": layer}}


def _condition(layer: str) -> dict[str, Any]:
    """``cond_dim`` or ``cond_shape`` of the layer's activation."""
    from ..experts.layer import classifier_expert

    with torch.no_grad():
        shape = tuple(classifier_expert(CLASSIFIER, layer).encode(torch.zeros(1, 1, 28, 28)).shape[1:])
    return {"cond_dim": shape[0]} if len(shape) == 1 else {"cond_shape": list(shape)}


def diagnosis_config(layer: str, kind: str, settings: DiagnosisSettings) -> dict[str, Any]:
    """The training config (``target``/``params`` blocks) of the ``kind`` = ``"cinn"`` or ``"mlp"`` translator of
    classifier layer ``layer`` into the autoencoder."""
    if kind not in ("cinn", "mlp"):
        raise ValueError(f"kind must be 'cinn' or 'mlp', got {kind!r}")
    cond = _condition(layer)
    if kind == "cinn":
        model = cinn_config(cond, settings.steps)
    else:
        model = {"target": "net2net.training.translator.TranslatorModule", "params": {
            "translator": "mlp", "batch_size": 128, "optim": optim_config(settings.steps),
            "translator_params": {"dim": 64, "hidden_dim": 256, "depth": 2, "embedding_dim": 64, **cond}}}
    fmnist = {"target": "net2net.data.FashionMNIST", "params": {"split": "train"}}
    test = {"target": "net2net.data.FashionMNIST", "params": {"split": "test"}}
    return {
        "model": model,
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "name": f"diagnosis-{layer}", "batch_size": 128, "source": _source(layer),
            "target": {"target": "net2net.experts.target.load_autoencoder_target", "params": {"path": AUTOENCODER}},
            "train": {"target": "net2net.data.Subset", "params": {
                "dataset": fmnist, "n": settings.train_images, "seed": settings.seed}},
            "validation": {"target": "net2net.data.Subset", "params": {"dataset": test, "n": 512, "seed": 1}}}},
        "seed": settings.seed,
        "lightning": trainer_config(settings.steps),
    }  # fmt: skip


@torch.no_grad()
def run_diagnosis(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                  settings: DiagnosisSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/diagnosis.md``, its figures and ``diagnosis.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (10k training images, 1500 steps) instead of the full ones.
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
    """
    from ..experts.classifier import load_classifier
    from ..experts.layer import classifier_expert
    from ..experts.target import load_autoencoder_target
    from ..flows import load_cinn
    from ..translators import load_translator

    settings = settings or (QUICK if quick else FULL)
    out = Path(out_dir)
    runs = runs_root(runs_dir)
    t_start = time.perf_counter()
    g = torch.Generator().manual_seed(settings.seed)

    classifier = load_classifier(CLASSIFIER)
    target = load_autoencoder_target(AUTOENCODER)

    features = classifier_features(classifier)
    test = Subset(FashionMNIST(split="test"), settings.test_images, seed=settings.seed + 2)
    real, labels = load_images(test)  # (N, 1, 28, 28)
    mean, std = encode_dist(target, real)
    z_test = mean + std * torch.randn(mean.shape, generator=g)  # (N, 64): codes as the cINN was trained on
    recon = batched(target.decode, mean).clamp(-1, 1)
    floor = domain_fid(recon, real, features)

    # H(z_tgt): an unconditional flow on the training codes (the same for every layer)
    train = Subset(FashionMNIST(split="train"), settings.train_images, seed=settings.seed)
    train_images, _ = load_images(train)
    tm, ts = encode_dist(target, train_images)
    with torch.enable_grad():
        prior = fit_unconditional_flow(
            tm + ts * torch.randn(tm.shape, generator=g), n_blocks=12, hidden_dim=256, hidden_depth=2, batch_size=128,
            lr=1.5e-3, steps=settings.prior_steps or settings.steps, seed=settings.seed)  # fmt: skip
    nll_uncond = heldout_nll(prior, z_test)

    rows, figures, seconds = [], {}, {}
    for name, layer in LAYERS.items():
        expert = classifier_expert(CLASSIFIER, layer)
        z_src = batched(expert.encode, real)
        result: dict[str, Any] = {"layer": name, "module": layer, "shape": list(z_src.shape[1:])}
        for kind, weights in (("cinn", "cinn.safetensors"), ("mlp", "translator.safetensors")):
            run, secs = train_once(diagnosis_config(layer, kind, settings), runs, f"diagnosis-{name}-{kind}", weights)
            seconds[f"{name}/{kind}"] = round(secs, 1)
            if kind == "cinn":
                tau = load_cinn(run / weights)
                z = tau.sample(z_src, n_samples=settings.samples, generator=g)  # (N, n, 64)
                images = batched(target.decode, z.flatten(0, 1)).clamp(-1, 1).view(len(real), settings.samples, 1, 28, 28)
                first = images[:, 0]
                nll_cond = heldout_nll(tau, z_test, z_src)
                info = information_estimate(nll_uncond, nll_cond, dim=64)
                result.update(
                    cinn_fid=domain_fid(first, real, features),
                    cinn_diversity=float(mean_pairwise_distance(images).mean()),
                    cinn_accuracy=float((batched(classifier, first).argmax(1) == labels).float().mean()),
                    cinn_nll_nats_per_dim=float(nll_cond.mean() / 64),
                    information_nats=info["mutual_information_nats"], information_stderr=info["stderr_nats"],
                )  # fmt: skip
                cinn_images = images
            else:
                mlp = load_translator(run / weights)
                mlp_images = batched(lambda c: target.decode(mlp(c)), z_src).clamp(-1, 1)
                result.update(
                    mlp_fid=domain_fid(mlp_images, real, features),
                    mlp_accuracy=float((batched(classifier, mlp_images).argmax(1) == labels).float().mean()),
                )
        rows.append(result)
        # figure: per row one test image, the MLP's translation, then cINN samples (Fig. S4 layout)
        k = 8
        grid = torch.cat([real[:k, None], mlp_images[:k, None], cinn_images[:k, :6]], 1)  # (k, 8, 1, 28, 28)
        figures[name] = make_grid(grid.flatten(0, 1) * 0.5 + 0.5, nrow=grid.shape[1], scale=2, padding=2)

    summary = {
        "settings": asdict(settings), "quick": quick, "reconstruction_fid_floor": floor,
        "entropy_tgt_nats_per_dim": float(nll_uncond.mean() / 64), "layers": rows, "train_seconds": seconds,
        "seconds_total": round(time.perf_counter() - t_start, 1),
    }  # fmt: skip
    _write_page(out, summary, figures)
    return summary


def _write_page(out: Path, summary: dict[str, Any], figures: dict[str, Tensor]) -> None:
    from PIL import Image

    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    for name, grid in figures.items():
        arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).squeeze(-1).numpy()
        with atomic_path(fig_dir / f"diagnosis_{name}.png") as tmp:
            Image.fromarray(arr).save(tmp, format="PNG")
    with atomic_path(out / "diagnosis.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    s = summary["settings"]
    mode = "--quick" if summary["quick"] else ""
    lines = [
        "# Diagnosis: what does a classifier layer know? (Fig. 5, supplementary Sec. E, Fig. S4)",
        "",
        f"Reproduce: `{('net2net reproduce diagnosis ' + mode).strip()}`",
        "",
        f"Source Φ: layers of the shipped Fashion-MNIST classifier; target: the shipped autoencoder (z ∈ R⁶⁴). "
        f"Each translator trained {s['steps']} steps on {s['train_images']} training images; evaluated on "
        f"{s['test_images']} test images ({s['samples']} cINN samples each). Domain FID: Fréchet distance in the "
        f"classifier's pooled features (floor: the autoencoder's reconstructions, "
        f"{summary['reconstruction_fid_floor']:.2f}). H(z_tgt) from an unconditional flow: "
        f"{summary['entropy_tgt_nats_per_dim']:.3f} nats/dim.",
        "",
        "| layer | activation | information (nats) | cINN NLL (nats/dim) | FID cINN | FID MLP | diversity cINN | "
        "accuracy cINN | accuracy MLP |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["layers"]:
        lines.append(
            f"| {r['layer']} ({r['module']}) | {'x'.join(map(str, r['shape']))} | {r['information_nats']:.1f} ± "
            f"{r['information_stderr']:.1f} | {r['cinn_nll_nats_per_dim']:.3f} | {r['cinn_fid']:.2f} | {r['mlp_fid']:.2f} | "
            f"{r['cinn_diversity']:.3f} | {100 * r['cinn_accuracy']:.1f} % | {100 * r['mlp_accuracy']:.1f} % |"
        )
    lines += ["", "Diversity: mean pairwise RMS distance (images in [-1, 1]) between the cINN's translations of one input; "
              "the MLP translator is deterministic (0). Accuracy: the classifier's on the translations, w.r.t. the "
              "input's class.", ""]  # fmt: skip
    for name in figures:
        lines += [f"**{name} layer** (rows: test image, MLP translation, 6 cINN samples):", "",
                  f"![{name}](figures/diagnosis_{name}.png)", ""]  # fmt: skip
    lines += [f"Training time per run (s, 0 = reused): {json.dumps(summary['train_seconds'])}; total "
              f"{summary['seconds_total']:.0f} s.", ""]  # fmt: skip
    with atomic_path(out / "diagnosis.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
