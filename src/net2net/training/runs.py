"""The run manager: where runs live, train-or-reuse keyed by content, and the list of runs.

Every cache and run folder of net2net lies under one root, :func:`cache_root` (``$NET2NET_CACHE``, default
``~/.cache/net2net``)::

    <root>/latents/            latent caches of translation configs (net2net encode, training)
    <root>/digests.json        SHA-256 of the weight and data files that configs name, by (path, size, mtime)
    <root>/runs/               training runs: net2net demo, net2net train, the apps (see below)
    <root>/runs/reproduce/     the runs of net2net reproduce

A run that :func:`train_or_reuse` makes is the folder ``<runs>/<name>-<key>``: ``name`` is stable (``text2image``
for the main job, ``digits`` for the small demo, ``diagnosis-early-cinn`` ...), ``key`` is :func:`run_key` of its
config: the SHA-256 of the config's canonical JSON together with the digest of every file the config names
(``pretrained:NAME`` weights and existing file paths). The same config reuses the folder; a changed config or a
changed weights file gets a new folder. A run is finished when its weights file exists; an unfinished one resumes
from its ``checkpoints/last.ckpt``. Beside :func:`~net2net.training.run.train_from_config`'s files the folder holds
``run.json`` (name, key, the weights file, the digests of the files the config names).

:func:`resolve_run` turns a run name into the newest finished run of that name (``net2net translate text2image``,
``Net2Net.from_run("text2image")``); :func:`list_runs` describes every run folder under a root (``net2net runs``).
This module imports neither Lightning nor torch until something is trained or hashed.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_ENV",
    "MANIFEST",
    "Run",
    "RunInfo",
    "cache_root",
    "file_digests",
    "format_table",
    "job_config",
    "list_runs",
    "resolve_run",
    "run_key",
    "runs_dir",
    "train_or_reuse",
]

log = logging.getLogger(__name__)

CACHE_ENV = "NET2NET_CACHE"  # root of every net2net cache and run folder (default ~/.cache/net2net)
MANIFEST = "run.json"  # what train_or_reuse writes into a run folder
MANIFEST_FORMAT = "net2net.Run/1"
# the weights file each kind of training run exports (training/run.py's _export); the first that exists counts
EXPORTS = ("cinn.safetensors", "translator.safetensors", "mlp.safetensors", "autoencoder.safetensors")
_KEY_SUFFIX = re.compile(r"^(?P<name>.+)-(?P<key>[0-9a-f]{12})$")  # "<name>-<key>" folders
_PRETRAINED = "pretrained:"


def cache_root() -> Path:
    """``$NET2NET_CACHE``, default ``~/.cache/net2net``: the root of every cache and run folder of net2net."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "net2net"


def runs_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where runs live: ``root`` if given, else ``<cache_root()>/runs``."""
    return Path(root) if root is not None else cache_root() / "runs"


# -- keys ---------------------------------------------------------------------------------------------------------
def _plain(obj: Any, where: str = "config") -> Any:
    """A JSON-ready copy of ``obj`` (mappings with string keys, lists, strings, numbers, booleans, None)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"{where}: expected JSON-like values (mappings, lists, str, numbers, None), got {type(obj).__name__}")


def _resolved(cfg: Any) -> Any:
    """The config as plain data with its ``${...}`` interpolations resolved (what the trainer will see)."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, Mapping) and not isinstance(cfg, DictConfig):
        cfg = OmegaConf.create(_plain(cfg))
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return _plain(cfg)


def _file_refs(obj: Any) -> list[str]:
    """The strings of ``obj`` that name a file: ``pretrained:NAME`` and paths of existing files."""
    if isinstance(obj, Mapping):
        return [r for v in obj.values() for r in _file_refs(v)]
    if isinstance(obj, list):
        return [r for v in obj for r in _file_refs(v)]
    if isinstance(obj, str) and (obj.startswith(_PRETRAINED) or (("/" in obj or "." in obj) and _is_file(obj))):
        return [obj]
    return []


def _is_file(text: str) -> bool:
    try:
        return len(text) < 4096 and Path(text).expanduser().is_file()
    except (OSError, ValueError):
        return False


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (absolute path, size, mtime_ns) -> SHA-256, in this process


def _digest_store() -> Path:
    return cache_root() / "digests.json"


def file_digests(refs: Sequence[str]) -> dict[str, str]:
    """The SHA-256 of each file named in ``refs`` (``pretrained:NAME`` -> the shipped file), by reference.

    Digests are cached by (absolute path, size, modification time), in the process and in ``<root>/digests.json``,
    so a large file is read once until it changes.
    """
    from ..pretrained import resolve_weights

    wanted = {ref: resolve_weights(ref).expanduser().resolve() for ref in dict.fromkeys(refs)}
    stats = {ref: path.stat() for ref, path in wanted.items()}
    sigs = {ref: (str(wanted[ref]), st.st_size, st.st_mtime_ns) for ref, st in stats.items()}
    if any(sig not in _DIGESTS for sig in sigs.values()):
        _load_digest_store()
    missing = [sig for sig in sigs.values() if sig not in _DIGESTS]
    if missing:
        from ..io import file_digest

        for sig in missing:
            _DIGESTS[sig] = file_digest(sig[0])
        _save_digest_store()
    return {ref: _DIGESTS[sig] for ref, sig in sigs.items()}


def _load_digest_store() -> None:
    try:
        rows = json.loads(_digest_store().read_text(encoding="utf-8"))
        for path, size, mtime_ns, digest in rows:
            _DIGESTS.setdefault((str(path), int(size), int(mtime_ns)), str(digest))
    except (OSError, ValueError, TypeError):  # absent or damaged: the digests are computed again
        return


def _save_digest_store() -> None:
    from ..io import atomic_path

    store = _digest_store()
    try:
        store.parent.mkdir(parents=True, exist_ok=True)
        # only files that still exist with the same size and time: the store does not grow without bound
        rows = [[p, s, m, d] for (p, s, m), d in sorted(_DIGESTS.items()) if _still(p, s, m)]
        with atomic_path(store) as tmp:
            tmp.write_text(json.dumps(rows) + "\n", encoding="utf-8")
    except OSError as e:  # a read-only cache still works, only slower
        log.warning("could not write the digest cache %s: %s", store, e)


def _still(path: str, size: int, mtime_ns: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def _canonical(cfg: Any) -> tuple[Any, dict[str, str]]:
    """The resolved config and the digests of the files it names."""
    plain = _resolved(cfg)
    return plain, file_digests(_file_refs(plain))


def run_key(cfg: Any) -> str:
    """12 hex digits of the SHA-256 of the config's canonical JSON (keys sorted, interpolations resolved) and of the
    SHA-256 of every file it names (``pretrained:NAME`` weights, existing file paths).

    A changed config or a changed weights file gives a new key; folders are keyed by their path only.

    Example:
        >>> run_key({"model": {"target": "x", "params": {"n": 1}}}) == run_key({"model": {"params": {"n": 1},
        ...                                                                    "target": "x"}})
        True
    """
    return _key(*_canonical(cfg))


def _key(plain: Any, files: Mapping[str, str]) -> str:
    text = json.dumps({"config": plain, "files": files}, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -- configs of the jobs the package ships ------------------------------------------------------------------------
_TRAINER_PRECISION = {"auto": "auto", "32": "32-true", "bf16": "bf16-mixed"}
# intervals in steps that must not exceed a shortened run
_INTERVALS = (("lightning", "trainer", "val_check_interval"),
              ("lightning", "callbacks", "image_logger", "params", "every_n_steps"),
              ("lightning", "callbacks", "checkpoint", "params", "every_n_train_steps"))  # fmt: skip


def job_config(
    name: str, *, steps: int | None = None, seed: int | None = None, precision: str | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """A config shipped with the package (``net2net.config.shipped_config(name)``) with the command line's changes.

    Arguments:
        name: e.g. ``"translation/text2image.yaml"``.
        steps: training steps: ``lightning.trainer.max_steps``; the warm-up is capped at a quarter of them, a
            cosine decay ends with the run, and the validation, image and checkpoint intervals are capped at
            ``steps``.
        seed: the config's ``seed``.
        precision: ``"32"``, ``"bf16"`` (mixed) or ``"auto"``: ``lightning.trainer.precision``.
        overrides: further ``key.path=value`` overrides, applied last.

    Returns:
        The config as plain data (interpolations resolved).
    """
    from ..config import load_config, shipped_config

    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        overrides = [*overrides, f"seed={seed}"]  # before resolving: `${seed}` interpolations follow it
    cfg: dict[str, Any] = _resolved(load_config(shipped_config(name), overrides))
    trainer = cfg.setdefault("lightning", {}).setdefault("trainer", {})
    if precision is not None:
        if precision not in _TRAINER_PRECISION:
            raise ValueError(f"precision: expected one of {list(_TRAINER_PRECISION)}, got {precision!r}")
        trainer["precision"] = _TRAINER_PRECISION[precision]
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive int, got {steps!r}")
        trainer["max_steps"] = steps
        optim = ((cfg.get("model") or {}).get("params") or {}).get("optim") or {}
        if "warmup_steps" in optim:
            optim["warmup_steps"] = min(optim["warmup_steps"], steps // 4)
        if isinstance(optim.get("decay_steps"), int):
            optim["decay_steps"] = steps  # the cosine ends with the run
        for path in _INTERVALS:
            block = cfg
            for part in path[:-1]:
                block = block.get(part) or {}
            if isinstance(block.get(path[-1]), int):
                block[path[-1]] = max(1, min(block[path[-1]], steps))
    return cfg


# -- train or reuse -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """A finished training run that :func:`train_or_reuse` made or found.

    Arguments:
        path: the run folder.
        name: its stable name (``text2image``, ``digits``, ...).
        key: :func:`run_key` of its config.
        trained_now: whether this call trained (else it reused a finished run).
        train_seconds: wall time of this call's training (0 when reused).
    """

    path: Path
    name: str
    key: str
    trained_now: bool
    train_seconds: float


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", name):
        raise ValueError(f"run name: expected letters, digits and _.+- (a folder name), got {name!r}")


def train_or_reuse(
    cfg: Mapping[str, Any],
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    folder: str | os.PathLike[str] | None = None,
    retrain: bool = False,
    weights: str = "cinn.safetensors",
) -> Run:
    """Train ``cfg`` into ``<root>/<name>-<run_key(cfg)>`` unless that run has finished; resume it if it has not.

    Arguments:
        cfg: a training config (``model``, ``data``, ``lightning``, ``seed``; see
            :func:`~net2net.training.run.train_from_config`).
        name: the run's stable name.
        root: the runs folder (default :func:`runs_dir`, ``<cache>/runs``).
        folder: use this run folder instead of ``<root>/<name>-<key>`` (a finished run of another config there is
            reused with a warning).
        retrain: train from step 0 even when the run has finished.
        weights: the file whose presence marks the run finished (what the model's export writes).

    Returns:
        The :class:`Run`.

    Raises:
        RuntimeError: training ended without writing ``weights``.
    """
    _check_name(name)
    plain, files = _canonical(cfg)
    key = _key(plain, files)
    path = Path(folder) if folder is not None else runs_dir(root) / f"{name}-{key}"
    done = (path / weights).is_file()
    if done and not retrain:
        old = _read_manifest(path).get("key")
        if old not in (None, key):
            log.warning("reusing %s, a run of another config (key %s, this config's is %s): pass retrain=True "
                        "(--retrain) to train this one", path, old, key)  # fmt: skip
        else:
            log.info("reusing the finished run %s", path)
        return Run(path, name, key, False, 0.0)

    import torch

    from ..io import atomic_path
    from .run import train_from_config

    path.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(path)
    created = old.get("created") if old.get("key") == key else None  # a resumed run keeps its start time
    manifest = {"format": MANIFEST_FORMAT, "name": name, "key": key, "weights": weights, "files": files,
                "created": created or _now()}  # fmt: skip
    with atomic_path(path / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    log.info("training %s in %s (the next call with this config reuses it)", name, path)
    t0 = time.perf_counter()
    with torch.enable_grad():  # callers may be inside torch.no_grad()
        train_from_config(plain, log_dir=path, resume=not retrain)
    seconds = time.perf_counter() - t0
    if not (path / weights).is_file():
        raise RuntimeError(f"training {path} finished without writing {weights}")
    return Run(path, name, key, True, seconds)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# -- listing ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunInfo:
    """What :func:`list_runs` tells about a run folder.

    Arguments:
        name: the stable name (from ``run.json``; else the folder name without a ``-<key>`` suffix).
        key: the config key (``""`` for a folder named by hand, e.g. by ``net2net train``).
        path: the folder.
        translation: ``source -> target`` experts (``embeddings`` for ``net2net fit`` runs), or the model's class
            for other runs (an autoencoder).
        steps: optimiser steps done (``summary.json``), None before the first call ends.
        held_out_nats_per_dim: the last held-out NLL the run logged (nats/dim), None if it logs none.
        finished: its weights file exists.
        updated: when the run last changed (ISO 8601, UTC).
    """

    name: str
    key: str
    path: Path
    translation: str
    steps: int | None
    held_out_nats_per_dim: float | None
    finished: bool
    updated: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (``path`` as a string)."""
        return {**asdict(self), "path": str(self.path)}


def _is_run(path: Path) -> bool:
    return (path / "config.yaml").is_file() or (path / MANIFEST).is_file()


def _run_folders(root: Path, depth: int = 3) -> list[Path]:
    """Run folders at or under ``root`` (a run folder's own subfolders are not searched)."""
    if _is_run(root):
        return [root]
    if depth == 0:
        return []
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [run for child in children for run in _run_folders(child, depth - 1)]


def _expert(block: Any) -> str:
    if not isinstance(block, Mapping):
        return "?"
    label = str(block.get("target", "?")).rsplit(".", 1)[-1]
    params = block.get("params") or {}
    if isinstance(params, Mapping) and isinstance(params.get("path"), str):
        return Path(params["path"].removeprefix(_PRETRAINED)).stem  # weights name the expert best
    if isinstance(params, Mapping) and params.get("layer") is not None:
        return f"{label}[{params['layer']}]"
    return label


def _translation(cfg: Any, path: Path) -> str:
    if (path / "standardization.safetensors").is_file():
        return "embeddings -> embeddings"
    data = cfg.get("data") if isinstance(cfg, Mapping) else None
    params = data.get("params") if isinstance(data, Mapping) else None
    if isinstance(params, Mapping) and "source" in params and "target" in params:
        return f"{_expert(params['source'])} -> {_expert(params['target'])}"
    model = cfg.get("model") if isinstance(cfg, Mapping) else None
    return _expert(model) if isinstance(model, Mapping) else "?"


def _held_out_nll(path: Path) -> float | None:
    """The last ``val/nats_per_dim`` in the newest CSV log that has one (``net2net fit``: its model card's)."""
    card = path / "model_card.json"
    if card.is_file():
        try:
            value = json.loads(card.read_text(encoding="utf-8")).get("held_out_nats_per_dim")
            return float(value) if value is not None else None
        except (OSError, ValueError, TypeError, AttributeError):
            return None
    logs = sorted((path / "logs").glob("version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1]),
                  reverse=True)  # fmt: skip
    for csv_file in logs:
        try:
            with open(csv_file, encoding="utf-8", newline="") as f:
                values = [v for row in csv.DictReader(f) if (v := row.get("val/nats_per_dim"))]
        except (OSError, csv.Error):
            continue
        if values:
            try:
                return float(values[-1])
            except ValueError:
                continue
    return None


def _describe(path: Path) -> RunInfo:
    manifest = _read_manifest(path)
    match = _KEY_SUFFIX.match(path.name)
    name = str(manifest.get("name") or (match["name"] if match else path.name))
    key = str(manifest.get("key") or (match["key"] if match else ""))
    weights = manifest.get("weights")
    exports = [weights] if isinstance(weights, str) else list(EXPORTS)
    finished = any((path / w).is_file() for w in exports)
    cfg: Any = {}
    if (path / "config.yaml").is_file():
        import yaml  # read as data: nothing it names is imported

        try:
            cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            cfg = {}
    steps = None
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        steps = int(json.loads((path / "summary.json").read_text(encoding="utf-8"))["global_step"])
    files = [path / f for f in (MANIFEST, "config.yaml", "summary.json", "checkpoints/last.ckpt", *exports)]
    mtime = max((f.stat().st_mtime for f in files if f.is_file()), default=path.stat().st_mtime)
    updated = datetime.fromtimestamp(mtime, timezone.utc).isoformat(timespec="seconds")
    return RunInfo(name, key, path, _translation(cfg, path), steps, _held_out_nll(path), finished, updated)


def list_runs(root: str | os.PathLike[str] | None = None) -> list[RunInfo]:
    """Every run folder at or under ``root`` (default :func:`runs_dir`; ``reproduce/`` included), by name, newest
    first within a name.

    A run folder holds a ``config.yaml`` or a ``run.json``; runs of :func:`train_or_reuse`, ``net2net train`` and
    ``net2net fit`` all count. Nothing is imported or instantiated: configs are read as YAML data.
    """
    base = runs_dir(root)
    infos = [_describe(p) for p in _run_folders(base)] if base.is_dir() else []
    infos.sort(key=lambda r: r.updated, reverse=True)
    infos.sort(key=lambda r: r.name)  # stable: newest first within a name
    return infos


def resolve_run(run: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Path:
    """A run folder from a path or a run name.

    An existing path is returned as it is. A bare name (no ``/``) is the newest *finished* run of that name under
    ``root`` (default :func:`runs_dir`): ``"text2image"`` is the main job's run that ``net2net demo`` trained last;
    a folder name (``"text2image-0123456789ab"``) is that folder. Anything else is returned as a path, for the
    caller's own "not a run folder" error.

    Raises:
        FileNotFoundError: a bare name that names no finished run (the message lists the names there are).
    """
    path = Path(run)
    text = os.fspath(run)
    if path.exists() or "/" in text or os.sep in text or text in ("", ".", ".."):
        return path
    runs = [r for r in list_runs(root) if r.finished]
    for info in runs:  # list_runs puts the newest of each name first
        if text in (info.name, info.path.name):
            return info.path
    names = sorted({r.name for r in runs})
    raise FileNotFoundError(f"{text}: no such folder, and no finished run of that name under {runs_dir(root)} "
                            f"(finished runs: {', '.join(names) if names else 'none'}; see `net2net runs`)")  # fmt: skip


def format_table(runs: Sequence[RunInfo]) -> str:
    """The runs as an aligned text table (``net2net runs``)."""
    header = ("name", "key", "finished", "steps", "held-out nats/dim", "translation", "updated (UTC)", "path")
    rows = [header] + [
        (r.name, r.key or "-", "yes" if r.finished else "no", str(r.steps) if r.steps is not None else "-",
         f"{r.held_out_nats_per_dim:.4f}" if r.held_out_nats_per_dim is not None else "-", r.translation,
         r.updated.replace("T", " ").removesuffix("+00:00"), str(r.path))
        for r in runs
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
