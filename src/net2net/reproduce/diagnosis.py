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

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import FashionMNIST, Subset
from ..metrics import domain_fid, heldout_nll, information_estimate, mean_pairwise_distance
from ..training.in_memory import fit_unconditional_flow
from .experiment import (
    CLASSIFIER,
    Experiment,
    FashionSettings,
    autoencoder_translation_config,
    batched,
    cinn_config,
    classifier_features,
    condition_of,
    decode,
    encode_dist,
    heldout_images,
    load_images,
    optim_config,
    page_head,
    sample_codes,
    shipped_autoencoder,
    shipped_classifier,
    training_time_line,
)

__all__ = ["LAYERS", "DiagnosisSettings", "diagnosis_config", "run_diagnosis"]

log = logging.getLogger(__name__)

# name -> layer of the shipped SmallResNet (widths 16-32-64): (16, 28, 28), (64, 7, 7) and the 10 logits
LAYERS: dict[str, str] = {"early": "stage1", "middle": "stage3", "last": "fc"}


@dataclass(frozen=True)
class DiagnosisSettings(FashionSettings):
    """Sizes of one reproduction (the first four fields are those of :class:`FashionSettings`).

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

    prior_steps: int | None = None
    seed: int = 0


QUICK = DiagnosisSettings(train_images=10000, steps=1500, test_images=1000)
FULL = DiagnosisSettings()


def _source(layer: str) -> dict[str, Any]:
    return {"target": "net2net.experts.layer.classifier_expert", "params": {"path_or_model": CLASSIFIER, "layer": layer}}


def diagnosis_config(layer: str, kind: str, settings: DiagnosisSettings) -> dict[str, Any]:
    """The training config (``target``/``params`` blocks) of the ``kind`` = ``"cinn"`` or ``"mlp"`` translator of
    classifier layer ``layer`` into the autoencoder."""
    from ..experts.layer import classifier_expert

    if kind not in ("cinn", "mlp"):
        raise ValueError(f"kind must be 'cinn' or 'mlp', got {kind!r}")
    cond = condition_of(classifier_expert(CLASSIFIER, layer))
    if kind == "cinn":
        model = cinn_config(cond, settings.steps)
    else:
        model = {"target": "net2net.training.translator.TranslatorModule", "params": {
            "translator": "mlp", "batch_size": 128, "optim": optim_config(settings.steps),
            "translator_params": {"dim": 64, "hidden_dim": 256, "depth": 2, "embedding_dim": 64, **cond}}}  # fmt: skip
    return autoencoder_translation_config(f"diagnosis-{layer}", _source(layer), model, settings.steps,
                                          settings.train_images, settings.seed)  # fmt: skip


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
    from ..experts.layer import classifier_expert
    from ..flows import load_cinn
    from ..translators import load_translator

    exp = Experiment.start("diagnosis", out_dir, quick, runs_dir, settings, QUICK, FULL)
    s, g = exp.settings, exp.generator()
    classifier, target = shipped_classifier(), shipped_autoencoder()
    features = classifier_features(classifier)
    real, labels = heldout_images(s.test_images, s.seed)  # (N, 1, 28, 28)
    mean, _, z_test = sample_codes(target, real, g)  # (N, 64): codes as the cINN was trained on
    floor = domain_fid(decode(target, mean), real, features)

    # H(z_tgt): an unconditional flow on the training codes (the same for every layer)
    train_images, _ = load_images(Subset(FashionMNIST(split="train"), s.train_images, seed=s.seed))
    tm, ts = encode_dist(target, train_images)
    with torch.enable_grad():
        prior = fit_unconditional_flow(
            tm + ts * torch.randn(tm.shape, generator=g), n_blocks=12, hidden_dim=256, hidden_depth=2, batch_size=128,
            lr=1.5e-3, steps=s.prior_steps or s.steps, seed=s.seed)  # fmt: skip
    nll_uncond = heldout_nll(prior, z_test)

    rows = []
    for name, layer in LAYERS.items():
        z_src = batched(classifier_expert(CLASSIFIER, layer).encode, real)
        result: dict[str, Any] = {"layer": name, "module": layer, "shape": list(z_src.shape[1:])}
        # the cINN: samples, their FID, diversity and class, its held-out NLL and the layer's information
        run = exp.train(f"{name}/cinn", diagnosis_config(layer, "cinn", s), f"diagnosis-{name}-cinn")
        tau = load_cinn(run / "cinn.safetensors")
        cinn_images = decode(target, tau.sample(z_src, n_samples=s.samples, generator=g))  # (N, n, 1, 28, 28)
        first = cinn_images[:, 0]
        nll_cond = heldout_nll(tau, z_test, z_src)
        info = information_estimate(nll_uncond, nll_cond, dim=64)
        result.update(
            cinn_fid=domain_fid(first, real, features),
            cinn_diversity=float(mean_pairwise_distance(cinn_images).mean()),
            cinn_accuracy=float((batched(classifier, first).argmax(1) == labels).float().mean()),
            cinn_nll_nats_per_dim=float(nll_cond.mean() / 64),
            information_nats=info["mutual_information_nats"], information_stderr=info["stderr_nats"],
        )  # fmt: skip
        # the MLP: one translation per input
        run = exp.train(f"{name}/mlp", diagnosis_config(layer, "mlp", s), f"diagnosis-{name}-mlp",
                        "translator.safetensors")  # fmt: skip
        mlp = load_translator(run / "translator.safetensors").eval()
        mlp_images = decode(target, batched(mlp, z_src))
        result.update(
            mlp_fid=domain_fid(mlp_images, real, features),
            mlp_accuracy=float((batched(classifier, mlp_images).argmax(1) == labels).float().mean()),
        )
        rows.append(result)
        # figure: per row one test image, the MLP's translation, then cINN samples (Fig. S4 layout)
        k = 8
        grid = torch.cat([real[:k, None], mlp_images[:k, None], cinn_images[:k, :6]], 1)  # (k, 8, 1, 28, 28)
        exp.figure(grid.flatten(0, 1), f"diagnosis_{name}", nrow=grid.shape[1])

    summary = exp.summary(reconstruction_fid_floor=floor, entropy_tgt_nats_per_dim=float(nll_uncond.mean() / 64),
                          layers=rows, train_seconds=exp.train_seconds, seconds_total=exp.elapsed())  # fmt: skip
    exp.write(summary, _page)
    return summary


def _page(summary: dict[str, Any]) -> list[str]:
    """The lines of ``diagnosis.md``."""
    s = summary["settings"]
    lines = [
        *page_head("Diagnosis: what does a classifier layer know? (Fig. 5, supplementary Sec. E, Fig. S4)", "diagnosis", summary["quick"]),
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
    for name in LAYERS:
        lines += [f"**{name} layer** (rows: test image, MLP translation, 6 cINN samples):", "",
                  f"![{name}](figures/diagnosis_{name}.png)", ""]  # fmt: skip
    lines += [training_time_line(summary) + "."]
    return lines
