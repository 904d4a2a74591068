"""Experiment ``superres``: stochastic super-resolution (paper Fig. 4; DESIGN.md §5 "stochastic super-resolution").

The paper translates the code of an autoencoder trained on 32 px (or 16 px) faces into the code of an autoencoder
at 256 px: the cINN samples ``p(z_high | z_low)``, i.e. many high-resolution images that agree with one
low-resolution input. Here, in two parts on one page:

1. **Fashion-MNIST, 14 px -> 28 px.** A low-resolution autoencoder (``configs/autoencoder/fashion_mnist_14.yaml``,
   trained by the experiment) encodes the downsampled image (source Φ = its encoder on the 28 px image resized to
   14 px); the target is the shipped 28 px autoencoder; a cINN is trained on cached latents. Measured on held-out
   test images: *consistency* (PSNR / RMS between the translation downsampled to 14 px and the 14 px input),
   *fidelity* (PSNR against the original 28 px image, which a stochastic method is not asked to match), *diversity*
   (mean pairwise RMS distance of several samples per input), the domain FID of the translations against real test
   images (floor: the 28 px autoencoder's own reconstructions) and the classifier's accuracy w.r.t. the input's
   class; baselines: bilinear and bicubic upsampling of the 14 px input.
2. **Faces, 16 px -> the DCGAN face generator** through synthetic pairs (supplementary G.2): pairs ``(x, z)`` with
   ``x = G(z)`` (net2net.data.DCGANFaces), the condition is ``x`` downsampled to 16x16 (a spatial ``(3, 16, 16)``
   condition through the cINN's convolutional embedder of Tab. S3b, which keeps the image's layout instead of
   flattening it), the target code is ``z`` itself (a generator has no encoder). Measured on held-out generated
   faces: consistency at 16 px against the baselines of random ``z`` (unconditional samples) and of bilinear
   upsampling, fidelity at 64 px, diversity at 64 px.

The paper's claim to check: the samples are diverse (different plausible details) yet consistent with the
low-resolution input, i.e. the cINN models the one-to-many nature of super-resolution, where a deterministic
upsampling gives one blurry answer.
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

from ..data import DCGANFaces
from ..experts.encoder_source import resize_images
from ..io import file_digest
from ..metrics import domain_fid, mean_pairwise_distance, psnr
from .experiment import (
    FASHION_MNIST_SIZES,
    Experiment,
    Settings,
    autoencoder_translation_config,
    batched,
    cinn_config,
    classifier_features,
    decode,
    heldout_images,
    page_head,
    shipped_autoencoder,
    shipped_classifier,
    trainer_config,
    training_time_line,
)

__all__ = ["FULL", "QUICK", "SuperresSettings", "face_config", "fashion_config", "low_res_autoencoder_config",
           "run_superres"]  # fmt: skip

log = logging.getLogger(__name__)

LOW_RES = 14  # Fashion-MNIST input side (28 / 2: the decoder's 7 * 2 layout)
FACE_LOW_RES = 16  # face input side (64 / 4)
FACE_Z_DIM = 100  # the DCGAN generator's latent


@dataclass(frozen=True)
class SuperresSettings(Settings):
    """Sizes of one reproduction.

    Arguments:
        ae_steps: optimiser steps of the 14 px autoencoder (batch 64).
        train_images: Fashion-MNIST training images (the autoencoder's and the cINN's).
        steps: optimiser steps of the Fashion-MNIST cINN.
        test_images: held-out Fashion-MNIST test images evaluated.
        face_train: synthetic (face, z) training pairs drawn from the DCGAN.
        face_steps: optimiser steps of the face cINN.
        face_test: held-out generated faces evaluated.
        samples: translations per input (diversity; at least 2).
        seed: of the data subsets, training and sampling.
    """

    ae_steps: int = 6000
    train_images: int = 60000
    steps: int = 6000
    test_images: int = 2000
    face_train: int = 50000
    face_steps: int = 6000
    face_test: int = 1000
    samples: int = 8
    seed: int = 0

    # samples >= 2: diversity needs pairs
    MINIMUMS: ClassVar[Mapping[str, int]] = {"samples": 2}
    MAXIMUMS: ClassVar[Mapping[str, int]] = FASHION_MNIST_SIZES


QUICK = SuperresSettings(ae_steps=800, train_images=10000, steps=800, test_images=1000, face_train=6144,
                         face_steps=800, face_test=256)  # fmt: skip
FULL = SuperresSettings()


def low_res_autoencoder_config(settings: SuperresSettings = FULL) -> dict[str, Any]:
    """The training config of the 14 px Fashion-MNIST autoencoder; for :data:`FULL` it equals
    ``configs/autoencoder/fashion_mnist_14.yaml`` (a test checks this)."""
    train: dict[str, Any] = {"target": "net2net.data.FashionMNIST", "params": {"split": "train", "size": LOW_RES,
                                                                                "channels": 1}}  # fmt: skip
    if settings.train_images < 60000:
        train = {"target": "net2net.data.Subset", "params": {"dataset": train, "n": settings.train_images,
                                                            "seed": settings.seed}}  # fmt: skip
    every = min(500, settings.ae_steps)
    return {
        "model": {"target": "net2net.training.autoencoder_module.AutoencoderModule", "params": {
            "image_size": LOW_RES, "in_channels": 1, "z_dim": 64,
            # the "small" preset at half its widths (it has no decoder widths for 14 px, and a quarter of the
            # pixels need less): ResNet (1, 1, 1, 1) x 8 encoder; decoder ch 16 with the 28 px multipliers (4, 2, 1)
            # without the last up-block (7x7x64 -> 14x14x32), attention at 14 px as the 28 px decoder's
            "encoder_config": {"target": "net2net.autoencoder.Encoder", "params": {
                "image_size": LOW_RES, "in_channels": 1, "z_dim": 64, "depths": [1, 1, 1, 1], "base_width": 8}},
            "decoder_config": {"target": "net2net.autoencoder.Decoder", "params": {
                "image_size": LOW_RES, "out_channels": 1, "z_dim": 64, "ch": 16, "channel_multipliers": [4, 2],
                "attn_resolution": LOW_RES, "n_classes": 100}},
            "learning_rate": 1.0e-3, "betas": [0.5, 0.9],
            "loss_config": {"target": "net2net.autoencoder.AutoencoderLoss", "params": {
                "pixel_weight": 1.0, "kl_weight": 4.0e-4, "disc_start": 1000000000}}}},
        "seed": settings.seed,
        "data": {"target": "net2net.training.datamodule.DataModule", "params": {
            "batch_size": 64, "num_workers": 0, "train": train,
            "validation": {"target": "net2net.data.FashionMNIST", "params": {"split": "test", "size": LOW_RES,
                                                                             "channels": 1}}}},
        "lightning": {
            "trainer": {"max_steps": settings.ae_steps, "val_check_interval": every, "check_val_every_n_epoch": None,
                        "limit_val_batches": 8, "num_sanity_val_steps": 0, "log_every_n_steps": 25},
            "callbacks": {"image_logger": {"params": {"every_n_steps": every, "max_images": 16, "scale": 4}},
                          "checkpoint": {"params": {"every_n_train_steps": every}}}},
    }  # fmt: skip


def fashion_config(ae_weights: str | Path, settings: SuperresSettings) -> dict[str, Any]:
    """The cINN config: 14 px autoencoder code (its encoder on the downsampled 28 px image) -> the shipped 28 px
    autoencoder's code, trained on cached latents of ``settings.train_images`` training images."""
    source = {"target": "net2net.experts.resize.low_res_encoder", "params": {"path": str(ae_weights)}}
    return autoencoder_translation_config("superres-fmnist", source, cinn_config({"cond_dim": 64}, settings.steps),
                                          settings.steps, settings.train_images, settings.seed,
                                          val_images=min(512, settings.test_images))  # fmt: skip


def face_config(settings: SuperresSettings) -> dict[str, Any]:
    """The cINN config of the synthetic face pairs: the 16 px face (a ``(3, 16, 16)`` condition) -> the DCGAN's
    ``z`` (the data's ``"z"`` entry: the latent cache stores the flat codes as the targets)."""
    return {
        "model": cinn_config({"cond_shape": [3, FACE_LOW_RES, FACE_LOW_RES]}, settings.face_steps, dim=FACE_Z_DIM),
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "name": "superres-faces", "batch_size": 128, "source_key": "image", "target_key": "z",
            "source": {"target": "net2net.experts.resize.Downsample", "params": {"size": FACE_LOW_RES}},
            "target": {"target": "net2net.data.faces.load_dcgan_face_generator"},
            "train": {"target": "net2net.data.DCGANFaces", "params": {
                "n_images": settings.face_train, "split": "train", "seed": settings.seed}},
            # validation latents from another seed than the evaluated test faces
            "validation": {"target": "net2net.data.DCGANFaces", "params": {
                "n_images": min(512, settings.face_test), "split": "test", "seed": settings.seed + 1}}}},
        "seed": settings.seed,
        "lightning": trainer_config(settings.face_steps),
    }  # fmt: skip


def _paired_metrics(images: Tensor, low: Tensor, real: Tensor) -> dict[str, float]:
    """Consistency, fidelity and diversity of ``m`` outputs per input, ``images`` ``(N, m, C, H, W)``.

    Consistency: mean PSNR (dB) and RMS distance ([-1, 1] units) between every output downsampled to the size of
    ``low`` ``(N, C, h, w)`` and its input; fidelity: mean PSNR against the original ``real`` ``(N, C, H, W)``;
    diversity: mean pairwise RMS distance of the ``m`` outputs of one input (0 for ``m = 1``).
    """
    m = images.shape[1]
    flat = images.flatten(0, 1)  # (N * m, C, H, W)
    down = resize_images(flat, (low.shape[-2], low.shape[-1]))  # (N * m, C, h, w)
    low_m = low.repeat_interleave(m, 0)
    return {
        "consistency_psnr": float(psnr(down, low_m).mean()),
        "consistency_rms": float((down - low_m).square().flatten(1).mean(1).sqrt().mean()),
        "fidelity_psnr": float(psnr(flat, real.repeat_interleave(m, 0)).mean()),
        "diversity": float(mean_pairwise_distance(images).mean()) if m > 1 else 0.0,
    }


def _upsample(low: Tensor, size: int, mode: str) -> Tensor:
    """``low`` upsampled to ``size`` by ``mode`` (``"nearest"``, ``"bilinear"`` or ``"bicubic"``), in [-1, 1]."""
    if mode == "nearest":
        return F.interpolate(low, size=(size, size), mode="nearest")
    return F.interpolate(low, size=(size, size), mode=mode, align_corners=False).clamp(-1, 1)


@torch.no_grad()
def _fashion_part(exp: Experiment[SuperresSettings], g: torch.Generator) -> dict[str, Any]:
    from ..experts.resize import low_res_encoder
    from ..flows import load_cinn

    settings = exp.settings
    ae_run = exp.train("ae14", low_res_autoencoder_config(settings), "superres-ae14", "autoencoder.safetensors")
    ae_weights = ae_run / "autoencoder.safetensors"
    # the cINN run is named after the autoencoder's weights too: retrained weights -> a new cINN
    run = exp.train("fmnist_cinn", fashion_config(ae_weights, settings),
                    f"superres-fmnist-{file_digest(ae_weights)[:8]}")  # fmt: skip
    tau = load_cinn(run / "cinn.safetensors")
    phi = low_res_encoder(ae_weights)
    target, classifier = shipped_autoencoder(), shipped_classifier()
    features = classifier_features(classifier)

    real, labels = heldout_images(settings.test_images, settings.seed)  # (N, 1, 28, 28)
    k = settings.samples
    low = resize_images(real, LOW_RES)  # (N, 1, 14, 14): what the source sees
    z_src = batched(phi.encode, real)  # (N, 64)
    samples = decode(target, tau.sample(z_src, n_samples=k, generator=g))  # (N, k, 1, 28, 28)

    def evaluate(images: Tensor) -> dict[str, float]:
        """All metrics of ``(N, m, 1, 28, 28)`` outputs; the FID of the first output per input (N against the N
        test images), the accuracy over all outputs."""
        m = images.shape[1]
        hits = batched(classifier, images.flatten(0, 1)).argmax(1) == labels.repeat_interleave(m)
        return {**_paired_metrics(images, low, real), "fid": domain_fid(images[:, 0], real, features),
                "accuracy": float(hits.float().mean())}  # fmt: skip

    recon = batched(target, real).clamp(-1, 1)  # the 28 px autoencoder's reconstruction of the original
    methods = {
        "cINN (14 px AE -> 28 px AE)": evaluate(samples),
        "bilinear upsampling": evaluate(_upsample(low, 28, "bilinear")[:, None]),
        "bicubic upsampling": evaluate(_upsample(low, 28, "bicubic")[:, None]),
        "28 px AE reconstruction of the original (reference)": evaluate(recon[:, None]),
    }
    reference = {
        "accuracy_real": float((batched(classifier, real).argmax(1) == labels).float().mean()),
        # phi.target: the 14 px autoencoder; its reconstructions of the 14 px inputs
        "low_res_ae_psnr": float(psnr(batched(phi.target, low).clamp(-1, 1), low).mean()),
        "diversity_real_same_class": _same_class_diversity(real, labels, k, g),
    }
    # figure: per row the 14 px input (nearest), bicubic, up to 6 samples, the original
    r = 8
    grid = torch.cat([_upsample(low[:r], 28, "nearest")[:, None], _upsample(low[:r], 28, "bicubic")[:, None],
                      samples[:r, :6], real[:r, None]], 1)  # fmt: skip  # (r, 3 + min(k, 6), 1, 28, 28)
    exp.figure(grid.flatten(0, 1), "superres_fashion_mnist", nrow=grid.shape[1], scale=2)
    return {"methods": methods, "reference": reference}


def _same_class_diversity(real: Tensor, labels: Tensor, k: int, g: torch.Generator) -> float:
    """Mean pairwise RMS distance of ``k`` random real test images of one class (a scale for the diversity)."""
    groups = []
    for c in labels.unique():
        idx = torch.nonzero(labels == c).flatten()
        usable = len(idx) - len(idx) % k
        if usable:
            perm = idx[torch.randperm(len(idx), generator=g)[:usable]]
            groups.append(real[perm].view(-1, k, *real.shape[1:]))  # (n_c, k, 1, 28, 28)
    return float(mean_pairwise_distance(torch.cat(groups)).mean()) if groups else float("nan")


@torch.no_grad()
def _face_part(exp: Experiment[SuperresSettings], g: torch.Generator) -> dict[str, Any]:
    from ..data.faces import load_dcgan_face_generator
    from ..experts.resize import Downsample
    from ..flows import load_cinn

    settings = exp.settings
    run = exp.train("faces_cinn", face_config(settings), "superres-faces")
    tau = load_cinn(run / "cinn.safetensors")
    dcgan = load_dcgan_face_generator()

    test = DCGANFaces(n_images=settings.face_test, split="test", seed=settings.seed)
    real = torch.stack([test[i]["image"] for i in range(len(test))])  # (N, 3, 64, 64)
    n, k = len(real), settings.samples
    low = Downsample(FACE_LOW_RES).encode(real)  # (N, 3, 16, 16): the condition
    z = tau.sample(low, n_samples=k, generator=g)  # (N, k, 100)
    samples = batched(dcgan, z.flatten(0, 1), 250).clamp(-1, 1).view(n, k, 3, 64, 64)
    z_rand = torch.randn(n * k, FACE_Z_DIM, generator=g)
    random = batched(dcgan, z_rand, 250).clamp(-1, 1).view(n, k, 3, 64, 64)
    bilinear = _upsample(low, 64, "bilinear")
    methods = {
        "cINN (16 px face -> DCGAN z)": _paired_metrics(samples, low, real),
        "random z (unconditional DCGAN samples)": _paired_metrics(random, low, real),
        "bilinear upsampling": _paired_metrics(bilinear[:, None], low, real),
    }
    r = 8
    grid = torch.cat([_upsample(low[:r], 64, "nearest")[:, None], bilinear[:r, None], samples[:r, :6],
                      real[:r, None]], 1)  # fmt: skip  # (r, 3 + min(k, 6), 3, 64, 64)
    exp.figure(grid.flatten(0, 1), "superres_faces", nrow=grid.shape[1], scale=1)
    return {"methods": methods}


def run_superres(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                 settings: SuperresSettings | None = None) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/superres.md``, its figures and ``superres.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (:data:`QUICK`) instead of the full ones (:data:`FULL`).
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
    """
    exp = Experiment.start("superres", out_dir, quick, runs_dir, settings, QUICK, FULL)
    g = exp.generator()
    fashion = _fashion_part(exp, g)
    faces = _face_part(exp, g)
    summary = exp.summary(fashion_mnist=fashion, faces=faces, train_seconds=exp.train_seconds,
                          seconds_total=exp.elapsed())  # fmt: skip
    exp.write(summary, _page)
    return summary


def _page(summary: dict[str, Any]) -> list[str]:
    s = summary["settings"]
    fm, faces = summary["fashion_mnist"], summary["faces"]
    ref = fm["reference"]
    lines = [
        *page_head("Stochastic super-resolution (Fig. 4)", "superres", summary["quick"]),
        "The paper translates an autoencoder on low-resolution images into an autoencoder at high resolution: "
        "the cINN samples high-resolution images that agree with the low-resolution input. Consistency: PSNR "
        "(dB, images in [-1, 1], range 2) and RMS distance between the output downsampled to the input's size "
        "(bilinear, antialiased) and the input. Fidelity: PSNR against the original high-resolution image (not "
        "asked of a stochastic method: it is one of many consistent answers). Diversity: mean pairwise RMS "
        f"distance between the {s['samples']} samples of one input (deterministic baselines: 0).",
        "",
        "## Fashion-MNIST: 14 px -> 28 px",
        "",
        f"Source Φ: the encoder of a 14 px autoencoder (`configs/autoencoder/fashion_mnist_14.yaml`, "
        f"{s['ae_steps']} steps, z ∈ R⁶⁴; its own reconstructions of the 14 px test inputs: "
        f"{ref['low_res_ae_psnr']:.2f} dB) on the 28 px image resized to 14 px; target: the shipped 28 px "
        f"autoencoder. The cINN trained {s['steps']} steps on {s['train_images']} training images; evaluated on "
        f"{s['test_images']} test images. FID: domain FID (the classifier's pooled features) of one sample per "
        "input against the test images; accuracy: the shipped classifier's on the outputs (all samples) w.r.t. "
        f"the input's class (on the originals: {100 * ref['accuracy_real']:.1f} %). For scale: {s['samples']} "
        f"random test images of one class are {ref['diversity_real_same_class']:.3f} apart.",
        "",
        "| method | consistency PSNR (dB) ↑ | consistency RMS ↓ | fidelity PSNR (dB) | diversity | FID ↓ | "
        "accuracy ↑ |",
        "|---|---|---|---|---|---|---|",
        *[f"| {name} | {m['consistency_psnr']:.2f} | {m['consistency_rms']:.3f} | {m['fidelity_psnr']:.2f} | "
          f"{m['diversity']:.3f} | {m['fid']:.2f} | {100 * m['accuracy']:.1f} % |"
          for name, m in fm["methods"].items()],
        "",
        "Rows: the 14 px input (shown enlarged, nearest), bicubic upsampling, 6 cINN samples, the original 28 px "
        "test image.",
        "",
        "![Fashion-MNIST super-resolution](figures/superres_fashion_mnist.png)",
        "",
        "## Faces: 16 px -> the DCGAN face generator (synthetic pairs)",
        "",
        f"Pairs (x = G(z), z) from the pretrained DCGAN face generator (PyPI `gan-face-generate`); the condition "
        f"is x downsampled to 16x16, a (3, 16, 16) condition through the cINN's convolutional embedder; the cINN "
        f"(z ∈ R¹⁰⁰) trained {s['face_steps']} steps on {s['face_train']} pairs; evaluated on {s['face_test']} "
        "held-out generated faces (test-split latents). Consistency at 16 px, fidelity and diversity at 64 px.",
        "",
        "| method | consistency PSNR (dB) ↑ | consistency RMS ↓ | fidelity PSNR (dB) | diversity |",
        "|---|---|---|---|---|",
        *[f"| {name} | {m['consistency_psnr']:.2f} | {m['consistency_rms']:.3f} | {m['fidelity_psnr']:.2f} | "
          f"{m['diversity']:.3f} |" for name, m in faces["methods"].items()],
        "",
        "Rows: the 16 px input (shown enlarged, nearest), bilinear upsampling, 6 cINN samples, the original 64 px "
        "face.",
        "",
        "![Face super-resolution](figures/superres_faces.png)",
        "",
        *_findings(summary),
        "",
        f"{training_time_line(summary)} (wall time, on a machine shared with other jobs when it was run). The full "
        f"version (`net2net reproduce superres`: {FULL.ae_steps} autoencoder steps, {FULL.steps} steps per cINN, all "
        f"{FULL.train_images} training images, {FULL.face_train} face pairs) needs about an hour on 2 idle CPU cores "
        "(an estimate from the step times of the quick version).",
    ]  # fmt: skip
    return lines


def _findings(summary: dict[str, Any]) -> list[str]:
    """The comparison with the paper's claim, in words, from the measured numbers."""
    fm, ref = summary["fashion_mnist"]["methods"], summary["fashion_mnist"]["reference"]
    cinn, bicubic = fm["cINN (14 px AE -> 28 px AE)"], fm["bicubic upsampling"]
    recon = fm["28 px AE reconstruction of the original (reference)"]
    faces = summary["faces"]["methods"]
    fc, rnd = faces["cINN (16 px face -> DCGAN z)"], faces["random z (unconditional DCGAN samples)"]

    def cmp(a: float, b: float) -> str:
        return "above" if a > b else "below"

    follows = "so the cINN follows the input" if fc["consistency_psnr"] > rnd["consistency_psnr"] else (
        "so the cINN does not follow the input better than chance")
    return [
        "## Findings",
        "",
        "The paper shows this experiment qualitatively (Fig. 4, no numbers); its claim is that the samples are "
        "diverse and sharp yet consistent with the low-resolution input.",
        "",
        f"- Diverse: the samples of one input differ ({cinn['diversity']:.3f} on Fashion-MNIST, "
        f"{100 * cinn['diversity'] / ref['diversity_real_same_class']:.0f} % of the distance between random test "
        f"images of one class; faces {fc['diversity']:.3f}, {100 * fc['diversity'] / rnd['diversity']:.0f} % of "
        "the distance between unconditional samples), where upsampling gives one answer.",
        f"- Consistent: on faces the samples are {fc['consistency_psnr']:.1f} dB from the 16 px input against "
        f"{rnd['consistency_psnr']:.1f} dB for random z, {follows}. On Fashion-MNIST "
        f"{cinn['consistency_psnr']:.1f} dB, {cmp(cinn['consistency_psnr'], recon['consistency_psnr'])} the "
        f"{recon['consistency_psnr']:.1f} dB of the 28 px autoencoder's reconstructions of the originals (a "
        f"practical ceiling for images decoded by it) and {cmp(cinn['consistency_psnr'], bicubic['consistency_psnr'])} "
        f"bicubic upsampling ({bicubic['consistency_psnr']:.1f} dB), which keeps the low frequencies by "
        "construction.",
        f"- Sharp: the domain FID of the cINN's samples ({cinn['fid']:.2f}) is "
        f"{cmp(cinn['fid'], bicubic['fid'])} bicubic upsampling's ({bicubic['fid']:.2f}); the floor, the 28 px "
        f"autoencoder's reconstructions, is {recon['fid']:.2f}. The classifier recognises the input's class in "
        f"{100 * cinn['accuracy']:.1f} % of the samples (bicubic {100 * bicubic['accuracy']:.1f} %, reconstructions "
        f"{100 * recon['accuracy']:.1f} %).",
    ]
