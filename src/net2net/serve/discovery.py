"""Which trained runs the page's tabs use: run folders classified by their ``config.yaml`` (read, never instantiated).

A tab is one of :data:`TABS`; a run folder belongs to the tab its source expert says (a sentence encoder: text →
image; the classifier's argmax: exemplar-guided synthesis; a classifier layer: layer diagnosis; a domain label:
unpaired transfer; a low-resolution encoder: super-resolution). With no run folders given, :func:`find_runs` looks
where ``net2net demo`` and ``net2net reproduce`` keep theirs (``<cache>/runs`` and ``<cache>/runs/reproduce``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from ..reproduce import quick_command
from ..training.runs import resolve_run, runs_dir

__all__ = ["LAYER_NAMES", "TABS", "RunInfo", "classify_run", "find_runs", "main_job_run"]

log = logging.getLogger(__name__)

# tab -> (title, the command that makes its run, about how long that takes on 2 cores)
TABS: dict[str, tuple[str, str]] = {
    "text": ("Text → image", "net2net demo  (about 8 min on 2 idle cores)"),
    **{tab: (title, quick_command(tab)) for tab, title in [("exemplar", "Exemplar-guided synthesis"),
       ("diagnosis", "Layer diagnosis"), ("unpaired", "Unpaired transfer"), ("superres", "Super-resolution")]},
}  # fmt: skip
# classifier module -> the diagnosis experiment's name for it (net2net.reproduce.diagnosis.LAYERS, inverted)
LAYER_NAMES: dict[str, str] = {"stage1": "early", "stage3": "middle", "fc": "last"}

_SOURCES = {
    "net2net.experts.text.SentenceEncoder": "text",
    "net2net.experts.label.classifier_argmax_expert": "exemplar",
    "net2net.experts.layer.classifier_expert": "diagnosis",
    "net2net.experts.label.LabelEncoder": "unpaired",
    "net2net.experts.resize.low_res_encoder": "superres",
}


@dataclass(frozen=True)
class RunInfo:
    """A finished translation run and the tab it serves.

    Arguments:
        tab: a key of :data:`TABS`.
        path: the run folder (``config.yaml`` and ``cinn.safetensors``).
        layer: for ``diagnosis``: ``early``, ``middle`` or ``last`` (else ``""``).
    """

    tab: str
    path: Path
    layer: str = ""


def classify_run(run_dir: str | os.PathLike[str]) -> RunInfo | None:
    """The tab of a finished run folder, or ``None`` if it is not a translation run any tab shows.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.yaml`` or no ``cinn.safetensors`` (not a finished run).
    """
    run = Path(run_dir)
    for name in ("config.yaml", "cinn.safetensors"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run} is not a finished translation run: it has no {name}")
    cfg: Any = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=False)
    params = (cfg.get("data") or {}).get("params") or {} if isinstance(cfg, dict) else {}
    source = params.get("source") or {}
    tab = _SOURCES.get(source.get("target", "") if isinstance(source, dict) else "")
    if tab == "unpaired" and params.get("source_key") != "domain":
        return None  # a label source of classes, not of domains
    if tab == "diagnosis":
        layer = LAYER_NAMES.get(str((source.get("params") or {}).get("layer")))
        return RunInfo(tab, run, layer) if layer else None
    return RunInfo(tab, run) if tab else None


def main_job_run() -> Path:
    """The main job's run: the newest finished run named ``text2image`` (``net2net demo``'s), else where its default
    config's run would be."""
    try:
        return resolve_run("text2image")
    except FileNotFoundError:
        from ..apps.main_job import text2image_config
        from ..training.runs import run_key

        return runs_dir() / f"text2image-{run_key(text2image_config())}"


def _candidates(root: Path) -> Iterable[Path]:
    for folder in (root, root / "reproduce"):
        if folder.is_dir():
            for p in folder.iterdir():
                if (p / "cinn.safetensors").is_file() and (p / "config.yaml").is_file():
                    yield p


def _given_run(run: str | os.PathLike[str]) -> RunInfo:
    """The tab of a run folder the user named, or a ``ValueError`` when it is none's."""
    info = classify_run(run)
    if info is None:
        raise ValueError(f"{run}: not a run of any tab (expected a source expert among {sorted(_SOURCES)})")
    return info


def find_runs(
    run_dirs: Sequence[str | os.PathLike[str]] = (), root: str | os.PathLike[str] | None = None
) -> list[RunInfo]:
    """The runs the tabs use: one per tab (per layer for ``diagnosis``).

    Arguments:
        run_dirs: run folders to serve; each must be a finished run of some tab (else ``ValueError``). Empty: the
            runs under ``root``: the main job's default run for the text tab when it exists, else the newest run
            of each tab.
        root: where to look when ``run_dirs`` is empty (default ``<cache>/runs``).
    """
    if run_dirs:
        found = [_given_run(run) for run in run_dirs]
    else:
        base = runs_dir(root)
        found = []
        for path in sorted(_candidates(base), key=lambda p: (p / "cinn.safetensors").stat().st_mtime, reverse=True):
            try:
                info = classify_run(path)
            except (OSError, ValueError) as e:  # a broken config: skip it, serve the rest
                log.warning("skipping %s: %s", path, e)
                continue
            if info is not None:
                found.append(info)
        main = main_job_run() if root is None else None
        if main is not None and any(r.path == main for r in found):  # the main job's run first among text runs
            found.sort(key=lambda r: r.path != main)
    chosen: dict[tuple[str, str], RunInfo] = {}
    for info in found:  # the first of each (tab, layer): given order, or main job / newest first
        chosen.setdefault((info.tab, info.layer), info)
    return list(chosen.values())
