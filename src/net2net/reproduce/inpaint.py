"""Experiment ``inpaint``: an ImageNet classifier as the source expert (NeurIPS talk, experiment 3; DESIGN.md row
"inpainting / colourisation with an ImageNet classifier").

The source expert Φ is a layer of the ImageNet EfficientNet-Lite0 (offline weights), applied to a *masked*
Fashion-MNIST image: a fixed box (by default the central 14×14 square) is set to grey (0 in [-1, 1]) before the
image goes through the network (grey replicated to RGB, upsampled to ``resize`` px). The target is the shipped
Fashion-MNIST autoencoder, encoding the *unmasked* image, so the cINN learns ``p(z_tgt | Φ(masked image))``: every
sample is a completion of the missing region that has to agree with what the ImageNet features say about the
visible part. The mask is deterministic, so the latent cache stores the encodings (:class:`MaskedImageExpert` keys
the cache by its box, fill, layer and input size).

Measured on held-out test images, inside the masked box and outside it (pixels in [-1, 1]):

* RMS error and PSNR of the cINN's samples (and of the mean of the samples) against the ground truth, next to the
  baselines: the masked input itself, the box filled with the training mean image, the autoencoder's
  reconstruction of the masked image, and the autoencoder's reconstruction of the original (its floor);
* diversity: mean pairwise RMS distance between the samples of one input, inside the box vs outside it;
* the Fashion-MNIST classifier's accuracy on the samples w.r.t. the true class.

The claim to check (talk, experiment 3): a translation from a frozen ImageNet classifier into an autoencoder
inpaints: samples keep the visible part and are diverse only where the input says nothing. Colourisation, the other
half of that experiment, does not apply to grey Fashion-MNIST images and is not run.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import FashionMNIST, Subset
from ..experts.protocols import FrozenExpert
from ..metrics import mean_pairwise_distance, psnr
from .experiment import (
    Experiment,
    FashionSettings,
    autoencoder_translation_config,
    batched,
    cinn_config,
    condition_of,
    decode,
    heldout_images,
    load_images,
    page_head,
    shipped_autoencoder,
    shipped_classifier,
    training_time_line,
)

__all__ = ["FULL", "QUICK", "InpaintSettings", "MaskedImageExpert", "apply_mask", "inpaint_config", "run_inpaint"]

log = logging.getLogger(__name__)

IMAGE_SIZE = 28  # Fashion-MNIST
MASK_FILL = 0.0  # the value of hidden pixels in [-1, 1]: mid grey, distinct from the black (-1) background


def _check_box(box: Sequence[int], size: int = IMAGE_SIZE) -> tuple[int, int, int, int]:
    """``box`` = (top, left, height, width) as ints, or a ValueError unless it is a proper part of the image."""
    if len(box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in box):
        raise ValueError(f"box must be four ints (top, left, height, width), got {box!r}")
    top, left, height, width = box
    if top < 0 or left < 0 or height < 1 or width < 1 or top + height > size or left + width > size:
        raise ValueError(f"box {tuple(box)} does not lie inside the {size}x{size} image")
    if height * width == size * size:
        raise ValueError(f"box {tuple(box)} covers the whole image: nothing would stay visible")
    return top, left, height, width


def apply_mask(images: Tensor, box: Sequence[int]) -> Tensor:
    """A copy of ``images`` ``(B, C, H, W)`` with the ``box`` = (top, left, height, width) set to grey (0)."""
    top, left, height, width = box
    out = images.clone()
    out[..., top : top + height, left : left + width] = MASK_FILL
    return out


def _mask(box: Sequence[int]) -> Tensor:
    """The ``(28, 28)`` boolean mask of the box (True: hidden)."""
    m = torch.zeros(IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
    top, left, height, width = box
    m[top : top + height, left : left + width] = True
    return m


class MaskedImageExpert(FrozenExpert):
    """Source expert: mask a fixed box of the image, then read a layer of the ImageNet EfficientNet-Lite0.

    The hidden pixels are set to grey (0 in [-1, 1]; the background is -1). Deterministic, so a latent cache can
    store its codes; its :attr:`config` (box, fill value, layer, input size) enters the cache key together with the
    network's weights.

    Arguments:
        box: (top, left, height, width) of the hidden region of the 28×28 image.
        layer: a layer of :func:`net2net.experts.layer.imagenet_expert` (``"pool"``: pooled ``(B, 1280)``;
            ``"_blocks.10"``: ``(B, 112, H/16, W/16)`` at input size ``resize``).
        resize: the input size of the network (the grey 28 px image is upsampled and replicated to RGB).
    """

    def __init__(self, box: Sequence[int], layer: str = "_blocks.10", resize: int = 56) -> None:
        super().__init__()
        from ..experts.layer import imagenet_expert

        self.box = _check_box(tuple(box))
        self.layer, self.resize = layer, int(resize)
        self.expert = imagenet_expert("efficientnet_lite0", layer, resize=self.resize)

    @property
    def config(self) -> dict[str, Any]:
        return {"box": list(self.box), "fill": MASK_FILL, "layer": self.layer, "resize": self.resize}

    def encode(self, x: Tensor) -> Tensor:
        """Φ(masked x): images in [-1, 1] ``(B, 1, 28, 28)`` -> the layer's activation."""
        return self.expert.encode(apply_mask(x, self.box))

    def forward(self, x: Tensor) -> Tensor:
        return self.encode(x)


@dataclass(frozen=True)
class InpaintSettings(FashionSettings):
    """Sizes of one reproduction (the first four fields are those of :class:`FashionSettings`).

    Arguments:
        train_images: Fashion-MNIST training images encoded and trained on (EfficientNet-Lite0 at 56 px up to
            ``_blocks.10`` encodes about 200 images/s on one loaded CPU core, the whole network about 115).
        steps: optimiser steps of each cINN.
        test_images: held-out test images evaluated.
        samples: cINN samples per test image (at least 2, for the diversity).
        layers: EfficientNet-Lite0 layers used as Φ, one cINN each (the first one's figure comes first).
        resize: input size of EfficientNet-Lite0 (28 px images are upsampled).
        box: (top, left, height, width) of the masked region.
        seed: of the data subsets, training and sampling.
    """

    layers: tuple[str, ...] = ("_blocks.10", "pool")
    resize: int = 56
    box: tuple[int, int, int, int] = (7, 7, 14, 14)
    seed: int = 0

    # samples >= 2: diversity needs pairs; below 16 px the ImageNet network has nothing left to see
    MINIMUMS: ClassVar[Mapping[str, int]] = {**FashionSettings.MINIMUMS, "resize": 16}

    def __post_init__(self) -> None:
        _check_box(self.box)  # before the int checks, as before: a bad box is named first
        super().__post_init__()

    def check(self) -> None:
        if isinstance(self.layers, str) or not self.layers or len(set(self.layers)) != len(self.layers):
            raise ValueError(f"layers must be a non-empty tuple of distinct layer names, got {self.layers!r}")


QUICK = InpaintSettings(train_images=10000, steps=1500, test_images=1000, layers=("_blocks.10",))
FULL = InpaintSettings()


def _slug(layer: str) -> str:
    """A file-name-safe form of a layer name (``"_blocks.10"`` -> ``"blocks10"``)."""
    return re.sub(r"[^0-9a-zA-Z]+", "", layer)


def _source(layer: str, settings: InpaintSettings) -> dict[str, Any]:
    params = {"box": list(settings.box), "layer": layer, "resize": settings.resize}
    return {"target": f"{__name__}.MaskedImageExpert", "params": params}


def inpaint_config(layer: str, settings: InpaintSettings) -> dict[str, Any]:
    """The training config (``target``/``params`` blocks) of the cINN from the masked image's EfficientNet-Lite0
    layer ``layer`` into the autoencoder."""
    cond = condition_of(MaskedImageExpert(settings.box, layer, settings.resize))
    return autoencoder_translation_config(f"inpaint-{_slug(layer)}", _source(layer, settings),
                                          cinn_config(cond, settings.steps), settings.steps, settings.train_images,
                                          settings.seed, val_images=min(256, settings.test_images))  # fmt: skip


def _region_errors(images: Tensor, real: Tensor, mask: Tensor) -> dict[str, float | None]:
    """RMS error (over all pixels of the region) and mean per-image PSNR, inside and outside ``mask``.

    ``images``: ``(N, n, 1, 28, 28)`` (``n`` candidates per input) or ``(N, 1, 28, 28)``; ``real``: ``(N, 1, 28, 28)``.
    The PSNR of an exact copy of the ground truth is infinite and given as ``None``.
    """
    if images.dim() == 4:
        images = images[:, None]  # (N, 1, 1, 28, 28)
    ref = real[:, None].expand_as(images)
    out: dict[str, float | None] = {}
    for where, m in (("inside", mask), ("outside", ~mask)):
        a = images[..., m].flatten(0, 1)  # (N*n, 1, K): the region's K pixels
        b = ref[..., m].flatten(0, 1)
        out[f"rms_{where}"] = float((a - b).double().square().mean().sqrt())
        exact = bool((a == b).all())
        out[f"psnr_{where}"] = None if exact else float(psnr(a[:, None], b[:, None]).mean())  # (N*n, 1, 1, K)
    return out


def _diversity(images: Tensor, mask: Tensor) -> dict[str, float]:
    """Mean pairwise RMS distance of the ``(N, n, 1, 28, 28)`` samples of one input, inside and outside ``mask``."""
    return {f"diversity_{where}": float(mean_pairwise_distance(images[..., m]).mean())
            for where, m in (("inside", mask), ("outside", ~mask))}  # fmt: skip


@torch.no_grad()
def run_inpaint(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                settings: InpaintSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/inpaint.md``, its figures and ``inpaint.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (10k training images, 1500 steps, the spatial layer only) instead of the full ones.
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
    """
    from ..flows import load_cinn

    exp = Experiment.start("inpaint", out_dir, quick, runs_dir, settings, QUICK, FULL)
    settings = exp.settings
    g = exp.generator()
    mask = _mask(settings.box)
    classifier, target = shipped_classifier(), shipped_autoencoder()

    def accuracy(images: Tensor, labels: Tensor) -> float:
        return float((batched(classifier, images).argmax(1) == labels).float().mean())

    def reconstruct(x: Tensor) -> Tensor:
        return batched(lambda b: target.decode(target.encode_dist(b)[0]), x).clamp(-1, 1)

    real, labels = heldout_images(settings.test_images, settings.seed)  # (N, 1, 28, 28)
    mean_image = load_images(Subset(FashionMNIST(split="train"), settings.train_images, seed=settings.seed))[0].mean(0)

    masked = apply_mask(real, settings.box)
    mean_fill = torch.where(mask, mean_image, real)
    baselines = {
        "masked input (grey box)": masked,
        "box filled with the training mean image": mean_fill,
        "autoencoder of the masked input": reconstruct(masked),
        "autoencoder of the original (floor)": reconstruct(real),
    }
    rows: list[dict[str, Any]] = [
        {"method": name, "layer": None, **_region_errors(x, real, mask), "accuracy": accuracy(x, labels)}
        for name, x in baselines.items()
    ]
    # how different two test images of the same class are, inside and outside the box (up to 50 per class)
    per_class = [real[labels == c][:50] for c in range(10)]
    k = min(len(x) for x in per_class)
    reference = _diversity(torch.stack([x[:k] for x in per_class]), mask) if k >= 2 else {}

    layers = []
    for layer in settings.layers:
        expert = MaskedImageExpert(settings.box, layer, settings.resize)
        run = exp.train(layer, inpaint_config(layer, settings), f"inpaint-{_slug(layer)}")
        tau = load_cinn(run / "cinn.safetensors")
        z_src = batched(expert.encode, real, batch_size=250)
        log.info("inpaint: evaluating the cINN of %s (%s) on %d test images", layer, tuple(z_src.shape[1:]), len(real))
        n = settings.samples
        samples = decode(target, tau.sample(z_src, n_samples=n, generator=g))  # (N, n, 1, 28, 28)
        shape = list(z_src.shape[1:])
        layers.append({"layer": layer, "shape": shape})
        sample_accuracy = accuracy(samples.flatten(0, 1), labels.repeat_interleave(n))  # all N*n samples
        rows.append({"method": "cINN sample", "layer": layer, **_region_errors(samples, real, mask),
                     **_diversity(samples, mask), "accuracy": sample_accuracy})  # fmt: skip
        sample_mean = samples.mean(1)  # (N, 1, 28, 28)
        rows.append({"method": f"cINN mean of {n} samples", "layer": layer,
                     **_region_errors(sample_mean, real, mask), "accuracy": accuracy(sample_mean, labels)})  # fmt: skip
        # figure: per row one test image: masked input, AE of the masked input, 6 samples, the original
        rows_shown = 8
        grid = torch.cat([masked[:rows_shown, None], baselines["autoencoder of the masked input"][:rows_shown, None],
                          samples[:rows_shown, :6], real[:rows_shown, None]], 1)  # (8, 9, 1, 28, 28)  # fmt: skip
        exp.figure(grid.flatten(0, 1), f"inpaint_{_slug(layer)}", nrow=grid.shape[1])

    summary = exp.summary(layers=layers, rows=rows, reference_same_class_diversity=reference,
                          train_seconds=exp.train_seconds, seconds_total=exp.elapsed())  # fmt: skip
    exp.write(summary, _page)
    return summary


def _fmt(value: float | None, digits: int = 3, missing: str = "—") -> str:
    return missing if value is None else f"{value:.{digits}f}"


# One-off comparison of Φ layers behind the default (InpaintSettings(train_images=5000, steps=800, test_images=500,
# layers=("_blocks.10", "pool", "_blocks.15"))); the full run repeats the first two side by side.
_LAYER_CHOICE = (
    "Layer choice: spatial features keep where things are, pooled ones do not, and the cINN has to keep the visible "
    "part. In a one-off comparison (5000 training images, 800 steps, 500 test images), Φ = `_blocks.10` (112×4×4 at "
    "56 px, the last block at 1/16 resolution) gave samples with RMS 0.425 inside / 0.290 outside the box and 81 % "
    "accuracy, against 0.506 / 0.386 / 72 % for the pooled 1280-d `pool` features and 0.503 / 0.392 / 71 % for the "
    "last block `_blocks.15` (320×2×2): with the pooled or 2×2 features the samples also change the visible part "
    "(sleeve length, brightness, silhouette). The full run (`net2net reproduce inpaint`) trains `_blocks.10` and "
    "`pool` side by side; the quick run only `_blocks.10`."
)


def _findings(summary: dict[str, Any]) -> list[str]:
    """One bullet per cINN: how its samples compare with the baselines inside and outside the box."""
    base = {r["method"]: r for r in summary["rows"] if r["layer"] is None}
    ae_masked, floor = base["autoencoder of the masked input"], base["autoencoder of the original (floor)"]
    mean_fill = base["box filled with the training mean image"]
    masked_accuracy = base["masked input (grey box)"]["accuracy"]
    out = []
    for r in summary["rows"]:
        if r["method"] != "cINN sample":
            continue
        best_baseline = min(ae_masked["rms_inside"], mean_fill["rms_inside"])
        better = "below" if r["rms_inside"] < best_baseline else "not below"
        ratio = r["diversity_inside"] / max(r["diversity_outside"], 1e-12)
        out.append(
            f"- Φ = `{r['layer']}`: inside the box a sample's RMS error ({r['rms_inside']:.3f}) is {better} the "
            f"baselines' (autoencoder of the masked input {ae_masked['rms_inside']:.3f}, mean-image fill "
            f"{mean_fill['rms_inside']:.3f}; the autoencoder's floor is {floor['rms_inside']:.3f}); outside it is "
            f"{r['rms_outside']:.3f} (floor {floor['rms_outside']:.3f}, autoencoder of the masked input "
            f"{ae_masked['rms_outside']:.3f}). Samples differ {ratio:.2f}× as much inside the box as outside "
            f"({r['diversity_inside']:.3f} vs {r['diversity_outside']:.3f}); the classifier recognises the true class "
            f"in {100 * r['accuracy']:.1f} % of them (masked input: {100 * masked_accuracy:.1f} %, floor: "
            f"{100 * floor['accuracy']:.1f} %)."
        )
    return out


def _page(summary: dict[str, Any]) -> list[str]:
    """The lines of ``inpaint.md``."""
    s = summary["settings"]
    top, left, height, width = s["box"]
    ref = summary["reference_same_class_diversity"]
    lines = [
        *page_head("Inpainting with an ImageNet classifier as the source expert (NeurIPS talk, experiment 3)", "inpaint", summary["quick"]),
        f"Source Φ: a layer of the ImageNet EfficientNet-Lite0 (offline weights) on a *masked* Fashion-MNIST image: "
        f"the {height}×{width} box at rows {top}–{top + height - 1}, columns {left}–{left + width - 1} is set to grey "
        f"(0 in [-1, 1]; the background is -1), the grey image is replicated to RGB and upsampled to {s['resize']} "
        f"px. Target: the shipped Fashion-MNIST autoencoder (z ∈ R⁶⁴) of the *unmasked* image. Each cINN trained "
        f"{s['steps']} steps on {s['train_images']} training images; evaluated on {s['test_images']} test images "
        f"({s['samples']} samples each). Colourisation, the other half of the talk's experiment, does not apply to "
        "grey Fashion-MNIST and is not run.",
        "",
        "| method | Φ layer | RMS inside | PSNR inside (dB) | RMS outside | PSNR outside (dB) | diversity inside | "
        "diversity outside | accuracy |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    shapes = {entry["layer"]: entry["shape"] for entry in summary["layers"]}
    for r in summary["rows"]:
        layer = "—" if r["layer"] is None else f"`{r['layer']}` ({'x'.join(map(str, shapes[r['layer']]))})"
        lines.append(
            f"| {r['method']} | {layer} | {_fmt(r['rms_inside'])} | {_fmt(r['psnr_inside'], 2, '∞')} | "
            f"{_fmt(r['rms_outside'])} | {_fmt(r['psnr_outside'], 2, '∞')} | {_fmt(r.get('diversity_inside'))} | "
            f"{_fmt(r.get('diversity_outside'))} | {100 * r['accuracy']:.1f} % |"
        )
    reference = (f"; for reference, two test images of the same class differ by {ref['diversity_inside']:.3f} inside "
                 f"and {ref['diversity_outside']:.3f} outside" if ref else "")  # fmt: skip
    lines += [
        "",
        "Inside / outside: the masked box and the rest of the image, pixels in [-1, 1] (RMS over all pixels of the "
        "region; PSNR per image, averaged, ∞ for an exact copy; the cINN sample row averages over all samples). "
        f"Diversity: mean pairwise RMS distance between the samples of one input, in the region{reference}. "
        "Accuracy: the shipped Fashion-MNIST classifier's, w.r.t. the true class.",
        "",
        "Findings (the talk's claim: the translation inpaints, keeping the visible part and varying where the input "
        "says nothing):",
        "",
        *_findings(summary),
        "",
        _LAYER_CHOICE,
        "",
    ]
    for entry in summary["layers"]:
        layer, shape = entry["layer"], entry["shape"]
        lines += [f"**Φ = `{layer}` ({'x'.join(map(str, shape))})** (per row one test image: masked input, "
                  "autoencoder of the masked input, 6 cINN samples, the original):",
                  "", f"![{layer}](figures/inpaint_{_slug(layer)}.png)", ""]  # fmt: skip
    lines += [training_time_line(summary) + ".", ""]
    return lines
