"""``net2net reproduce NAME``: the paper's experiments on real data, each training what is missing, evaluating and
writing ``docs/results/NAME.md`` with its table and figures.

Available: ``diagnosis`` (classifier layers -> autoencoder, cINN against the MLP translator, information per
layer) and ``text2image`` (Sentence-BERT -> autoencoder, the main job, evaluated). ``--quick`` runs smaller
versions; ``all`` runs every experiment in turn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["EXPERIMENTS", "reproduce"]


def _diagnosis(out_dir: Path, quick: bool) -> dict[str, Any]:
    from .diagnosis import run_diagnosis

    return run_diagnosis(out_dir=out_dir, quick=quick)


def _text2image(out_dir: Path, quick: bool) -> dict[str, Any]:
    from .text2image import run_text2image_experiment

    return run_text2image_experiment(out_dir=out_dir, quick=quick)


EXPERIMENTS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "diagnosis": _diagnosis,
    "text2image": _text2image,
}


def reproduce(name: str, out_dir: str | Path = "docs/results", quick: bool = False) -> dict[str, dict[str, Any]]:
    """Run experiment ``name`` (or ``"all"``); returns ``{name: summary}``."""
    names = list(EXPERIMENTS) if name == "all" else [name]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiment {unknown[0]!r}; expected one of {sorted(EXPERIMENTS)} or 'all'")
    return {n: EXPERIMENTS[n](Path(out_dir), quick) for n in names}
