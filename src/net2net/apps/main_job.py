"""The main job: text -> image with Sentence-BERT and the Fashion-MNIST autoencoder (paper Sec. 4.1, offline).

``run_text2image(...)`` (``net2net demo``):

1. trains the cINN of ``configs/translation/text2image.yaml`` (shipped with the package; :func:`text2image_config`
   loads it with the command line's changes) on cached latents: the first run encodes Fashion-MNIST with the
   shipped autoencoder and the captions with all-MiniLM-L6-v2, then trains. The run manager
   (:func:`net2net.training.runs.train_or_reuse`) keeps the run in ``<cache>/runs/text2image-<key>``, keyed by the
   config and the autoencoder's weights, so the next call reuses it (an interrupted run resumes); ``text2image``
   is its stable name (``net2net translate text2image ...``, ``Net2Net.from_run("text2image")``);
2. draws ``samples_per_prompt`` images for each prompt of :data:`DEMO_PROMPTS` (training phrasings, held-out
   phrasings and free prompts) into one PNG with the prompts written beside the rows, and saves the raw tensors;
3. measures what the translation learned on the held-out phrasings of every class: the accuracy of the shipped
   Fashion-MNIST classifier on generated images (is it the class the sentence describes?), and the diversity of
   the samples of each prompt against that of real test images of the class.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image, ImageDraw, ImageFont

from ..data import FASHION_MNIST_CAPTIONS, FASHION_MNIST_CLASSES, FashionMNIST
from ..data.captions import HELD_OUT_ORIGINAL
from ..images import make_grid
from ..io import atomic_path, atomic_save_safetensors, file_digest
from ..metrics import mean_pairwise_distance
from ..training.runs import job_config, train_or_reuse
from .translate import Net2Net

__all__ = ["DEMO_PROMPTS", "TEXT2IMAGE_CONFIG", "run_text2image", "text2image_config"]

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

TEXT2IMAGE_CONFIG = "translation/text2image.yaml"  # the shipped config (net2net.config.shipped_config)


def text2image_config(
    steps: int | None = None, seed: int | None = None, precision: str | None = None
) -> dict[str, Any]:
    """The main job's training config: ``configs/translation/text2image.yaml`` as shipped with the package, with the
    command line's ``steps``, ``seed`` and ``precision`` (``"32"``, ``"bf16"`` or ``"auto"``, see
    :mod:`net2net.training.precision`; None keeps the config's ``auto``: bf16 mixed where
    the model's own training step measures faster), applied by
    :func:`net2net.training.runs.job_config`."""
    return job_config(TEXT2IMAGE_CONFIG, steps=steps, seed=seed, precision=precision)


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
    # the same for every temperature, so computed once: each phrasing's condition (as `translate` embeds it, one
    # phrasing per call) and the diversity of the real test images of each class
    conditions = {c: model.encode_source([c]) for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]}
    test = FashionMNIST(split="test")
    labels = torch.tensor(test.labels)
    real_diversity = {}
    for label in FASHION_MNIST_CAPTIONS:
        idx = torch.nonzero(labels == label).flatten()[:samples_per_caption].tolist()
        real = torch.stack([test[i]["image"] for i in idx])  # only the images compared, not all 10k
        real_diversity[label] = float(mean_pairwise_distance(real[None]).mean())
    results = {
        t: _evaluate_at(model, classify, conditions, real_diversity, samples_per_caption, seed, float(t))
        for t in dict.fromkeys(temperatures)
    }
    main = results[temperatures[0]]
    main["by_temperature"] = {
        str(float(t)): {"held_out_accuracy": res["held_out_accuracy"],
                        "held_out_accuracy_by_set": res["held_out_accuracy_by_set"],
                        "diversity_mean": res["diversity_mean"]}
        for t, res in results.items()
    }  # fmt: skip
    main["temperature"] = float(temperatures[0])
    return main


def _evaluate_at(
    model: Net2Net, classify: Any, conditions: dict[str, torch.Tensor], real_diversity: dict[int, float],
    samples_per_caption: int, seed: int, temperature: float,
) -> dict[str, Any]:  # fmt: skip
    """Accuracy and diversity at one temperature; every phrasing's samples drawn from one generator seeded with
    ``seed``, in the order of :data:`FASHION_MNIST_CAPTIONS` (what ``model.translate`` of each phrasing draws)."""
    g = torch.Generator().manual_seed(seed)
    per_prompt: list[dict[str, Any]] = []
    correct, total = torch.zeros(10), torch.zeros(10)
    for label, parts in FASHION_MNIST_CAPTIONS.items():
        for caption in parts["held_out"]:
            z = model.tau.sample(conditions[caption], samples_per_caption, temperature, g)  # (1, n, D)
            images = model.decode(z[0])  # (n, C, H, W)
            pred = classify(images).argmax(1)
            acc = float((pred == label).float().mean())
            correct[label] += float((pred == label).sum())
            total[label] += len(pred)
            per_prompt.append({
                "prompt": caption, "class": FASHION_MNIST_CLASSES[label], "accuracy": round(acc, 4),
                "set": "original" if caption in parts["held_out"][:HELD_OUT_ORIGINAL] else "added",
                "diversity": round(float(mean_pairwise_distance(images[None])[0]), 4),
                "diversity_real": round(real_diversity[label], 4),
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


def cached_evaluation(run: Path, settings: str, evaluate: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``evaluate()``'s metrics, kept in ``<run>/evaluation-<settings>.json`` with the digest of the run's
    ``cinn.safetensors``: a rerun on the same finished run and settings reads them (the held-out evaluation is most
    of a rerun's time), a retrained run (another digest) evaluates again."""
    weights = Path(run) / "cinn.safetensors"
    digest = file_digest(weights)
    path = Path(run) / f"evaluation-{settings}.json"
    if path.is_file():
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            kept = None
        if isinstance(kept, dict) and kept.get("cinn_sha256") == digest and isinstance(kept.get("metrics"), dict):
            log.info("held-out evaluation of this run and settings reused from %s", path)
            return dict(kept["metrics"])
    metrics = evaluate()
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"cinn_sha256": digest, "metrics": metrics}, indent=2) + "\n", encoding="utf-8")
    return metrics


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
        run_dir: the training run folder (default: ``<cache>/runs/text2image-<key>``, reused next time).
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

    cfg = text2image_config(steps, seed, precision)
    out = Path(out_dir)
    t0 = time.perf_counter()
    trained = train_or_reuse(cfg, "text2image", folder=run_dir, retrain=retrain)
    run, train_seconds = trained.path, trained.train_seconds

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

    metrics = cached_evaluation(
        run, f"samples{eval_samples}-seed{seed + 2}",
        lambda: evaluate_text2image(model, load_classifier("pretrained:fashion_mnist_classifier"),
                                    samples_per_caption=eval_samples, seed=seed + 2),
    )  # fmt: skip
    metrics.update(png_temperature=temperature, trained_now=trained.trained_now, train_seconds=round(train_seconds, 1),
                   run_dir=str(run), steps=cfg["lightning"]["trainer"]["max_steps"],
                   seconds_total=round(time.perf_counter() - t0, 1))  # fmt: skip
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    metrics["png"] = str(png)
    return metrics
