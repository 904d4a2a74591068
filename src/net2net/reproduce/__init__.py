"""``net2net reproduce NAME``: the paper's experiments on real data, each training what is missing, evaluating and
writing ``docs/results/NAME.md`` with its table and figures.

Available (one module each, ``run_<name>(out_dir, quick, ...)``):

- ``diagnosis``: classifier layers -> autoencoder, cINN against the MLP translator, information per layer (Fig. 5);
- ``text2image``: Sentence-BERT -> autoencoder, the main job, evaluated (Sec. 4.1);
- ``superres``: 14 px autoencoder -> 28 px autoencoder, and 16 px faces -> the DCGAN face generator (Fig. 4);
- ``exemplar``: classifier logits / argmax -> autoencoder, label-to-image and exemplar-guided synthesis (Fig. S5, S6);
- ``unpaired``: domain label -> the autoencoder of MNIST ∪ Fashion-MNIST ∪ 8x8 digits, transfer (Sec. D, Fig. S2, S3);
- ``disentangle``: Θ∘d -> Θ, shape and appearance without labels (Sec. C, Fig. S1);
- ``inpaint``: EfficientNet-Lite0 features of a masked image -> autoencoder (the talk's experiment 3);
- ``translators``: the cINN against the MLP, a spline flow, flow matching and linear-Gaussian on three tasks.

``--quick`` runs smaller versions; ``all`` runs every experiment in turn and writes the compute report. The
experiments share the skeleton of :mod:`net2net.reproduce.experiment` (settings, set-up, training runs, page).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["ABOUT", "EXPERIMENTS", "quick_command", "reproduce", "write_compute_page"]


def _lazy(name: str) -> Callable[[Path, bool], dict[str, Any]]:
    """``reproduce.<name>.run_<name>(out_dir=..., quick=...)``, imported when the experiment runs."""

    def run(out_dir: Path, quick: bool) -> dict[str, Any]:
        module = importlib.import_module(f"{__name__}.{name}")
        return getattr(module, f"run_{name}")(out_dir=out_dir, quick=quick)

    return run


# name -> (what it reproduces, minutes of its `--quick` run on a 2-core machine as measured in docs/results/README.md:
# empty cache, but exemplar after diagnosis, whose last-layer cINN it reuses); the CLI's help and the serve page's
# "make it with" notes read it. In the order of the issue; "all" runs them in this order.
ABOUT: dict[str, tuple[str, float]] = {
    "diagnosis": ("classifier layers -> autoencoder, the cINN against the MLP translator, information per layer "
                  "(Fig. 5)", 24),
    "text2image": ("Sentence-BERT -> autoencoder: the main job's run, evaluated on held-out phrasings (Sec. 4.1)", 4),
    "superres": ("14 px -> 28 px autoencoder, and 16 px faces -> the DCGAN face generator (Fig. 4)", 8),
    "exemplar": ("classifier logits / argmax -> autoencoder, exemplar-guided synthesis (Fig. S5, S6)", 5),
    "unpaired": ("domain label -> the autoencoder of three domains, unpaired transfer (Sec. D)", 4),
    "disentangle": ("shape and appearance without labels (Sec. C, Fig. S1)", 4),
    "inpaint": ("EfficientNet-Lite0 features of a masked image -> autoencoder", 5),
    "translators": ("the cINN against the MLP, a spline flow, flow matching and linear-Gaussian on three tasks", 26),
}  # fmt: skip
EXPERIMENTS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {name: _lazy(name) for name in ABOUT}


def quick_command(name: str) -> str:
    """The command that makes experiment ``name``'s runs and page, with its measured time."""
    return f"net2net reproduce {name} --quick  (about {ABOUT[name][1]:g} min)"


def reproduce(name: str, out_dir: str | Path = "docs/results", quick: bool = False) -> dict[str, dict[str, Any]]:
    """Run experiment ``name`` (or ``"all"``); returns ``{name: summary}``.

    ``"all"`` also writes ``<out_dir>/compute.md``: the compute report (Tab. S1 form) of every training run the
    experiments trained or reused, and the wall time of each experiment.
    """
    from .experiment import used_runs

    names = list(EXPERIMENTS) if name == "all" else [name]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; expected one of {sorted(EXPERIMENTS)} or 'all'")
    used_runs(clear=True)
    results, seconds = {}, {}
    for n in names:
        t0 = time.perf_counter()
        results[n] = EXPERIMENTS[n](Path(out_dir), quick)
        seconds[n] = time.perf_counter() - t0
    if name == "all":
        runs = used_runs()
        run_dir = results.get("text2image", {}).get("run_dir")
        if run_dir:
            runs.append(Path(run_dir))
        write_compute_page(Path(out_dir), runs, seconds, quick)
    return results


def write_compute_page(out: Path, runs: list[Path], seconds: dict[str, float], quick: bool) -> Path:
    """``<out>/compute.md``: wall time per experiment and the compute table of the training runs with a record."""
    from ..io import atomic_path
    from ..training.compute import RECORD_NAME, compute_table

    recorded = [r for r in runs if (r / RECORD_NAME).is_file()]
    lines = [
        "# Compute report (supplementary Sec. A, Tab. S1)",
        "",
        f"Written by `net2net reproduce all{' --quick' if quick else ''}`. Wall time of each experiment in that "
        "invocation (training runs that already existed were reused, so a first run takes longer; the pages give "
        "each run's own training time):",
        "",
        "| experiment | wall time (min) |",
        "|---|--:|",
        *[f"| {n} | {s / 60:.1f} |" for n, s in seconds.items()],
        f"| **total** | {sum(seconds.values()) / 60:.1f} |",
        "",
        "Training runs (time, energy, CO₂ and cost as recorded by each run's `compute.json`; "
        "`net2net report RUN_DIR...` prints the same table):",
        "",
        compute_table(recorded) if recorded else "(no run recorded its compute)",
        "",
    ]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "compute.md") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return out / "compute.md"
