"""The main job: text -> image with Sentence-BERT and the Fashion-MNIST autoencoder (paper Sec. 4.1, offline).

``run_text2image(...)`` (``net2net demo``):

1. trains the cINN of ``configs/translation/text2image.yaml`` (:func:`text2image_config` builds the same config)
   on cached latents: the first run encodes Fashion-MNIST with the shipped autoencoder and the captions with
   all-MiniLM-L6-v2, then trains; the run folder is kept under the cache directory, keyed by the config, so the
   next call reuses it (an interrupted run resumes);
2. draws ``samples_per_prompt`` images for each prompt of :data:`DEMO_PROMPTS` (training phrasings, held-out
   phrasings and free prompts) into one PNG with the prompts written beside the rows, and saves the raw tensors;
3. measures what the translation learned on the held-out phrasings of every class: the accuracy of the shipped
   Fashion-MNIST classifier on generated images (is it the class the sentence describes?), and the diversity of
   the samples of each prompt against that of real test images of the class.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from PIL import Image, ImageDraw, ImageFont

from ..data import FASHION_MNIST_CAPTIONS, FASHION_MNIST_CLASSES, FashionMNIST
from ..data.captions import HELD_OUT_ORIGINAL
from ..data.latent_cache import default_cache_dir
from ..images import make_grid
from ..io import atomic_path, atomic_save_safetensors
from ..metrics import mean_pairwise_distance
from .translate import Net2Net

__all__ = ["DEMO_PROMPTS", "run_text2image", "text2image_config"]

log = logging.getLogger(__name__)

# the rows of the demo's PNG: (prompt, class it describes, kind)
DEMO_PROMPTS: tuple[tuple[str, int, str], ...] = (
    ("a pair of running shoes", 7, "held-out"),
    ("something to wear in winter", 4, "held-out"),
    ("something to wear on your legs", 1, "held-out"),
    ("footwear for a hot day at the beach", 5, "held-out"),
    ("something to carry your things in", 8, "held-out"),
    ("something elegant to wear to a party", 3, "held-out"),
    ("a t-shirt", 0, "train"),
    ("a knitted jumper", 2, "train"),
    ("an ankle boot", 9, "train"),
    ("a formal shirt for the office", 6, "held-out"),
)

_BASE_CONFIG: dict[str, Any] = {
    "model": {
        "target": "net2net.training.cinn.CINNModule",
        "params": {
            "batch_size": 128,
            "flow_config": {
                "target": "net2net.flows.ConditionalINN",
                "params": {"dim": 64, "cond_dim": 384, "n_blocks": 12, "hidden_dim": 256, "hidden_depth": 2,
                           "embedding_dim": 64},
            },
            "optim": {"base_lr": 1.2e-5, "max_lr": 1.5e-3, "warmup_steps": 200, "decay_steps": 4000},
        },
    },
    "data": {
        "target": "net2net.training.translation.TranslationDataModule",
        "params": {
            "name": "text2image",
            "batch_size": 128,
            "source_key": "captions",
            "condition_noise": 0.0,
            "source": {"target": "net2net.experts.text.SentenceEncoder"},
            "target": {"target": "net2net.experts.target.load_autoencoder_target",
                       "params": {"path": "pretrained:fashion_mnist_autoencoder"}},
            "train": {"target": "net2net.data.CaptionedDataset",
                      "params": {"part": "train", "generated_per_class": 200,
                                 "dataset": {"target": "net2net.data.FashionMNIST", "params": {"split": "train"}}}},
            "validation": {"target": "net2net.data.CaptionedDataset",
                           "params": {"part": "held_out",
                                      "dataset": {"target": "net2net.data.FashionMNIST", "params": {"split": "test"}}}},
        },
    },
    "seed": 0,
    "lightning": {
        "trainer": {"max_steps": 4000, "precision": "auto", "val_check_interval": 1000, "check_val_every_n_epoch": None,
                    "limit_val_batches": 10, "num_sanity_val_steps": 0, "log_every_n_steps": 50},
        "callbacks": {"image_logger": {"params": {"every_n_steps": 1000, "max_images": 64, "scale": 2}},
                      "checkpoint": {"params": {"every_n_train_steps": 1000}}},
    },
}  # fmt: skip


_TRAINER_PRECISION = {"auto": "auto", "32": "32-true", "bf16": "bf16-mixed"}


def text2image_config(
    steps: int | None = None, seed: int | None = None, precision: str | None = None
) -> dict[str, Any]:
    """The training config of the demo (equal to ``configs/translation/text2image.yaml`` for the defaults).

    ``precision`` (``"32"``, ``"bf16"`` or ``"auto"``, see :mod:`net2net.training.precision`) sets the trainer's
    precision; None keeps the config's (``auto``: bf16 mixed where the model's step measures faster).
    """
    cfg = copy.deepcopy(_BASE_CONFIG)
    if precision is not None:
        if precision not in _TRAINER_PRECISION:
            raise ValueError(f"precision: expected one of {list(_TRAINER_PRECISION)}, got {precision!r}")
        cfg["lightning"]["trainer"]["precision"] = _TRAINER_PRECISION[precision]
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        cfg["lightning"]["trainer"]["max_steps"] = steps
        optim = cfg["model"]["params"]["optim"]
        optim["warmup_steps"] = min(optim["warmup_steps"], steps // 4)
        optim["decay_steps"] = steps  # the cosine ends with the run
        every = max(1, min(1000, steps))
        cfg["lightning"]["trainer"]["val_check_interval"] = every
        cfg["lightning"]["callbacks"]["image_logger"]["params"]["every_n_steps"] = every
        cfg["lightning"]["callbacks"]["checkpoint"]["params"]["every_n_train_steps"] = every
    if seed is not None:
        cfg["seed"] = int(seed)
    return cfg


def _key(cfg: dict[str, Any]) -> str:
    """Digest of the config and of the target autoencoder's weights (new shipped weights -> a new run)."""
    from ..pretrained import resolve_weights

    weights = resolve_weights(cfg["data"]["params"]["target"]["params"]["path"])
    digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else "missing"
    return hashlib.sha256(json.dumps([cfg, digest], sort_keys=True).encode()).hexdigest()[:12]


def _labelled_grid(images: torch.Tensor, labels: Sequence[str], scale: int = 2, label_width: int = 300) -> Image.Image:
    """Rows of images ``(R, n, C, H, W)`` with a text label left of each row."""
    r, n = images.shape[:2]
    rows = []
    for i in range(r):
        row = make_grid(images[i], nrow=n, scale=scale, padding=2)  # (C, h, w)
        rows.append(row)
    h, w = rows[0].shape[1:]
    canvas = Image.new("RGB", (label_width + w, r * h), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for i, row in enumerate(rows):
        arr = ((row.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
        img = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr).convert("RGB")
        canvas.paste(img, (label_width, i * h))
        draw.text((6, i * h + h // 2 - 6), labels[i], fill="black", font=font)
    return canvas


@torch.no_grad()
def evaluate_text2image(
    model: Net2Net, classify: Any, samples_per_caption: int = 100, seed: int = 0,
    temperatures: Sequence[float] = (1.0, 0.7),
) -> dict[str, Any]:  # fmt: skip
    """Classifier accuracy and diversity of images generated from every held-out phrasing.

    Returns ``{"held_out_accuracy", "held_out_accuracy_by_set", "accuracy_per_class", "per_prompt": [...],
    "diversity_mean", "diversity_real_mean", "by_temperature"}``; ``by_set`` splits the phrasings into the
    ``original`` ones (the first :data:`~net2net.data.captions.HELD_OUT_ORIGINAL` of each class) and those ``added``
    later (see :data:`~net2net.data.FASHION_MNIST_CAPTIONS`); diversity is the mean pairwise RMS pixel distance of
    the samples of
    one prompt (``diversity_real``: of real test images of its class, for scale). The main numbers are for
    ``temperatures[0]`` (1: samples of the learned distribution); ``by_temperature`` repeats accuracy and diversity
    for every temperature (v ~ N(0, T² I): lower T trades diversity for typical, more recognisable images).
    """
    if not temperatures or any(not 0 < t <= 2 for t in temperatures):
        raise ValueError(f"temperatures must be a non-empty sequence of values in (0, 2], got {temperatures!r}")
    main = _evaluate_at(model, classify, samples_per_caption, seed, float(temperatures[0]))
    main["by_temperature"] = {}
    for t in temperatures:
        res = main if t == temperatures[0] else _evaluate_at(model, classify, samples_per_caption, seed, float(t))
        main["by_temperature"][str(float(t))] = {
            "held_out_accuracy": res["held_out_accuracy"], "held_out_accuracy_by_set": res["held_out_accuracy_by_set"],
            "diversity_mean": res["diversity_mean"]}  # fmt: skip
    main["temperature"] = float(temperatures[0])
    return main


def _evaluate_at(model: Net2Net, classify: Any, samples_per_caption: int, seed: int, temperature: float) -> dict[str, Any]:
    g = torch.Generator().manual_seed(seed)
    test = FashionMNIST(split="test")
    labels = torch.tensor(test.labels)
    per_prompt, correct, total = [], torch.zeros(10), torch.zeros(10)
    for label, parts in FASHION_MNIST_CAPTIONS.items():
        idx = torch.nonzero(labels == label).flatten()[:samples_per_caption].tolist()
        real = torch.stack([test[i]["image"] for i in idx])  # only the images compared, not all 10k
        real_div = float(mean_pairwise_distance(real[None]).mean())
        for caption in parts["held_out"]:
            images = model.translate([caption], n=samples_per_caption, temperature=temperature, generator=g)[0]  # (n, C, H, W)
            pred = classify(images).argmax(1)
            acc = float((pred == label).float().mean())
            correct[label] += float((pred == label).sum())
            total[label] += len(pred)
            per_prompt.append({
                "prompt": caption, "class": FASHION_MNIST_CLASSES[label], "accuracy": round(acc, 4),
                "set": "original" if caption in parts["held_out"][:HELD_OUT_ORIGINAL] else "added",
                "diversity": round(float(mean_pairwise_distance(images[None])[0]), 4),
                "diversity_real": round(real_div, 4),
            })  # fmt: skip
    per_class = (correct / total.clamp_min(1)).tolist()
    by_set = {name: [p["accuracy"] for p in per_prompt if p["set"] == name] for name in ("original", "added")}
    return {
        "held_out_accuracy": round(float(correct.sum() / total.sum()), 4),
        "held_out_accuracy_by_set": {name: round(sum(a) / len(a), 4) for name, a in by_set.items() if a},
        "accuracy_per_class": {FASHION_MNIST_CLASSES[i]: round(a, 4) for i, a in enumerate(per_class)},
        "samples_per_prompt": samples_per_caption,
        "diversity_mean": round(sum(p["diversity"] for p in per_prompt) / len(per_prompt), 4),
        "diversity_real_mean": round(sum(p["diversity_real"] for p in per_prompt) / len(per_prompt), 4),
        "per_prompt": per_prompt,
    }


def run_text2image(
    out_dir: str | Path = "outputs/demo",
    run_dir: str | Path | None = None,
    steps: int | None = None,
    seed: int = 0,
    samples_per_prompt: int = 8,
    eval_samples: int = 100,
    retrain: bool = False,
    temperature: float = 1.0,
    precision: str | None = None,
) -> dict[str, Any]:
    """Train (or reuse) the text-to-image cINN, write the demo PNG, tensors and metrics.

    Arguments:
        out_dir: where ``text_to_image.png``, ``text_to_image.safetensors`` and ``metrics.json`` go.
        run_dir: the training run folder (default: ``<cache>/runs/text2image-<config key>``, reused next time).
        steps: training steps (default: the config's 4000).
        seed: seed of training and sampling.
        samples_per_prompt: columns of the PNG.
        eval_samples: generated images per held-out phrasing for the accuracy and diversity.
        retrain: train from scratch even if a finished run exists.
        temperature: of the PNG's samples (v ~ N(0, T² I)); the metrics are computed at 1 and 0.7 either way.
        precision: training precision, ``"32"``, ``"bf16"`` (mixed) or ``"auto"`` (bf16 where measured faster);
            None: the config's (``auto``). Sampling and the evaluation run in float32.

    Returns:
        The metrics (also in ``metrics.json``), with ``png`` and ``run_dir``.
    """
    from ..experts.classifier import load_classifier
    from ..training.run import train_from_config

    cfg = text2image_config(steps, seed, precision)
    run = Path(run_dir) if run_dir is not None else default_cache_dir("runs") / f"text2image-{_key(cfg)}"
    out = Path(out_dir)
    t0 = time.perf_counter()
    trained = False
    if retrain or not (run / "cinn.safetensors").is_file():
        run.mkdir(parents=True, exist_ok=True)
        with atomic_path(run / "demo_config.yaml") as tmp:
            OmegaConf.save(OmegaConf.create(cfg), tmp)
        log.info("training the text-to-image cINN in %s (the next run reuses it)", run)
        train_from_config(run / "demo_config.yaml", log_dir=run, resume=not retrain)
        trained = True
    else:
        log.info("reusing the trained text-to-image cINN in %s", run)
    train_seconds = time.perf_counter() - t0

    model = Net2Net.from_run(run)
    g = torch.Generator().manual_seed(seed + 1)
    prompts = [p for p, _, _ in DEMO_PROMPTS]
    images = model.translate(prompts, n=samples_per_prompt, temperature=temperature, generator=g)  # (P, n, C, H, W)
    labels = [f"{p} ({kind})" for p, _, kind in DEMO_PROMPTS]
    png = out / "text_to_image.png"
    with atomic_path(png) as tmp:
        _labelled_grid(images * 0.5 + 0.5, labels).save(tmp, format="PNG")
    atomic_save_safetensors({"images": images, "classes": torch.tensor([c for _, c, _ in DEMO_PROMPTS])},
                            out / "text_to_image.safetensors", metadata={"prompts": json.dumps(prompts)})  # fmt: skip

    classifier = load_classifier("pretrained:fashion_mnist_classifier")
    metrics = evaluate_text2image(model, classifier, samples_per_caption=eval_samples, seed=seed + 2)
    metrics.update(png_temperature=temperature, trained_now=trained, train_seconds=round(train_seconds, 1), run_dir=str(run),
                   steps=cfg["lightning"]["trainer"]["max_steps"], seconds_total=round(time.perf_counter() - t0, 1))  # fmt: skip
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    metrics["png"] = str(png)
    return metrics
