"""Experiment ``text2image``: Sentence-BERT -> the Fashion-MNIST autoencoder (paper Sec. 4.1), evaluated.

The same training as the main job (:func:`net2net.apps.main_job.run_text2image`, whose trained run it reuses),
plus the domain FID of the generated images against real test images of the described classes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..data import FASHION_MNIST_CAPTIONS, FashionMNIST
from ..data.captions import HELD_OUT_ORIGINAL
from ..metrics import domain_fid
from .experiment import classifier_features, page_head, shipped_classifier, write_page

__all__ = ["run_text2image"]


@torch.no_grad()
def run_text2image(out_dir: str | Path = "docs/results", quick: bool = False) -> dict[str, Any]:
    """Train (or reuse) the main job's cINN, evaluate it and write ``<out_dir>/text2image.md`` and its figure."""
    from ..apps.main_job import run_text2image as train_and_evaluate
    from ..apps.translate import Net2Net

    out = Path(out_dir)
    steps = 1500 if quick else None
    metrics = train_and_evaluate(out_dir=Path("outputs") / "reproduce" / "text2image", steps=steps)
    model = Net2Net.from_run(metrics["run_dir"])
    classifier = shipped_classifier()
    g = torch.Generator().manual_seed(3)
    test = FashionMNIST(split="test")
    labels = torch.tensor(test.labels)
    generated, real = [], []
    for label, parts in FASHION_MNIST_CAPTIONS.items():  # 100 images per class from its held-out phrasings
        n = -(-100 // len(parts["held_out"]))  # ceil
        images = model.translate(parts["held_out"], n=n, generator=g)  # (P, n, C, H, W)
        generated.append(images.flatten(0, 1)[:100])
        idx = torch.nonzero(labels == label).flatten()[:100].tolist()
        real.append(torch.stack([test[i]["image"] for i in idx]))
    metrics["domain_fid_held_out"] = domain_fid(torch.cat(generated), torch.cat(real), classifier_features(classifier))
    fig = out / "figures" / "text2image.png"
    fig.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(metrics["png"], fig)
    summary = {k: v for k, v in metrics.items() if k != "png"}
    write_page(out, "text2image", _page(summary, quick), summary)
    return metrics


def _page(summary: dict[str, Any], quick: bool) -> list[str]:
    """The lines of ``text2image.md`` from the evaluation's metrics (``quick``: the page says ``--quick``)."""
    from ..apps.main_job import text2image_config

    metrics, fid = summary, summary["domain_fid_held_out"]
    by_t = metrics["by_temperature"]
    train_params = text2image_config()["data"]["params"]["train"]["params"]
    n_hand = len(FASHION_MNIST_CAPTIONS[0]["train"])
    n_train = n_hand + train_params.get("generated_per_class", 0)
    n_held = len(FASHION_MNIST_CAPTIONS[0]["held_out"])
    lines = [
        *page_head("Text to image: Sentence-BERT -> Fashion-MNIST autoencoder (Sec. 4.1)", "text2image", quick,
                   " (the main job, `net2net demo`, trains the same cINN and is reused)."),
        f"{metrics['steps']} training steps on {n_train} training phrasings per class ({n_hand} hand-written, the "
        f"rest composed from a vocabulary that adds no word of the held-out phrasings). {metrics['samples_per_prompt']}"
        f" images per held-out phrasing ({n_held} per class, never seen in training: the first {HELD_OUT_ORIGINAL} "
        "per class are the original ones, known when the vocabulary was written; the others were added before it "
        "was). Accuracy: the shipped Fashion-MNIST classifier recognises the described class (on the autoencoder's "
        "reconstructions of real test images it does so for 87 %, the ceiling here). Diversity: mean pairwise RMS "
        "distance of the images of one prompt (real test images of the class: "
        f"{metrics['diversity_real_mean']:.3f}). Domain FID (classifier features, 1000 generated vs 1000 real "
        f"test images): {fid:.2f}.",
        "",
        "| temperature | held-out accuracy | original phrasings | added phrasings | diversity |",
        "|---|---|---|---|---|",
        *[f"| {t} | {100 * v['held_out_accuracy']:.1f} % | {100 * v['held_out_accuracy_by_set']['original']:.1f} % | "
          f"{100 * v['held_out_accuracy_by_set']['added']:.1f} % | {v['diversity_mean']:.3f} |"
          for t, v in by_t.items()],
        "",
        "| class | accuracy (T = 1) |",
        "|---|---|",
        *[f"| {c} | {100 * a:.1f} % |" for c, a in metrics["accuracy_per_class"].items()],
        "",
        "| held-out phrasing | class | accuracy (T = 1) | diversity |",
        "|---|---|---|---|",
        *[f"| {p['prompt']} | {p['class']} | {100 * p['accuracy']:.0f} % | {p['diversity']:.3f} |"
          for p in metrics["per_prompt"]],
        "",
        "![text to image](figures/text2image.png)",
    ]
    return lines
