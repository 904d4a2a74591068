"""Experiment ``disentangle``: unsupervised disentangling of shape and appearance (supplementary Sec. C, Fig. S1).

The source expert is Φ = Θ∘d: a random deformation ``d`` (horizontal flip, thin-plate-spline warp, crop) followed
by the encoder Θ of the shipped Fashion-MNIST autoencoder (:class:`net2net.experts.DeformedEncoder`); the target
is the autoencoder itself. The cINN τ learns ``p(Θ(y) | Θ(d(y)))``. ``d`` keeps what a deformation cannot change
(appearance: class, texture, print, brightness) and destroys the exact shape (contour, width, pose, position), so
the residual ``v = τ⁻¹(Θ(y) | ·)`` has to carry the shape. Because ``d`` is drawn anew for every batch, the source
is stochastic and :class:`~net2net.training.translation.TranslationDataModule` encodes it live (no latent cache).

**Test time.** As in the paper, the condition is the *undeformed* code: ``v_i = τ⁻¹(Θ(y_i) | Θ(y_i))`` and the
swap is ``s_ij = Λ(τ(v_i | Θ(x_j)))``: the shape of ``y_i`` with the appearance of ``x_j``. The identity is inside
the support of ``d`` (no flip, zero warp, full crop), the undeformed code describes the appearance image exactly
instead of one random distortion of it, and the shape image's residual is then computed relative to its own
undeformed appearance. A random ``d`` at test time is evaluated as well (row "swap, Φ = Θ∘d at test").

Measured on pairs of held-out test images (shape image ``y_i``, appearance image ``x_j``), for the swap and for
the trivial outcomes (a copy of ``x_j``'s or ``y_i``'s reconstruction, and a random residual ``τ(ε | Θ(x_j))``):

* pairs of *different* classes: how often the shipped classifier gives the swap the class of ``x_j``
  (appearance) or of ``y_i`` (shape); Fashion-MNIST's class is appearance in this sense, since ``d`` keeps it;
* pairs of the *same* class (where a shape swap is well defined): silhouette IoU of the swap with ``y_i`` and
  with ``x_j``, the fraction of pairs where the swap's silhouette is closer to ``y_i``'s, and the correlation over
  pairs of the swap's mean foreground brightness with ``x_j``'s and with ``y_i``'s;
* how much class information ``v`` holds: a linear probe's class accuracy from ``v`` against from ``Θ(y)``;
* the cINN's held-out NLL (nats/dim) of ``Θ(y)`` given a deformed and given the undeformed condition, and the
  diversity of its samples for one condition.

The paper's claim to check: τ learns a shape representation ``v`` independent of appearance, which recombines with
arbitrary appearances (Fig. S1).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..metrics import heldout_nll, mean_pairwise_distance
from .experiment import (
    AUTOENCODER,
    Experiment,
    Settings,
    autoencoder_translation_config,
    batched,
    cinn_config,
    decode,
    encode_dist,
    heldout_images,
    page_head,
    shipped_autoencoder,
    shipped_classifier,
)

__all__ = ["DisentangleSettings", "disentangle_config", "run_disentangle"]

log = logging.getLogger(__name__)

FOREGROUND = -0.8  # a pixel in [-1, 1] belongs to the silhouette above this value (background is -1)
TOPS = (0, 2, 4, 6)  # T-shirt/top, pullover, coat, shirt: the classes of the within-group figure


@dataclass(frozen=True)
class DisentangleSettings(Settings):
    """Sizes and the deformation of one reproduction.

    Arguments:
        steps: optimiser steps of the cINN; every step encodes its batch live (deformation + two encoder calls).
        batch_size: training pairs per step.
        train_images: Fashion-MNIST training images drawn from (live encoding: the number costs nothing).
        test_images: held-out test images; the evaluation pairs are drawn among them.
        samples: cINN samples per condition for the diversity.
        flip: random horizontal flips in ``d``.
        tps_strength: the largest thin-plate-spline control-point displacement (half image widths).
        crop_scale: ``(min, max)`` area fraction of the random crop, resized back to 28 px.
        seed: of the data subset, the deformations, training and evaluation.
    """

    steps: int = 6000
    batch_size: int = 128
    train_images: int = 60000
    test_images: int = 2000
    samples: int = 8
    flip: bool = True
    tps_strength: float = 0.3
    crop_scale: tuple[float, float] = (0.5, 1.0)
    seed: int = 0

    MINIMUMS: ClassVar[Mapping[str, int]] = {"test_images": 20, "samples": 2}

    def check(self) -> None:
        strength = self.tps_strength
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not (
            math.isfinite(strength) and strength >= 0
        ):
            raise ValueError(f"DisentangleSettings.tps_strength must be a finite number >= 0, got {strength!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"DisentangleSettings.crop_scale must be (min, max) with 0 < min <= max <= 1, "
                             f"got {self.crop_scale!r}")  # fmt: skip
        if not self.flip and strength == 0 and (lo, hi) == (1, 1):
            raise ValueError("DisentangleSettings: the deformation d is the identity (no flip, warp or crop); "
                             "then Φ = Θ and v holds nothing to disentangle")  # fmt: skip


QUICK = DisentangleSettings(steps=500, batch_size=64, test_images=1000)
FULL = DisentangleSettings()


def disentangle_config(settings: DisentangleSettings) -> dict[str, Any]:
    """The training config (``target``/``params`` blocks) of τ: ``Θ(d(y)) -> Θ(y)`` on Fashion-MNIST."""
    source = {"target": "net2net.experts.encoder_source.deformed_encoder", "params": {
        "path": AUTOENCODER, "flip": settings.flip, "tps_strength": settings.tps_strength,
        "crop_scale": list(settings.crop_scale), "seed": settings.seed}}  # fmt: skip
    model = cinn_config({"cond_dim": 64}, settings.steps, batch_size=settings.batch_size)
    return autoencoder_translation_config("disentangle", source, model, settings.steps, settings.train_images,
                                          settings.seed, batch_size=settings.batch_size, progress=False)  # fmt: skip


# -- image statistics ------------------------------------------------------------------------------------
def _silhouette(x: Tensor) -> Tensor:
    """Foreground masks ``(N, 28 * 28)`` of images ``(N, 1, 28, 28)`` in [-1, 1]."""
    return (x > FOREGROUND).flatten(1)


def _iou(a: Tensor, b: Tensor) -> Tensor:
    """Per-pair silhouette IoU ``(N,)`` of two image batches."""
    ma, mb = _silhouette(a), _silhouette(b)
    return (ma & mb).sum(1) / (ma | mb).sum(1).clamp(min=1)


def _brightness(x: Tensor) -> Tensor:
    """Mean foreground intensity ``(N,)`` (an appearance statistic that flips, warps and crops keep)."""
    mask = _silhouette(x).float()
    return (x.flatten(1) * mask).sum(1) / mask.sum(1).clamp(min=1)


def _corr(a: Tensor, b: Tensor) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()).clamp(min=1e-12))


def _pairs(labels: Tensor, same: bool, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """Index pairs ``(i, j)``: for every image ``i`` (shape) a random other image ``j`` (appearance) of the same or
    of a different class; images without a partner are left out."""
    shape_idx, app_idx = [], []
    for i in range(len(labels)):
        ok = (labels == labels[i]) if same else (labels != labels[i])
        ok[i] = False
        cand = ok.nonzero().flatten()
        if len(cand):
            shape_idx.append(i)
            app_idx.append(int(cand[torch.randint(len(cand), (1,), generator=g)]))
    return torch.tensor(shape_idx), torch.tensor(app_idx)


def _linear_probe(features: Tensor, labels: Tensor, seed: int) -> float:
    """Class accuracy of a logistic regression trained on the first half of ``features``, tested on the second."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    half = len(features) // 2
    x = StandardScaler().fit(features[:half].numpy()).transform(features.numpy())
    clf = LogisticRegression(max_iter=2000, random_state=seed).fit(x[:half], labels[:half].numpy())
    return float(clf.score(x[half:], labels[half:].numpy()))


@torch.no_grad()
def run_disentangle(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                    settings: DisentangleSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train τ if missing, evaluate the shape/appearance swap, write ``<out_dir>/disentangle.md``, its figures and
    ``disentangle.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (fewer steps and test images) instead of the full ones.
        runs_dir: training runs (default ``<cache>/runs/reproduce``); a finished run is reused.
        settings: explicit sizes (overrides ``quick``).
    """
    from ..experts.encoder_source import deformed_encoder
    from ..flows import load_cinn

    exp = Experiment.start("disentangle", out_dir, quick, runs_dir, settings, QUICK, FULL)
    settings = exp.settings
    run = exp.train("cinn", disentangle_config(settings), "disentangle")
    tau = load_cinn(run / "cinn.safetensors").eval()
    target, classifier = shipped_autoencoder(), shipped_classifier()
    phi = deformed_encoder(AUTOENCODER, flip=settings.flip, tps_strength=settings.tps_strength,
                           crop_scale=settings.crop_scale, seed=settings.seed + 3)  # fmt: skip
    g = exp.generator()

    real, labels = heldout_images(settings.test_images, settings.seed)  # (N, 1, 28, 28) in [-1, 1]
    mean, std = encode_dist(target, real)  # (N, 64) each
    z_def = batched(phi.encode, real)  # (N, 64): Θ(d(y)), one random deformation per image
    recon = decode(target, mean)
    v = tau.residual(mean, mean)  # (N, 64): v_i = τ⁻¹(Θ(y_i) | Θ(y_i)), the shape code
    v_def = tau.residual(mean, z_def)  # with the deformed condition, as in training

    def swap(v_shape: Tensor, cond: Tensor) -> Tensor:
        return batched(lambda vc: target.decode(tau.inverse(*vc.split(64, 1))[0]), torch.cat([v_shape, cond], 1))

    def classes(x: Tensor) -> Tensor:
        return batched(classifier, x).argmax(1)

    outputs: dict[str, dict[str, Any]] = {}
    for same in (False, True):  # pairs of different classes, then of the same class
        i, j = _pairs(labels, same, g)
        eps = torch.randn(len(i), 64, generator=g)
        candidates = {
            "swap": swap(v[i], mean[j]),
            "swap, Φ = Θ∘d at test": swap(v_def[i], z_def[j]),
            "random residual τ(ε | Θ(x_j))": swap(eps, mean[j]),
            "copy of x_j (appearance)": recon[j],
            "copy of y_i (shape)": recon[i],
        }
        for name, images in candidates.items():
            row = outputs.setdefault(name, {})
            images = images.clamp(-1, 1)
            if not same:
                pred = classes(images)
                row["n_pairs_different_class"] = len(i)
                row["class_of_appearance"] = float((pred == labels[j]).float().mean())
                row["class_of_shape"] = float((pred == labels[i]).float().mean())
            else:
                iou_y, iou_x = _iou(images, real[i]), _iou(images, real[j])
                bright = _brightness(images)
                row.update(
                    n_pairs_same_class=len(i),
                    iou_shape=float(iou_y.mean()), iou_appearance=float(iou_x.mean()),
                    shape_closer=float((iou_y > iou_x).float().mean()),
                    brightness_corr_appearance=_corr(bright, _brightness(real[j])),
                    brightness_corr_shape=_corr(bright, _brightness(real[i])),
                )  # fmt: skip

    # likelihood, diversity and the class information in v
    z_tgt = mean + std * torch.randn(mean.shape, generator=g)  # (N, 64): codes as τ was trained on
    nll_def = heldout_nll(tau, z_tgt, z_def) / 64
    nll_undef = heldout_nll(tau, z_tgt, mean) / 64
    k = min(100, len(real))
    sample_images = decode(target, tau.sample(mean[:k], n_samples=settings.samples, generator=g))  # (k, n, 1, 28, 28)
    summary = exp.summary(
        outputs=outputs,
        nll_nats_per_dim_deformed_condition=float(nll_def.mean()),
        nll_nats_per_dim_undeformed_condition=float(nll_undef.mean()),
        residual_mean_square=float(v.square().mean()), residual_mean_square_deformed=float(v_def.square().mean()),
        diversity=float(mean_pairwise_distance(sample_images).mean()),
        probe_accuracy_v=_linear_probe(v, labels, settings.seed),
        probe_accuracy_z=_linear_probe(mean, labels, settings.seed),
        probe_accuracy_v_deformed=_linear_probe(v_def, labels, settings.seed),
        train_seconds=exp.train_seconds,
    )  # fmt: skip
    step_s = _seconds_per_step(run)
    if step_s is not None:
        summary["train_seconds_per_step"] = step_s
    summary["live_encoding_seconds_per_batch"] = _live_encoding_seconds(phi, target, real, settings.batch_size)

    # figures: Fig. S1 grids (shape images in the first column, appearance images in the first row)
    mixed = _distinct_classes(labels, 8, g, offset=0)
    app = _distinct_classes(labels, 8, g, offset=1)
    exp.figure(_grid(real, mean, v, mixed, app, swap), "disentangle_swap", nrow=9)
    tops = (labels[:, None] == torch.tensor(TOPS)).any(1).nonzero().flatten()  # (T,) indices of tops
    tops = tops if len(tops) >= 12 else torch.arange(len(labels))  # tiny test sets: any images
    pick = tops[torch.randperm(len(tops), generator=g)[:12]]
    exp.figure(_grid(real, mean, v, pick[:6], pick[6:], swap), "disentangle_swap_tops", nrow=7)
    deformed = torch.stack([real[:8]] + [phi.deform(real[:8]) for _ in range(5)], 1)  # (8, 6, 1, 28, 28)
    exp.figure(torch.cat([deformed, recon[:8, None], sample_images[:8, :5]], 1).flatten(0, 1),
               "disentangle_deformations", nrow=12)  # fmt: skip
    summary["seconds_total"] = exp.elapsed()
    swap_row = outputs["swap"]
    log.info("disentangle: swap has the appearance's class in %.1f %% of cross-class pairs, the silhouette closer to "
             "the shape image in %.1f %% of same-class pairs", 100 * swap_row["class_of_appearance"],
             100 * swap_row["shape_closer"])  # fmt: skip
    exp.write(summary, _page)
    return summary


def _seconds_per_step(run: Path) -> float | None:
    """Seconds per training step of the run's latest call (its ``summary.json``), if recorded."""
    f = run / "summary.json"
    if not f.is_file():
        return None
    value = json.loads(f.read_text()).get("seconds_per_step")
    return None if value is None else round(float(value), 3)


def _live_encoding_seconds(phi: Any, target: Any, images: Tensor, batch_size: int, repeats: int = 3) -> float:
    """Wall seconds of what live encoding adds to a training step: ``Θ(d(y))`` and ``Θ(y)`` of one batch."""
    batch = images[:batch_size]
    t0 = time.perf_counter()
    for _ in range(repeats):
        phi.encode(batch)
        target.encode_dist(batch)
    return round((time.perf_counter() - t0) / repeats, 3)


def _distinct_classes(labels: Tensor, n: int, g: torch.Generator, offset: int) -> Tensor:
    """Indices of ``n`` images of ``n`` different classes (a random image of each), classes rotated by ``offset``."""
    chosen = []
    for c in [(c + offset) % 10 for c in range(10)][:n]:
        idx = (labels == c).nonzero().flatten()
        if len(idx):
            chosen.append(int(idx[torch.randint(len(idx), (1,), generator=g)]))
    return torch.tensor(chosen)


def _grid(real: Tensor, mean: Tensor, v: Tensor, shapes: Tensor, apps: Tensor, swap: Any) -> Tensor:
    """Fig. S1 layout ``((1 + S) * (1 + A), 1, 28, 28)``: a blank corner, the appearance images in the first row,
    the shape images in the first column, the swap ``Λ(τ(v_i | Θ(x_j)))`` in row ``i``, column ``j``."""
    s, a = len(shapes), len(apps)
    codes = swap(v[shapes].repeat_interleave(a, 0), mean[apps].repeat(s, 1))  # (S * A, 1, 28, 28)
    body = torch.cat([real[shapes][:, None], codes.clamp(-1, 1).view(s, a, 1, 28, 28)], 1)  # (S, 1 + A, ...)
    top = torch.cat([torch.zeros(1, 1, 1, 28, 28), real[apps][None]], 1)  # (1, 1 + A, ...): grey corner
    return torch.cat([top, body], 0).flatten(0, 1)


def _findings(summary: dict[str, Any]) -> list[str]:
    """The page's reading of the numbers of this run, and the caveat of the data set."""
    o = summary["outputs"]
    sw, de, rnd = o["swap"], o["swap, Φ = Θ∘d at test"], o["random residual τ(ε | Θ(x_j))"]
    cx, cy = o["copy of x_j (appearance)"], o["copy of y_i (shape)"]
    appearance = sw["brightness_corr_appearance"] > sw["brightness_corr_shape"] and (
        sw["class_of_appearance"] > sw["class_of_shape"]
    )
    shape = sw["shape_closer"] > rnd["shape_closer"] + 0.05
    nll_u, nll_d = summary["nll_nats_per_dim_undeformed_condition"], summary["nll_nats_per_dim_deformed_condition"]
    return [
        "## Reading",
        "",
        f"- **Appearance {'follows' if appearance else 'does not follow'} the condition Θ(x_j).** The swap's "
        f"foreground brightness correlates {sw['brightness_corr_appearance']:.2f} with x_j's and "
        f"{sw['brightness_corr_shape']:.2f} with y_i's; across classes it has x_j's class in "
        f"{100 * sw['class_of_appearance']:.0f} % of pairs and y_i's in {100 * sw['class_of_shape']:.0f} % (a random "
        f"residual: {100 * rnd['class_of_appearance']:.0f} % / {100 * rnd['class_of_shape']:.0f} %; the "
        f"reconstruction of x_j itself: {100 * cx['class_of_appearance']:.0f} %).",
        f"- **The residual v carries {'shape' if shape else 'little shape'}.** Within a class the swap's silhouette "
        f"is closer to the shape image y_i than to x_j in {100 * sw['shape_closer']:.0f} % of pairs, against "
        f"{100 * rnd['shape_closer']:.0f} % when v is replaced by a random draw under the same condition (IoU with "
        f"y_i {sw['iou_shape']:.3f} against {rnd['iou_shape']:.3f}); the copies mark the ends of the scale, "
        f"{100 * cx['shape_closer']:.0f} % (x_j) and {100 * cy['shape_closer']:.0f} % (y_i). A linear probe reads "
        f"the class from v with {100 * summary['probe_accuracy_v']:.0f} % accuracy, from Θ(y) with "
        f"{100 * summary['probe_accuracy_z']:.0f} %.",
        f"- **Test-time condition.** One random d at test time gives {100 * de['class_of_appearance']:.0f} % "
        f"appearance class and {100 * de['shape_closer']:.0f} % shape-closer pairs (undeformed: "
        f"{100 * sw['class_of_appearance']:.0f} % / {100 * sw['shape_closer']:.0f} %). The held-out NLL of Θ(y) "
        f"is {nll_u:.3f} nats/dim given the undeformed code and {nll_d:.3f} given a deformed one.",
        "- **Caveat of the data.** Fashion-MNIST items are centred, scaled to the frame and, for footwear, all face "
        "the same way, so what the flip and the crop of d destroy does not vary in the targets: τ can undo them "
        "from its prior, and v need not hold them. The shape left for v is the within-class variation a warp "
        "hides (contour, width, sleeve and leg shape), smaller than the pose variation of the paper's animal "
        "images; where the classes of the two images differ, shape is largely tied to the class, which the "
        "condition decides (first grid).",
    ]  # fmt: skip


def _page(summary: dict[str, Any]) -> list[str]:
    s = summary["settings"]
    o = summary["outputs"]
    lines = [
        *page_head("Unsupervised disentangling of shape and appearance (supplementary Sec. C, Fig. S1)", "disentangle", summary["quick"]),
        "Source Φ = Θ∘d: a random deformation d (horizontal flip, thin-plate-spline warp with control points moved "
        f"by up to {s['tps_strength']} half-widths, crop of {s['crop_scale'][0]:g}-{s['crop_scale'][1]:g} of the area "
        "resized back) followed by the encoder Θ of the shipped Fashion-MNIST autoencoder; target: the autoencoder "
        f"(z ∈ R⁶⁴). The cINN (12 blocks, width 256) was trained {s['steps']} steps at batch {s['batch_size']} on "
        "Fashion-MNIST training images; d is drawn anew for every batch, so the source is encoded live "
        "(no latent cache).",
        "",
        "At test time the condition is the undeformed code Θ(x), as in the paper: the shape code of y_i is "
        "v_i = τ⁻¹(Θ(y_i) | Θ(y_i)) and the swap is Λ(τ(v_i | Θ(x_j))). The identity lies in the support of d, and "
        "Θ(x) describes the appearance image itself rather than one random distortion of it; the second row uses "
        "one random d at test time instead.",
        "",
        f"Evaluated on pairs of {s['test_images']} held-out test images (shape image y_i, appearance image x_j). "
        "Class columns: pairs of different classes "
        f"({next(iter(o.values()))['n_pairs_different_class']} pairs), class by the shipped classifier. Shape and "
        f"brightness columns: pairs of the same class ({next(iter(o.values()))['n_pairs_same_class']} pairs), "
        "where a swap of shape is well defined: silhouette IoU (pixels above "
        f"{FOREGROUND} in [-1, 1]) with the real y_i and x_j, the fraction of pairs whose output is closer in "
        "silhouette to y_i, and the correlation over pairs of the mean foreground brightness with x_j's and y_i's. "
        "A swap that works has x_j's class and brightness and y_i's silhouette; the copies are the trivial outcomes.",
        "",
        "| output | class = x_j's | class = y_i's | IoU with y_i | IoU with x_j | silhouette closer to y_i | "
        "brightness corr. x_j | brightness corr. y_i |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in o.items():
        cell = name.replace("|", "\\|")  # a "|" inside a cell would end it
        lines.append(
            f"| {cell} | {100 * r['class_of_appearance']:.1f} % | {100 * r['class_of_shape']:.1f} % | "
            f"{r['iou_shape']:.3f} | {r['iou_appearance']:.3f} | {100 * r['shape_closer']:.1f} % | "
            f"{r['brightness_corr_appearance']:.2f} | {r['brightness_corr_shape']:.2f} |"
        )
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| held-out NLL of Θ(y) given Θ(d(y)) (nats/dim) | {summary['nll_nats_per_dim_deformed_condition']:.3f} |",
        f"| held-out NLL of Θ(y) given Θ(y) (nats/dim) | {summary['nll_nats_per_dim_undeformed_condition']:.3f} |",
        f"| mean v² with the undeformed / deformed condition (1 = standard normal) | "
        f"{summary['residual_mean_square']:.2f} / {summary['residual_mean_square_deformed']:.2f} |",
        f"| diversity of {s['samples']} samples τ(ε \\| Θ(x)) (mean pairwise RMS, [-1, 1]) | "
        f"{summary['diversity']:.3f} |",
        f"| linear probe class accuracy from Θ(y) | {100 * summary['probe_accuracy_z']:.1f} % |",
        f"| linear probe class accuracy from v (undeformed / deformed condition) | "
        f"{100 * summary['probe_accuracy_v']:.1f} % / {100 * summary['probe_accuracy_v_deformed']:.1f} % |",
        "",
        "The probes are logistic regressions trained on half of the test codes and scored on the other half "
        "(chance: 10 %); a shape code independent of appearance holds little class information.",
        "",
        *_findings(summary),
        "",
        "**Swaps across classes** (first column: shape images y_i; first row: appearance images x_j; "
        "cell: Λ(τ(v_i | Θ(x_j)))):",
        "",
        "![swap](figures/disentangle_swap.png)",
        "",
        "**Swaps among tops** (T-shirts, pullovers, coats, shirts):",
        "",
        "![swap among tops](figures/disentangle_swap_tops.png)",
        "",
        "**The deformation d and the samples** (per row: a test image, 5 draws of d, its reconstruction, "
        "5 samples τ(ε | Θ(x))):",
        "",
        "![deformations](figures/disentangle_deformations.png)",
        "",
        f"Training time (s, 0 = reused): {summary['train_seconds']['cinn']:.0f}"
        + (f" ({summary['train_seconds_per_step']:.3f} s/step with live encoding)"
           if "train_seconds_per_step" in summary else "")
        + f"; live encoding alone (Θ(d(y)) and Θ(y) of one batch of {s['batch_size']}): "
        f"{summary['live_encoding_seconds_per_batch']:.3f} s; total {summary['seconds_total']:.0f} s "
        "(on a shared machine).",
        "",
    ]  # fmt: skip
    return lines
