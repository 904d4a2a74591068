"""Experiment ``exemplar``: label-to-image and exemplar-guided synthesis (paper Fig. 7a, supplementary Fig. S5, S6).

Two cINNs translate the shipped Fashion-MNIST classifier (the source expert Φ) into the shipped autoencoder:

(a) conditioned on the classifier's logits (layer ``fc``; the very run of the ``diagnosis`` experiment's last
    layer, which is reused when it exists), and
(b) conditioned on the one-hot argmax of the logits (:class:`~net2net.experts.label.ClassifierArgmax`), which
    keeps the predicted class and nothing else.

Measured on held-out test images:

* translation of test images by (a) and (b): diversity (mean pairwise RMS distance of the samples of one input),
  RMS distance of the samples to the input, the classifier's accuracy on the samples w.r.t. the condition's class
  (and the true label), domain FID, held-out NLL of the image code, and from the two NLLs the information the
  logits hold about the image beyond their argmax, ``I(z; logits) − I(z; argmax)``;
* label-to-image with (b): samples for every one-hot class: accuracy and diversity per class, next to the
  diversity of real test images of the class;
* exemplar-guided synthesis with (b) (Eq. 6): for exemplars y, ``v = τ⁻¹(Θ(y) | onehot(argmax Φ(y)))``, then
  ``Λ(τ(v | onehot(c)))`` for all 10 classes c. The accuracy w.r.t. c says whether the swapped condition decides
  the class. Whether the residual carries the exemplar's appearance is measured by (i) a matching score: among
  the recombinations into one class, how often the exemplar's own one is closer (pixel RMS) to the exemplar than
  another exemplar's (0.5 = chance), and (ii) the correlation, across exemplars, between an exemplar's area and
  brightness (standardised within its class) and those of its recombinations into the other classes. The same
  numbers with random residuals ``v ~ N(0, I)`` are the control (chance).

The paper's claims to check: the argmax condition gives more varied samples than the logits (the talk: the
argmax discards the within-class information the logits keep); label-to-image samples are diverse and of the
requested class; in exemplar-guided synthesis the condition decides the class and the residual the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import FASHION_MNIST_CLASSES
from ..metrics import domain_fid, heldout_nll, information_estimate, mean_pairwise_distance
from .diagnosis import DiagnosisSettings, diagnosis_config
from .experiment import (
    CLASSIFIER,
    Experiment,
    FashionSettings,
    batched,
    classifier_features,
    decode,
    heldout_images,
    page_head,
    sample_codes,
    shipped_autoencoder,
    shipped_classifier,
)

__all__ = ["FULL", "QUICK", "ExemplarSettings", "argmax_config", "logits_config", "run_exemplar"]

log = logging.getLogger(__name__)

N_CLASSES = 10


@dataclass(frozen=True)
class ExemplarSettings(FashionSettings):
    """Sizes of one reproduction (the first four fields are those of :class:`FashionSettings`).

    Arguments:
        train_images: Fashion-MNIST training images both cINNs are trained on (as ``diagnosis``, so that the logits
            cINN is the diagnosis run of the last layer).
        steps: optimiser steps of each cINN.
        test_images: held-out test images translated by both cINNs.
        samples: translations per test image (diversity needs >= 2).
        class_samples: label-to-image samples per class.
        exemplars: test images (the first of ``test_images``) whose residuals are recombined with every class.
        seed: of the data subsets, training and sampling.
    """

    class_samples: int = 100
    exemplars: int = 500
    seed: int = 0

    # samples, class_samples, exemplars >= 2: the pairwise measures need pairs
    MINIMUMS: ClassVar[Mapping[str, int]] = {**FashionSettings.MINIMUMS, "class_samples": 2, "exemplars": 2}

    def check(self) -> None:
        if self.exemplars > self.test_images:
            raise ValueError(
                f"ExemplarSettings.exemplars ({self.exemplars}) must not exceed test_images ({self.test_images}): "
                "the exemplars are the first test images"
            )

    def diagnosis(self) -> DiagnosisSettings:
        """The diagnosis settings whose ``last``-layer cINN is this experiment's logits cINN."""
        return DiagnosisSettings(train_images=self.train_images, steps=self.steps, seed=self.seed)


# train_images/steps/seed as diagnosis's QUICK/FULL: `reproduce all` reuses its last-layer cINN; the evaluation
# sizes of QUICK keep the decoder calls (~4 ms per image on an idle core) to about 8000 images
QUICK = ExemplarSettings(train_images=10000, steps=1500, test_images=500, samples=6, class_samples=50, exemplars=150)
FULL = ExemplarSettings()


def logits_config(settings: ExemplarSettings) -> dict[str, Any]:
    """The training config of cINN (a), logits -> autoencoder: exactly the diagnosis experiment's ``last`` cINN."""
    return diagnosis_config("fc", "cinn", settings.diagnosis())


def argmax_config(settings: ExemplarSettings) -> dict[str, Any]:
    """The training config of cINN (b), one-hot argmax of the logits -> autoencoder (otherwise as (a))."""
    cfg = diagnosis_config("fc", "cinn", settings.diagnosis())
    data = cfg["data"]["params"]
    data["name"] = "exemplar-argmax"
    data["source"] = {"target": "net2net.experts.label.classifier_argmax_expert",
                      "params": {"path_or_model": CLASSIFIER}}  # fmt: skip
    return cfg


def _rms(a: Tensor, b: Tensor) -> Tensor:
    """Per-image RMS distance of ``(..., C, H, W)`` images: ``(...)``."""
    return (a - b).flatten(-3).pow(2).mean(-1).sqrt()


def _attributes(x: Tensor) -> Tensor:
    """``(B, 2)`` appearance of ``(B, 1, H, W)`` images in [-1, 1]: area (fraction of pixels brighter than 20 %
    grey) and brightness (mean intensity in [0, 1] over those pixels)."""
    u = (x.flatten(1) + 1) / 2  # (B, H*W) in [0, 1]
    mask = (u > 0.2).float()
    area = mask.mean(1)
    brightness = (u * mask).sum(1) / mask.sum(1).clamp_min(1)
    return torch.stack([area, brightness], 1)


def _standardise_within(values: Tensor, groups: Tensor) -> Tensor:
    """``values (M, K)`` minus their group mean, over the group std (per column); groups of one give 0."""
    out = torch.zeros_like(values)
    for g in groups.unique():
        idx = groups == g
        v = values[idx]
        out[idx] = (v - v.mean(0)) / v.std(0, unbiased=False).clamp_min(1e-8)
    return out


def _pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation of two ``(n,)`` vectors (nan when one is constant or n < 3)."""
    if len(a) < 3:
        return float("nan")
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    denom = a.norm() * b.norm()
    return float(a @ b / denom) if denom > 0 else float("nan")


def _swap_measures(swaps: Tensor, exemplars: Tensor, classes: Tensor, classifier: Any) -> dict[str, float]:
    """Measures of recombinations ``swaps (M, 10, 1, H, W)`` (exemplar m in class c) of ``exemplars (M, 1, H, W)``
    whose own (predicted) classes are ``classes (M,)``; only true swaps (c != own class) count, except for
    ``own_class_rms``."""
    m = len(exemplars)
    target = torch.arange(N_CLASSES).expand(m, N_CLASSES)  # (M, 10)
    swap = target != classes[:, None]  # (M, 10): a real class swap
    predicted = batched(classifier, swaps.flatten(0, 1)).argmax(1).view(m, N_CLASSES)
    accuracy = float((predicted == target)[swap].float().mean())
    # matching: within class c, is exemplar j's own recombination closer to it than another exemplar's?
    flat_x, flat_y = swaps.flatten(2), exemplars.flatten(1)  # (M, 10, H*W), (M, H*W)
    wins = []
    for c in range(N_CLASSES):
        idx = swap[:, c].nonzero().flatten()
        k = len(idx)
        if k < 2:
            continue
        d = torch.cdist(flat_x[idx, c].double(), flat_y[idx].double())  # (k, k): recombination i to exemplar j
        farther = (d > d.diag()[None, :]).double()  # (k, k): other recombination i farther from exemplar j
        farther.fill_diagonal_(0)
        wins.append(farther.sum(0) / (k - 1))  # (k,) per exemplar j
    matching = float(torch.cat(wins).mean()) if wins else float("nan")
    # appearance: exemplar's attributes (standardised within its class) vs its recombinations' (per class c)
    attr_y = _standardise_within(_attributes(exemplars), classes)  # (M, 2)
    attr_x = _attributes(swaps.flatten(0, 1)).view(m, N_CLASSES, 2)
    corr = torch.tensor([[_pearson(attr_y[swap[:, c], a], attr_x[swap[:, c], c, a]) for c in range(N_CLASSES)]
                         for a in range(2)])  # fmt: skip  # (2, 10)
    own = swaps[torch.arange(m), classes]  # (M, 1, H, W): recombination in the exemplar's own class
    return {
        "swap_accuracy": accuracy,
        "matching": matching,
        "corr_area": float(corr[0].nanmean()),
        "corr_brightness": float(corr[1].nanmean()),
        "own_class_rms": float(_rms(own, exemplars).mean()),
    }


@torch.no_grad()
def run_exemplar(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                 settings: ExemplarSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/exemplar.md``, its figures and ``exemplar.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (10k training images, 1500 steps: diagnosis's quick logits cINN is reused)
            instead of the full ones.
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
    """
    from ..experts.label import classifier_argmax_expert
    from ..experts.layer import classifier_expert
    from ..flows import load_cinn

    exp = Experiment.start("exemplar", out_dir, quick, runs_dir, settings, QUICK, FULL)
    s = exp.settings
    taus = {name: load_cinn(exp.train(name, cfg, run_name) / "cinn.safetensors")
            for name, run_name, cfg in (("logits", "diagnosis-last-cinn", logits_config(s)),
                                        ("argmax", "exemplar-argmax-cinn", argmax_config(s)))}  # fmt: skip
    g = exp.generator()

    classifier, target = shipped_classifier(), shipped_autoencoder()
    features = classifier_features(classifier)
    sources: dict[str, Any] = {"logits": classifier_expert(CLASSIFIER, "fc"), "argmax": classifier_argmax_expert(CLASSIFIER)}

    real, labels = heldout_images(s.test_images, s.seed)  # (N, 1, 28, 28)
    conds = {name: batched(src.encode, real) for name, src in sources.items()}  # (N, 10) each
    pred = conds["logits"].argmax(1)  # (N,): the condition's class
    mean, _, z_test = sample_codes(target, real, g)  # (N, 64) each: codes as the cINNs were trained on
    recon = decode(target, mean)

    # 1. translation of held-out test images: logits vs argmax
    rows, samples, nlls = [], {}, {}
    for name, tau in taus.items():
        images = decode(target, tau.sample(conds[name], n_samples=s.samples, generator=g))  # (N, S, 1, 28, 28)
        predicted = batched(classifier, images.flatten(0, 1)).argmax(1)  # (N*S,)
        nlls[name] = heldout_nll(tau, z_test, conds[name])
        rows.append({
            "condition": name,
            "diversity": float(mean_pairwise_distance(images).mean()),
            "distance_to_input": float(_rms(images, real[:, None]).mean()),
            "accuracy_condition": float((predicted == pred.repeat_interleave(s.samples)).float().mean()),
            "accuracy_label": float((predicted == labels.repeat_interleave(s.samples)).float().mean()),
            "fid": domain_fid(images[:, 0], real, features),
            "nll_nats_per_dim": float(nlls[name].mean() / 64),
        })  # fmt: skip
        samples[name] = images
    extra = information_estimate(nlls["argmax"], nlls["logits"])  # I(z; logits) - I(z; argmax)

    # 2. label-to-image with the argmax cINN
    onehots = torch.eye(N_CLASSES)
    per_class = decode(target, taus["argmax"].sample(onehots, n_samples=s.class_samples, generator=g))
    # per_class: (10, K, 1, 28, 28)
    predicted = batched(classifier, per_class.flatten(0, 1)).argmax(1).view(N_CLASSES, s.class_samples)
    diversity = mean_pairwise_distance(per_class)  # (10,)
    classes = []
    for c in range(N_CLASSES):
        is_c = labels == c
        real_c, recon_c = real[is_c][: s.class_samples], recon[is_c][: s.class_samples]
        enough = len(real_c) >= 2
        classes.append({
            "class": FASHION_MNIST_CLASSES[c],
            "accuracy": float((predicted[c] == c).float().mean()),
            "accuracy_real": float((pred[is_c] == c).float().mean()) if is_c.any() else None,
            "diversity": float(diversity[c]),
            "diversity_real": float(mean_pairwise_distance(real_c[None]).mean()) if enough else None,
            "diversity_reconstructions": float(mean_pairwise_distance(recon_c[None]).mean()) if enough else None,
        })  # fmt: skip
    label2image = {
        "accuracy": float((predicted == torch.arange(N_CLASSES)[:, None]).float().mean()),
        "diversity": float(diversity.mean()),
        "fid": domain_fid(per_class.flatten(0, 1), real, features),
        "classes": classes,
    }

    # 3. exemplar-guided synthesis (Eq. 6) with the argmax cINN; control: random residuals
    m = s.exemplars
    tau = taus["argmax"]
    own = F.one_hot(pred[:m], N_CLASSES).float()  # (M, 10): the exemplars' own conditions
    residuals = {"exemplar": tau.residual(mean[:m], own), "random": torch.randn(m, 64, generator=g)}
    swap_rows, swaps = [], {}
    for name, v in residuals.items():
        z = torch.stack([tau.inverse(v, onehots[c].expand(m, N_CLASSES))[0] for c in range(N_CLASSES)], 1)
        # z: (M, 10, 64), exemplar m's residual under class c
        images = decode(target, z)  # (M, 10, 1, 28, 28)
        swap_rows.append({"residual": name, **_swap_measures(images, real[:m], pred[:m], classifier)})
        swaps[name] = images
    recon_rms = float(_rms(recon[:m], real[:m]).mean())

    figures = _figures(exp, real, pred, samples, per_class, swaps["exemplar"])
    summary = exp.summary(
        translation=rows, information_logits_beyond_argmax_nats=extra["mutual_information_nats"],
        information_logits_beyond_argmax_stderr=extra["stderr_nats"],
        label_to_image=label2image, exemplar_guided=swap_rows, reconstruction_rms=recon_rms,
        figures=figures, train_seconds=exp.train_seconds, seconds_total=exp.elapsed(),
    )  # fmt: skip
    exp.write(summary, _page)
    return summary


def _figures(exp: Experiment[ExemplarSettings], real: Tensor, pred: Tensor, samples: dict[str, Tensor],
             per_class: Tensor, swaps: Tensor) -> dict[str, str]:  # fmt: skip
    """Write the three figures; returns ``{name: path relative to out}``."""
    settings = exp.settings
    blank = torch.ones(1, 1, 28, 28)  # a white tile separating groups of columns
    # exemplars (rows, one per predicted class where the exemplars have one) x the 10 classes, as Fig. S5
    m = len(swaps)
    rows = [int((pred[:m] == c).nonzero()[0]) for c in range(N_CLASSES) if (pred[:m] == c).any()]
    swap_grid = torch.cat([torch.cat([real[i : i + 1], blank, swaps[i]]) for i in rows])  # (R*12, 1, 28, 28)
    exp.figure(swap_grid, "exemplar_swap", nrow=N_CLASSES + 2)
    # label-to-image: classes (rows) x samples, as Fig. S6
    k = min(10, settings.class_samples)
    exp.figure(per_class[:, :k].flatten(0, 1), "exemplar_label2image", nrow=k)
    # test images: input | samples given the logits | samples given the argmax
    s, r = min(6, settings.samples), min(8, len(real))
    grid = torch.cat([torch.cat([real[i : i + 1], blank, samples["logits"][i, :s], blank, samples["argmax"][i, :s]])
                      for i in range(r)])  # fmt: skip  # (r * (2s+3), 1, 28, 28)
    exp.figure(grid, "exemplar_logits_vs_argmax", nrow=2 * s + 3)
    return {name: f"figures/exemplar_{name}.png" for name in ("swap", "label2image", "logits_vs_argmax")}


def _page(summary: dict[str, Any]) -> list[str]:
    """The lines of ``exemplar.md``."""
    s = summary["settings"]
    t = {r["condition"]: r for r in summary["translation"]}
    l2i = summary["label_to_image"]
    lines = [
        *page_head("Label-to-image and exemplar-guided synthesis (Fig. 7a, supplementary Fig. S5, S6)", "exemplar", summary["quick"]),
        "Source Φ: the shipped Fashion-MNIST classifier, read as (a) its logits (the `diagnosis` experiment's "
        "last-layer cINN, reused) or (b) the one-hot argmax of its logits; target: the shipped autoencoder "
        f"(z ∈ R⁶⁴). Each cINN trained {s['steps']} steps on {s['train_images']} training images; evaluated on "
        f"{s['test_images']} held-out test images. Distances are RMS over pixels in [-1, 1]; accuracies are the "
        "classifier's on the generated images.",
        "",
        f"## Translating test images ({s['samples']} samples each)",
        "",
        "| condition | diversity | RMS to the input | accuracy w.r.t. condition class | accuracy w.r.t. label | "
        "FID | NLL (nats/dim) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["translation"]:
        lines.append(
            f"| {r['condition']} | {r['diversity']:.3f} | {r['distance_to_input']:.3f} | "
            f"{100 * r['accuracy_condition']:.1f} % | {100 * r['accuracy_label']:.1f} % | {r['fid']:.2f} | "
            f"{r['nll_nats_per_dim']:.3f} |"
        )
    a, b = t["argmax"], t["logits"]
    more = "more" if a["diversity"] > b["diversity"] else "less"
    farther = "farther from" if a["distance_to_input"] > b["distance_to_input"] else "closer to"
    info = summary["information_logits_beyond_argmax_nats"]
    info_se = summary["information_logits_beyond_argmax_stderr"]
    lines += [
        "",
        f"Given only the argmax, samples vary {more} ({a['diversity']:.3f} vs {b['diversity']:.3f}) and lie {farther} "
        f"the input ({a['distance_to_input']:.3f} vs {b['distance_to_input']:.3f}). The logits hold "
        f"{info:.1f} ± {info_se:.1f} nats about the image code beyond their argmax (difference of the two held-out "
        "NLLs, I(z; logits) − I(z; argmax)). FID: domain FID in the classifier's pooled features, one sample per test "
        "image against the test images.",
        "",
        "![logits vs argmax](figures/exemplar_logits_vs_argmax.png)",
        "",
        f"Rows: a test image, then {min(6, s['samples'])} samples given its logits, then "
        f"{min(6, s['samples'])} given its argmax.",
        "",
        f"## Label-to-image ({s['class_samples']} samples per one-hot class, cINN (b))",
        "",
        "| class | accuracy | classifier on real test images | diversity | diversity of real test images | "
        "diversity of their reconstructions |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip

    def fmt(value: float | None, percent: bool = False) -> str:
        return "–" if value is None else (f"{100 * value:.1f} %" if percent else f"{value:.3f}")

    def avg(key: str) -> float | None:
        values = [c[key] for c in l2i["classes"] if c[key] is not None]
        return sum(values) / len(values) if values else None

    for c in l2i["classes"]:
        lines.append(
            f"| {c['class']} | {fmt(c['accuracy'], True)} | {fmt(c['accuracy_real'], True)} | {fmt(c['diversity'])} | "
            f"{fmt(c['diversity_real'])} | {fmt(c['diversity_reconstructions'])} |"
        )
    lines += [
        f"| **all** | {fmt(l2i['accuracy'], True)} | {fmt(avg('accuracy_real'), True)} | {fmt(l2i['diversity'])} | "
        f"{fmt(avg('diversity_real'))} | {fmt(avg('diversity_reconstructions'))} |",
        "",
        "Accuracy: the classifier recognises the requested class in the samples; next to it, its own accuracy on "
        "real test images of the class (its confusions, e.g. shirt / T-shirt / coat / pullover, are those the "
        "cINN learnt from, since it was trained on the classifier's predictions). Diversity: mean pairwise RMS "
        "distance between the samples of one class; real test images (and, since every sample passes through the "
        "decoder, their autoencoder reconstructions) of the class are the reference. Domain FID of all "
        f"label-to-image samples against the test images: {l2i['fid']:.2f}. Rows of the figure: the 10 classes "
        "(T-shirt/top … ankle boot).",
        "",
        "![label to image](figures/exemplar_label2image.png)",
        "",
        f"## Exemplar-guided synthesis ({s['exemplars']} exemplars × 10 classes, cINN (b), Eq. 6)",
        "",
        "Residual `v = τ⁻¹(Θ(y) | onehot(argmax Φ(y)))` of exemplar y (Θ: the encoder's mean), recombined as "
        "`Λ(τ(v | onehot(c)))` with every class c. Measures over the swaps (c ≠ the exemplar's class): "
        "*swap accuracy*: the classifier sees class c; *matching*: among the recombinations into one class, the "
        "fraction of other exemplars' recombinations that lie farther (pixel RMS) from the exemplar than its own "
        "(0.5 = no trace of the exemplar); *r(area)*, *r(brightness)*: Pearson correlation across exemplars between "
        "an exemplar's area (fraction of pixels brighter than 20 % grey) or brightness (mean intensity of those "
        "pixels), standardised within its own class, and the same attribute of its recombination into class c "
        "(mean over c). *Own class*: RMS from the recombination in the exemplar's own class to the exemplar (the "
        "cINN is invertible, so with the exemplar's residual this is the autoencoder's reconstruction, "
        f"{summary['reconstruction_rms']:.3f}; with a random residual it is a random sample of that class). "
        "Control: random residuals v ~ N(0, I).",
        "",
        "| residual | swap accuracy | matching | r(area) | r(brightness) | own class: RMS to exemplar |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["exemplar_guided"]:
        lines.append(
            f"| {r['residual']} | {100 * r['swap_accuracy']:.1f} % | {r['matching']:.3f} | {r['corr_area']:.2f} | "
            f"{r['corr_brightness']:.2f} | {r['own_class_rms']:.3f} |"
        )
    e = {r["residual"]: r for r in summary["exemplar_guided"]}
    lines += [
        "",
        f"Does the swapped condition decide the class? {100 * e['exemplar']['swap_accuracy']:.1f} % of the "
        f"recombinations are recognised as the new class ({100 * e['random']['swap_accuracy']:.1f} % with random "
        f"residuals). Does the residual carry the exemplar's appearance? Matching {e['exemplar']['matching']:.3f} "
        f"(control {e['random']['matching']:.3f}), brightness correlation {e['exemplar']['corr_brightness']:.2f} "
        f"(control {e['random']['corr_brightness']:.2f}), area correlation {e['exemplar']['corr_area']:.2f} "
        f"(control {e['random']['corr_area']:.2f}).",
        "",
        "![exemplar-guided synthesis](figures/exemplar_swap.png)",
        "",
        "Rows: an exemplar (one per class it is classified as), then its residual recombined with the 10 classes "
        "(T-shirt/top … ankle boot).",
        "",
        f"Training time per run (s, 0 = reused): logits {summary['train_seconds']['logits']}, argmax "
        f"{summary['train_seconds']['argmax']}; total {summary['seconds_total']:.0f} s.",
    ]
    return lines
