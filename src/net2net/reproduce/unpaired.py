"""Experiment ``unpaired``: unpaired translation between domains (paper Fig. 8, Sec. 4.3; supplementary Sec. D,
Fig. S2, S3).

The source expert Φ is the domain label (one-hot, :class:`net2net.experts.LabelEncoder`); the target expert is the
autoencoder trained on the union of three 28x28 grey domains, MNIST (5k) ∪ Fashion-MNIST ∪ scikit-learn's 8x8
digits (upsampled), ``pretrained:digits_union_autoencoder`` (``configs/autoencoder/digits_union.yaml``). A cINN τ
learns ``p(z | domain)``; an image ``y`` of domain ``a`` is translated to domain ``b`` by its residual
``v = τ⁻¹(Θ(y) | a)`` and ``y* = Λ(τ(v | b))`` (:meth:`net2net.apps.translate.Net2Net.transfer`). There is no
paired data: the only supervision is which set an image comes from.

Measured (held-out test images of each domain; two tiny CNNs trained inside the experiment on the union's training
images and their autoencoder reconstructions, so that decoded images are not judged by blur alone):

* a domain classifier's accuracy on real test images, on their reconstructions (the ceiling for decoded images),
  on samples ``τ(v | b)``, ``v ~ N(0, I)``, of every domain, and on the transfers ``a -> b`` of all 3x3 pairs (the
  diagonal ``a -> a`` is the reconstruction: τ is invertible);
* diversity of the samples of a domain (mean pairwise RMS distance) next to that of real test images;
* the cINN's held-out NLL of the test codes and the domain it finds most likely for them (a Bayes classifier);
* what ``v`` carries: a linear probe's accuracy at predicting the domain from ``v`` (ideally chance: ``v`` is
  independent of the domain) against the same probe on the code ``z``; for the same ``v`` sent into every domain,
  the pixel distance between the two domains' images relative to that between images of different ``v``
  (< 1: the same ``v`` gives a related image structure); and, between the two digit domains (MNIST and 8x8
  digits share the labels 0-9), how often a digit classifier gives the same digit for the same ``v`` and keeps the
  input's digit through a transfer.

The paper's claim to check (Sec. D): "because the residual v is independent of z_Φ, it captures precisely the
commonalities between source and target set and therefore establishes meaningful correspondences between them";
translations land in the target domain and keep what the domains share (the pose of a face in Fig. 8 / S2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..config import instantiate_from_config
from ..metrics import heldout_nll, mean_pairwise_distance
from .experiment import (
    Experiment,
    Settings,
    batched,
    cinn_config,
    decode,
    encode_dist,
    load_images,
    page_head,
    trainer_config,
    training_time_line,
)

__all__ = [
    "DIGIT_DOMAINS",
    "DOMAINS",
    "UNION_AUTOENCODER",
    "UnpairedSettings",
    "run_unpaired",
    "tiny_cnn",
    "train_image_classifier",
    "unpaired_config",
]

log = logging.getLogger(__name__)

UNION_AUTOENCODER = "pretrained:digits_union_autoencoder"
# domain index (the order of configs/autoencoder/digits_union.yaml) -> (name, dataset class, page title)
DOMAINS: tuple[tuple[str, str, str], ...] = (
    ("mnist", "net2net.data.MNIST5k", "MNIST"),
    ("fashion_mnist", "net2net.data.FashionMNIST", "Fashion-MNIST"),
    ("digits", "net2net.data.Digits", "8x8 digits"),
)
DIGIT_DOMAINS = (0, 2)  # MNIST and the 8x8 digits share the labels 0-9
_GROUP = 8  # images per group when measuring diversity


@dataclass(frozen=True)
class UnpairedSettings(Settings):
    """Sizes of one reproduction.

    Arguments:
        autoencoder: the union autoencoder (``pretrained:NAME``, an ``autoencoder.safetensors`` or a checkpoint).
        max_per_domain: training images per domain (a seeded subset; Fashion-MNIST has 60k, MNIST-5k 4000, the
            8x8 digits 1438), as the autoencoder was trained.
        steps: optimiser steps of the cINN.
        test_per_domain: held-out test images per domain (the 8x8 digits have 359).
        samples: samples ``τ(v | b)`` per domain (the same ``v`` for every domain).
        classifier_images: training images per domain of the two tiny CNNs (at most; the 8x8 digits have 1438),
            each also seen as its autoencoder reconstruction.
        classifier_steps: optimiser steps of each tiny CNN (domain and digit classifiers, batch 128).
        seed: of the data subsets, training and sampling.
    """

    autoencoder: str = UNION_AUTOENCODER
    max_per_domain: int = 8000
    steps: int = 6000
    test_per_domain: int = 352
    samples: int = 1024
    classifier_images: int = 2000
    classifier_steps: int = 600
    seed: int = 0

    def check(self) -> None:
        if not 2 * _GROUP <= self.test_per_domain <= 359:
            raise ValueError(f"UnpairedSettings.test_per_domain must lie in [{2 * _GROUP}, 359] (the 8x8 digits' test "
                             f"split), got {self.test_per_domain!r}")  # fmt: skip
        if self.samples < 2 * _GROUP:
            raise ValueError(f"UnpairedSettings.samples must be at least {2 * _GROUP}, got {self.samples!r}")


QUICK = UnpairedSettings(max_per_domain=3000, steps=1500, test_per_domain=200, samples=256, classifier_images=500,
                         classifier_steps=300)  # fmt: skip
FULL = UnpairedSettings()


def _union(split: str, max_per_domain: int, seed: int) -> dict[str, Any]:
    """The ``concat_domains`` block of the three domains (items carry ``"domain"``)."""
    params = {"split": split, "size": 28, "channels": 1}
    datasets = {name: {"target": cls, "params": dict(params)} for name, cls, _ in DOMAINS}
    return {"target": "net2net.training.datamodule.concat_domains",
            "params": {"datasets": datasets, "max_per_domain": max_per_domain, "seed": seed}}  # fmt: skip


def unpaired_config(settings: UnpairedSettings, dim: int = 64) -> dict[str, Any]:
    """The training config of the cINN ``domain label -> union autoencoder code`` (``dim``: the code's size).

    Its validation set (logged NLL and image grid only) is up to 128 test images per domain."""
    val_per_domain = min(128, settings.test_per_domain)
    return {
        "model": cinn_config({"cond_dim": len(DOMAINS)}, settings.steps, dim=dim),
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "name": "unpaired", "batch_size": 128, "source_key": "domain",
            "source": {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": len(DOMAINS)}},
            "target": {"target": "net2net.experts.target.load_autoencoder_target",
                       "params": {"path": settings.autoencoder}},
            "train": _union("train", settings.max_per_domain, settings.seed),
            "validation": _union("test", val_per_domain, 1)}},
        "seed": settings.seed,
        "lightning": trainer_config(settings.steps, val_batches=-(-len(DOMAINS) * val_per_domain // 128)),
    }  # fmt: skip


def tiny_cnn(n_classes: int) -> nn.Module:
    """(B, 1, 28, 28) -> (B, 16, 14, 14) -> (B, 32, 7, 7) -> logits (B, n_classes)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(32 * 7 * 7, n_classes),
    )  # fmt: skip


def train_image_classifier(images: Tensor, labels: Tensor, n_classes: int, steps: int, seed: int = 0,
                           batch_size: int = 128, lr: float = 2e-3) -> nn.Module:  # fmt: skip
    """A tiny CNN (:func:`tiny_cnn`) trained on 28x28 grey ``images`` ``(N, 1, 28, 28)`` in [-1, 1] and ``labels``
    ``(N,)`` by :func:`net2net.training.in_memory.fit_classifier`: batches drawn with class-balancing weights (the
    domains differ in size), Adam with a cosine decay. Returned in eval mode.
    """
    from ..training.in_memory import fit_classifier

    if images.shape[1:] != (1, 28, 28) or labels.shape != images.shape[:1]:
        raise ValueError(f"expected images (N, 1, 28, 28) and labels (N,), got {tuple(images.shape)}, "
                         f"{tuple(labels.shape)}")  # fmt: skip
    network = {"target": f"{__name__}.tiny_cnn", "params": {"n_classes": n_classes}}
    return fit_classifier(images, labels, network, steps, seed=seed, batch_size=batch_size, lr=lr)


def _predict(net: nn.Module, images: Tensor) -> Tensor:
    return batched(lambda x: net(x).argmax(1), images)


def _accuracy(net: nn.Module, images: Tensor, labels: Tensor | int) -> float:
    return float((_predict(net, images) == torch.as_tensor(labels)).float().mean())


def _stack(dataset: Any, indices: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """Images ``(N, 1, 28, 28)``, domains ``(N,)`` and labels ``(N,)`` of items ``indices`` of a union dataset."""
    items = [dataset[i] for i in indices]
    return (torch.stack([it["image"] for it in items]), torch.tensor([it["domain"] for it in items]),
            torch.tensor([it["label"] for it in items]))  # fmt: skip


def _linear_probe(features: Tensor, labels: Tensor, seed: int) -> float:
    """5-fold cross-validated accuracy of a logistic regression predicting ``labels`` from ``features``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(probe, features.numpy(), labels.numpy(), cv=folds).mean())


def _distance_ratio(a: Tensor, b: Tensor) -> float:
    """Mean RMS distance of matched pairs ``(a[i], b[i])`` over that of all unmatched pairs ``(a[i], b[j]), i != j``."""
    fa, fb = a.flatten(1), b.flatten(1)  # (N, C*H*W)
    d = torch.cdist(fa, fb) / fa.shape[1] ** 0.5  # (N, N) RMS distances
    n = len(d)
    matched = d.diagonal().mean()
    unmatched = (d.sum() - d.diagonal().sum()) / (n * (n - 1))
    return float(matched / unmatched)


@torch.no_grad()
def run_unpaired(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                 settings: UnpairedSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/unpaired.md``, its figures and ``unpaired.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (3000 training images per domain, 1500 cINN steps, 200 test images and 256
            samples per domain) instead of the full ones.
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
    """
    from ..data import Subset
    from ..experts.label import LabelEncoder
    from ..experts.protocols import expert_fingerprint
    from ..experts.target import load_autoencoder_target
    from ..flows import load_cinn

    exp = Experiment.start("unpaired", out_dir, quick, runs_dir, settings, QUICK, FULL)
    settings = exp.settings
    g = exp.generator()
    n_dom = len(DOMAINS)
    onehot = LabelEncoder(n_dom)

    def condition(domain: int, n: int) -> Tensor:
        return onehot.encode(torch.full((n,), domain))  # (n, n_dom)

    target = load_autoencoder_target(settings.autoencoder)
    dim = int(target.z_dim or 64)
    cfg = unpaired_config(settings, dim=dim)
    # the run's name carries the autoencoder's weights: a retrained union autoencoder retrains the cINN
    run = exp.train("cinn", cfg, f"unpaired-{expert_fingerprint(target)[:8]}")
    seconds = exp.train_seconds
    tau = load_cinn(run / "cinn.safetensors")

    # -- classifiers judging domain and digit, trained on real training images and their reconstructions ---------
    union = instantiate_from_config(cfg["data"]["params"]["train"])  # ConcatDomains
    picks = []
    for a, (start, end) in enumerate(zip([0, *union.cumulative_sizes[:-1]], union.cumulative_sizes, strict=True)):
        perm = torch.randperm(end - start, generator=torch.Generator().manual_seed(settings.seed + 3 + a))
        picks += (start + perm[: settings.classifier_images]).tolist()
    train_images, train_domains, train_labels = _stack(union, picks)
    train_recon = batched(lambda y: target.decode(target.encode_dist(y)[0]), train_images).clamp(-1, 1)
    both = torch.cat([train_images, train_recon])  # (2N, 1, 28, 28)
    t0 = time.perf_counter()
    domain_net = train_image_classifier(both, train_domains.repeat(2), n_dom, settings.classifier_steps, settings.seed)
    seconds["domain_classifier"] = round(time.perf_counter() - t0, 1)
    is_digit = torch.isin(train_domains, torch.tensor(DIGIT_DOMAINS)).repeat(2)
    t0 = time.perf_counter()
    digit_net = train_image_classifier(both[is_digit], train_labels.repeat(2)[is_digit], 10, settings.classifier_steps,
                                       settings.seed + 1)  # fmt: skip
    seconds["digit_classifier"] = round(time.perf_counter() - t0, 1)
    log.info("trained the domain and digit classifiers in %s s", seconds)

    # -- held-out test images per domain: codes, reconstructions, residuals and transfers a -> b ----------------
    real, labels, recon, transfers, codes, residuals, nll_by_domain, bayes = [], [], [], [], [], [], [], []
    for a, (_, cls, _) in enumerate(DOMAINS):
        ds = Subset(instantiate_from_config({"target": cls, "params": {"split": "test", "size": 28, "channels": 1}}),
                    settings.test_per_domain, seed=settings.seed + 2)  # fmt: skip
        images, classes = load_images(ds)  # (T, 1, 28, 28), (T,)
        real.append(images)
        labels.append(classes)
        mean, std = encode_dist(target, real[a])  # (T, dim) each
        codes.append(mean)
        recon.append(decode(target, mean))
        # Net2Net.transfer, with the residual of each input computed once: v = τ⁻¹(Θ(y) | a), y* = Λ(τ(v | b))
        residuals.append(tau.residual(mean, condition(a, len(mean))))
        transfers.append([decode(target, tau.inverse(residuals[a], condition(b, len(mean)))[0]) for b in range(n_dom)])
        # the cINN's likelihood of held-out codes, sampled from q(z | y) as in training, under every domain
        z_test = mean + std * torch.randn(mean.shape, generator=g)
        nll = torch.stack([heldout_nll(tau, z_test, condition(b, len(z_test))) for b in range(n_dom)], 1)  # (T, n_dom)
        nll_by_domain.append(float(nll[:, a].mean() / dim))  # nats/dim under the true domain
        bayes.append(float((nll.argmin(1) == a).float().mean()))
    matrix = [[_accuracy(domain_net, transfers[a][b], b) for b in range(n_dom)] for a in range(n_dom)]

    # -- samples: the same v ~ N(0, I) sent into every domain ----------------------------------------------------
    v = torch.randn(settings.samples, dim, generator=g)
    samples = []
    for b in range(n_dom):
        z, _ = tau.inverse(v, condition(b, len(v)))
        samples.append(decode(target, z))  # (S, 1, 28, 28)

    def diversity(x: Tensor) -> float:
        k = len(x) // _GROUP
        return float(mean_pairwise_distance(x[: k * _GROUP].view(k, _GROUP, *x.shape[1:])).mean())

    # -- what v carries ------------------------------------------------------------------------------------------
    test_domains = torch.arange(n_dom).repeat_interleave(settings.test_per_domain)  # (n_dom * T,)
    probe = {name: _linear_probe(torch.cat(x), test_domains, settings.seed)
             for name, x in (("z", codes), ("v", residuals))}  # fmt: skip
    same_v = {f"{DOMAINS[b][0]}|{DOMAINS[c][0]}": _distance_ratio(samples[b], samples[c])
              for b in range(n_dom) for c in range(b + 1, n_dom)}  # fmt: skip
    m, d = DIGIT_DOMAINS
    pm, pd = _predict(digit_net, samples[m]), _predict(digit_net, samples[d])
    freq_m, freq_d = (torch.bincount(p, minlength=10).float() / len(p) for p in (pm, pd))  # (10,) each
    chance = float((freq_m * freq_d).sum())  # agreement of two independent guessers with these frequencies
    digits = {
        "classifier_accuracy_real": {DOMAINS[a][0]: _accuracy(digit_net, real[a], labels[a]) for a in DIGIT_DOMAINS},
        "classifier_accuracy_reconstructions": {DOMAINS[a][0]: _accuracy(digit_net, recon[a], labels[a])
                                                for a in DIGIT_DOMAINS},
        "kept_through_transfer": {f"{DOMAINS[a][0]}->{DOMAINS[b][0]}": _accuracy(digit_net, transfers[a][b], labels[a])
                                  for a in DIGIT_DOMAINS for b in DIGIT_DOMAINS},
        "same_v_agreement": float((pm == pd).float().mean()), "same_v_agreement_chance": chance,
    }  # fmt: skip

    rows = [
        {
            "domain": DOMAINS[a][0],
            "classifier_accuracy_real": _accuracy(domain_net, real[a], a),
            "classifier_accuracy_reconstructions": _accuracy(domain_net, recon[a], a),
            "classifier_accuracy_samples": _accuracy(domain_net, samples[a], a),
            "diversity_samples": diversity(samples[a]),
            "diversity_real": diversity(real[a]),
            "nll_nats_per_dim": nll_by_domain[a],
            "likelihood_domain_accuracy": bayes[a],
        }
        for a in range(n_dom)
    ]
    summary = exp.summary(
        code_dim=dim, run=run.name, domains=rows,
        transfer_accuracy={DOMAINS[a][0]: {DOMAINS[b][0]: matrix[a][b] for b in range(n_dom)} for a in range(n_dom)},
        domain_probe_accuracy=probe, same_v_distance_ratio=same_v, digits=digits,
        train_seconds=exp.train_seconds, seconds_total=exp.elapsed(),
    )  # fmt: skip

    # -- figures -------------------------------------------------------------------------------------------------
    k = 4  # test inputs per domain; rows: input, its transfer into every domain (Fig. S2 layout)
    per_domain = [torch.stack([real[a][:k]] + [transfers[a][b][:k] for b in range(n_dom)], 1) for a in range(n_dom)]
    grid = torch.cat(per_domain)  # (n_dom * k, n_dom + 1, 1, 28, 28)
    exp.figure(grid.flatten(0, 1), "unpaired_transfer", nrow=n_dom + 1)
    n_v = min(12, settings.samples)  # rows: domains; columns: the same v (Fig. S3 layout)
    exp.figure(torch.cat([s[:n_v] for s in samples]), "unpaired_same_v", nrow=n_v)
    exp.write(summary, _page)
    return summary


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _page(summary: dict[str, Any]) -> list[str]:
    """The lines of ``unpaired.md``."""
    s = summary["settings"]
    names = [name for name, _, _ in DOMAINS]
    title = {name: t for name, _, t in DOMAINS}
    rows, matrix, dig = summary["domains"], summary["transfer_accuracy"], summary["digits"]
    lines = [
        *page_head("Unpaired translation between domains (Fig. 8, supplementary Sec. D, Fig. S2, S3)", "unpaired", summary["quick"]),
        f"Source Φ: the domain label (one-hot); target: the autoencoder trained on the union MNIST (5k) ∪ "
        f"Fashion-MNIST ∪ 8x8 digits (`{s['autoencoder']}`, z ∈ R^{summary['code_dim']}). The cINN was trained "
        f"{s['steps']} steps on at most {s['max_per_domain']} training images per domain; evaluated on "
        f"{s['test_per_domain']} test images and {s['samples']} samples per domain. Translation a → b: "
        "v = τ⁻¹(Θ(y) | a), y* = Λ(τ(v | b)). The domain classifier and the digit classifier are tiny CNNs "
        f"trained here ({s['classifier_steps']} steps each) on up to {s['classifier_images']} training images per "
        "domain and their autoencoder reconstructions.",
        "",
        "| domain | classifier on real | on reconstructions | on samples τ(v \\| b) | diversity samples | "
        "diversity real | NLL (nats/dim) | most likely domain correct |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {title[r['domain']]} | {_pct(r['classifier_accuracy_real'])} | "
            f"{_pct(r['classifier_accuracy_reconstructions'])} | {_pct(r['classifier_accuracy_samples'])} | "
            f"{r['diversity_samples']:.3f} | {r['diversity_real']:.3f} | {r['nll_nats_per_dim']:.3f} | "
            f"{_pct(r['likelihood_domain_accuracy'])} |"
        )
    lines += [
        "",
        "Classifier: the domain classifier's accuracy w.r.t. the domain the images come from (samples: the domain "
        "they were sampled in). Diversity: mean pairwise RMS distance (images in [-1, 1]) within groups of 8. NLL: "
        "the cINN's held-out −log p(z | domain) of the test codes; last column: how often the domain under which "
        "the code is most likely is its own.",
        "",
        "**Transfers a → b** (rows a, columns b): the domain classifier's accuracy at recognising b in the "
        "translated test images. The diagonal is the reconstruction (τ(τ⁻¹(z | a) | a) = z).",
        "",
        "| from \\ to | " + " | ".join(title[n] for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    lines += [f"| {title[a]} | " + " | ".join(_pct(matrix[a][b]) for b in names) + " |" for a in names]
    probe, same_v = summary["domain_probe_accuracy"], summary["same_v_distance_ratio"]
    kept = dig["kept_through_transfer"]
    lines += [
        "",
        "**What v carries.**",
        "",
        f"* Domain from the code, linear probe (5-fold CV, chance 33.3 %): from z {_pct(probe['z'])}, from "
        f"v = τ⁻¹(z | domain) {_pct(probe['v'])}.",
        "* The same v in two domains: mean RMS distance between the two images of the same v over that between "
        "images of different v (< 1: the same v gives a related image): "
        + ", ".join(f"{title[p.split('|')[0]]}–{title[p.split('|')[1]]} {r:.3f}" for p, r in same_v.items()) + ".",
        "* Digits (MNIST and 8x8 digits share the labels 0-9; the digit classifier: "
        + ", ".join(f"{_pct(x)} on real {title[n]}" for n, x in dig["classifier_accuracy_real"].items())
        + ", " + ", ".join(f"{_pct(dig['classifier_accuracy_reconstructions'][n])} on reconstructed {title[n]}"
                           for n in dig["classifier_accuracy_reconstructions"])
        + f"): the same v gets the same digit in both domains {_pct(dig['same_v_agreement'])} of the time (chance "
        f"from the predicted digit frequencies: {_pct(dig['same_v_agreement_chance'])}); the input's digit is kept "
        "through the transfer "
        + ", ".join(f"{title[p.split('->')[0]]} → {title[p.split('->')[1]]} {_pct(x)}" for p, x in kept.items()
                    if p.split("->")[0] != p.split("->")[1])
        + " (chance 10 %).",
        "",
        "**Transfers** (rows: test inputs from each domain; columns: input, its translation into "
        + ", ".join(title[n] for n in names) + "):",
        "",
        "![transfers](figures/unpaired_transfer.png)",
        "",
        "**The same v in every domain** (rows: " + ", ".join(title[n] for n in names)
        + "; columns: one v ~ N(0, I) each):",
        "",
        "![same v](figures/unpaired_same_v.png)",
        "",
        training_time_line(summary) + ".",
    ]
    return lines
