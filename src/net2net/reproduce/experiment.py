"""The skeleton every experiment of :mod:`net2net.reproduce` is written on.

- :class:`Settings`: the base of an experiment's sizes (a frozen dataclass with ``seed``), checked on creation;
  each experiment module defines its ``QUICK`` and ``FULL`` instances and :meth:`Experiment.start` picks one;
- :class:`Experiment`: one call of an experiment: its settings, output and run folders, clock, the training
  runs it trained or reused (:func:`train_once`, keyed by the config's hash) and the page it writes;
- the set-up the experiments share: the shipped classifier and autoencoder, held-out Fashion-MNIST images, their
  codes, the cINN / trainer / data blocks of the CPU experiments' training configs;
- the page: figures, ``NAME.md`` and ``NAME.json`` written atomically, the "Reproduce:" and training-time lines.

An experiment module then holds only what is its own: its settings, its training configs, its measures and the
text of its page, which is a function of the JSON summary alone (so a page can be rewritten from its JSON).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import Tensor

from ..images import make_grid, save_png
from ..io import atomic_path
from ..training.runs import run_key, train_or_reuse
from ..training.runs import runs_dir as default_runs_dir

__all__ = [
    "AUTOENCODER",
    "CLASSIFIER",
    "FASHION_MNIST_SIZES",
    "Experiment",
    "FashionSettings",
    "Settings",
    "autoencoder_translation_config",
    "batched",
    "check_ints",
    "cinn_config",
    "classifier_features",
    "condition_of",
    "config_key",
    "decode",
    "encode_dist",
    "fashion_mnist",
    "heldout_images",
    "load_images",
    "optim_config",
    "page_head",
    "runs_root",
    "sample_codes",
    "save_figure",
    "shipped_autoencoder",
    "shipped_classifier",
    "train_once",
    "trainer_config",
    "training_time_line",
    "used_runs",
    "write_page",
]

log = logging.getLogger(__name__)

CLASSIFIER = "pretrained:fashion_mnist_classifier"
AUTOENCODER = "pretrained:fashion_mnist_autoencoder"
FASHION_MNIST_SIZES: Mapping[str, int] = {"train_images": 60000, "test_images": 10000}  # the images of its splits

_USED_RUNS: list[Path] = []  # run folders train_once gave out in this process (for the compute report)


# -- settings -----------------------------------------------------------------------------------------------------
def check_ints(settings: object, minimums: Mapping[str, int]) -> None:
    """Raise a ``ValueError`` naming the field unless each ``settings.<name>`` is an int ``>= minimums[name]``."""
    for name, minimum in minimums.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{type(settings).__name__}.{name} must be an int >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class Settings:
    """Base of an experiment's sizes: a frozen dataclass whose fields are written to the page's JSON.

    A subclass declares its fields (``seed`` among them), :attr:`MINIMUMS` (the smallest allowed value of an int
    field where it is not 1: every field typed ``int`` must be an int >= 1, ``seed`` >= 0), :attr:`MAXIMUMS`
    (fields and their largest allowed value, e.g. :data:`FASHION_MNIST_SIZES`), both checked on creation, and,
    where it needs more, :meth:`check`.
    """

    MINIMUMS: ClassVar[Mapping[str, int]] = {}
    MAXIMUMS: ClassVar[Mapping[str, int]] = {}

    def __post_init__(self) -> None:
        ints = {f.name: 0 if f.name == "seed" else 1 for f in fields(self) if f.type in ("int", int)}
        check_ints(self, {**ints, **self.MINIMUMS})
        for name, most in self.MAXIMUMS.items():
            if getattr(self, name) > most:
                raise ValueError(f"{type(self).__name__}.{name} must be <= {most}, got {getattr(self, name)!r}")
        self.check()

    def check(self) -> None:
        """Checks beyond :attr:`MINIMUMS` and :attr:`MAXIMUMS` (a ``ValueError`` naming the field); none by
        default."""


@dataclass(frozen=True)
class FashionSettings(Settings):
    """The sizes of an experiment that translates into the shipped autoencoder on Fashion-MNIST (its fields come
    first in a subclass; a subclass's :attr:`MINIMUMS` extend these, ``{**FashionSettings.MINIMUMS, ...}``).

    Arguments:
        train_images: Fashion-MNIST training images trained on.
        steps: optimiser steps of each translator.
        test_images: held-out test images evaluated.
        samples: translations per test image (at least 2: diversity needs pairs).
    """

    train_images: int = 60000
    steps: int = 6000
    test_images: int = 2000
    samples: int = 8

    MINIMUMS: ClassVar[Mapping[str, int]] = {"samples": 2}


S = TypeVar("S", bound=Settings)


# -- training runs ------------------------------------------------------------------------------------------------
def used_runs(clear: bool = False) -> list[Path]:
    """The run folders :func:`train_once` trained or reused so far in this process (``clear``: forget them after)."""
    runs = list(dict.fromkeys(_USED_RUNS))
    if clear:
        _USED_RUNS.clear()
    return runs


def runs_root(runs_dir: str | Path | None) -> Path:
    """Where an experiment's training runs live: ``runs_dir``, else ``<cache>/runs/reproduce``."""
    return Path(runs_dir) if runs_dir is not None else default_runs_dir() / "reproduce"


def config_key(obj: Any) -> str:
    """The run manager's key of a config (:func:`net2net.training.runs.run_key`: its content and the digests of the
    files it names): the suffix of its run folder, so that a changed config or weights file retrains."""
    return run_key(obj)


def train_once(cfg: Mapping[str, Any], runs: Path, name: str, weights: str = "cinn.safetensors") -> tuple[Path, float]:
    """Train ``cfg`` into ``runs/<name>-<key>`` unless its ``weights`` file exists (the run manager's
    :func:`~net2net.training.runs.train_or_reuse`).

    Returns the run folder and the training seconds (0 when the run was reused).
    """
    run = train_or_reuse(cfg, name, root=runs, weights=weights)
    _USED_RUNS.append(run.path)
    return run.path, run.train_seconds


# -- one call of an experiment ------------------------------------------------------------------------------------
@dataclass
class Experiment(Generic[S]):
    """One call of experiment ``name``: its settings, where it writes, its clock and its training runs.

    Arguments:
        name: the experiment (its page is ``<out>/<name>.md``).
        settings: its sizes.
        quick: whether the quick settings were asked for (the page's "Reproduce:" line says so).
        out: the results folder.
        runs: the folder of its training runs (:func:`runs_root`).
    """

    name: str
    settings: S
    quick: bool
    out: Path
    runs: Path
    train_seconds: dict[str, float] = field(default_factory=dict)
    t_start: float = field(default_factory=time.perf_counter)

    @classmethod
    def start(cls, name: str, out_dir: str | Path, quick: bool, runs_dir: str | Path | None, settings: S | None,
              quick_settings: S, full_settings: S) -> Experiment[S]:  # fmt: skip
        """The call of ``run_<name>(out_dir, quick, runs_dir, settings)``: ``settings`` if given, else the quick
        or the full ones; the clock starts now."""
        chosen = settings if settings is not None else (quick_settings if quick else full_settings)
        return cls(name, chosen, quick, Path(out_dir), runs_root(runs_dir))

    def generator(self, offset: int = 0) -> torch.Generator:
        """A CPU generator seeded with ``settings.seed + offset``."""
        return torch.Generator().manual_seed(self.settings.seed + offset)  # type: ignore[attr-defined]

    def train(self, key: str, cfg: Mapping[str, Any], name: str, weights: str = "cinn.safetensors") -> Path:
        """:func:`train_once` into this experiment's runs; its training seconds go to ``train_seconds[key]``."""
        run, seconds = train_once(cfg, self.runs, name, weights)
        self.train_seconds[key] = round(seconds, 1)
        return run

    def elapsed(self) -> float:
        """Seconds since :meth:`start`, rounded to 0.1."""
        return round(time.perf_counter() - self.t_start, 1)

    def summary(self, **fields: Any) -> dict[str, Any]:
        """The head of the page's JSON: ``settings`` and ``quick``, then ``fields`` in order."""
        return {"settings": asdict(self.settings), "quick": self.quick, **fields}

    def figure(self, images: Tensor, name: str, nrow: int, scale: int = 2) -> Path:
        """``<out>/figures/<name>.png``: ``images`` ``(N, C, H, W)`` in [-1, 1] tiled ``nrow`` per row."""
        return save_figure(images, self.out / "figures" / f"{name}.png", nrow=nrow, scale=scale)

    def write(self, summary: Mapping[str, Any], page: Callable[[dict[str, Any]], list[str]]) -> Path:
        """Write the page ``page(summary)`` and the JSON ``summary``; returns the page's path."""
        path = write_page(self.out, self.name, page(dict(summary)), summary)
        log.info("%s: wrote %s in %.0f s", self.name, path, self.elapsed())
        return path


# -- the shared set-up --------------------------------------------------------------------------------------------
def shipped_classifier() -> Any:
    """The Fashion-MNIST classifier shipped with the package (:data:`CLASSIFIER`)."""
    from ..experts.classifier import load_classifier

    return load_classifier(CLASSIFIER)


def shipped_autoencoder() -> Any:
    """The Fashion-MNIST autoencoder shipped with the package (:data:`AUTOENCODER`), as a target expert."""
    from ..experts.target import load_autoencoder_target

    return load_autoencoder_target(AUTOENCODER)


def load_images(dataset: Any, key: str = "label") -> tuple[Tensor, Tensor]:
    """All images of a dataset of dict items and their ``key`` entries: ``(N, C, H, W)``, ``(N,)``."""
    items = [dataset[i] for i in range(len(dataset))]
    return torch.stack([it["image"] for it in items]), torch.tensor([it[key] for it in items])


def heldout_images(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """The held-out Fashion-MNIST images of the experiments: ``n`` test images drawn with ``seed + 2``,
    ``(N, 1, 28, 28)`` in [-1, 1] and their labels ``(N,)``."""
    from ..data import FashionMNIST, Subset

    return load_images(Subset(FashionMNIST(split="test"), n, seed=seed + 2))



def fashion_mnist(split: str) -> dict[str, Any]:
    """The config block of the Fashion-MNIST ``split``."""
    return {"target": "net2net.data.FashionMNIST", "params": {"split": split}}


@torch.no_grad()
def batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 500) -> Tensor:
    """``fn`` applied to ``x`` in chunks of ``batch_size`` along the first dimension, concatenated."""
    return torch.cat([fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def encode_dist(target: Any, images: Tensor, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """Mean and std of the target autoencoder's ``q(z | y)`` for ``images``, in batches: ``(N, D)`` each."""
    mean, std = batched(lambda x: torch.cat(target.encode_dist(x), 1), images, batch_size).chunk(2, 1)
    return mean, std


@torch.no_grad()
def sample_codes(target: Any, images: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """``(mean, std, z)`` of ``q(z | y)`` for ``images``, ``z = mean + std * eps`` drawn from ``g``: the codes as
    the translators were trained on, ``(N, D)`` each."""
    mean, std = encode_dist(target, images)
    return mean, std, mean + std * torch.randn(mean.shape, generator=g)


@torch.no_grad()
def decode(target: Any, z: Tensor, batch_size: int = 500) -> Tensor:
    """Decoded images in [-1, 1] of codes ``z`` ``(N, k, D)`` -> ``(N, k, C, H, W)`` (or ``(N, D)`` ->
    ``(N, C, H, W)``), in batches."""
    images = batched(target.decode, z.flatten(0, 1) if z.dim() == 3 else z, batch_size).clamp(-1, 1)
    return images.view(*z.shape[:2], *images.shape[1:]) if z.dim() == 3 else images  # (N*k, ...) -> (N, k, ...)


def classifier_features(classifier: Any) -> Callable[[Tensor], Tensor]:
    """The pooled features of the Fashion-MNIST classifier: the feature space of the domain FID."""
    return lambda x: classifier.features(x, ["pool"])["pool"]


def condition_of(expert: Any, input_shape: Sequence[int] = (1, 28, 28)) -> dict[str, Any]:
    """``{"cond_dim": D}`` or ``{"cond_shape": [C, H, W]}`` of ``expert.encode`` on one input of ``input_shape``."""
    with torch.no_grad():
        shape = tuple(expert.encode(torch.zeros(1, *input_shape)).shape[1:])
    return {"cond_dim": shape[0]} if len(shape) == 1 else {"cond_shape": list(shape)}


# -- training configs of the CPU experiments ----------------------------------------------------------------------
def optim_config(steps: int) -> dict[str, Any]:
    """The cINN/MLP schedule of the CPU experiments: lr 1.5e-3 after a warm-up, cosine decay to the last step."""
    return {"base_lr": 1.2e-5, "max_lr": 1.5e-3, "warmup_steps": min(200, max(1, steps // 4)), "decay_steps": steps}


def cinn_config(cond: Mapping[str, Any], steps: int, dim: int = 64, batch_size: int = 128, n_blocks: int = 12,
                hidden_dim: int = 256, embedding_dim: int = 64) -> dict[str, Any]:  # fmt: skip
    """The ``model`` block of a cINN for the CPU experiments (``cond`` = ``{"cond_dim": D}`` or
    ``{"cond_shape": [C, H, W]}``): 12 blocks of width 256, as the text-to-image main job."""
    flow = {"dim": dim, "n_blocks": n_blocks, "hidden_dim": hidden_dim, "hidden_depth": 2,
            "embedding_dim": embedding_dim, **dict(cond)}  # fmt: skip
    return {"target": "net2net.training.translator.CINNModule", "params": {
        "batch_size": batch_size, "optim": optim_config(steps),
        "flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow}}}  # fmt: skip


def trainer_config(steps: int, val_batches: int = 4) -> dict[str, Any]:
    """The ``lightning`` block: ``steps`` optimiser steps, one validation and one image grid at the end."""
    return {
        "trainer": {"max_steps": steps, "val_check_interval": steps, "check_val_every_n_epoch": None,
                    "limit_val_batches": val_batches, "num_sanity_val_steps": 0, "log_every_n_steps": 50},
        "callbacks": {"image_logger": {"params": {"every_n_steps": steps, "max_images": 16, "scale": 2}},
                      "checkpoint": {"params": {"every_n_train_steps": min(1000, steps)}}},
    }  # fmt: skip


def autoencoder_translation_config(name: str, source: Mapping[str, Any], model: Mapping[str, Any], steps: int,
                                   train_images: int, seed: int, val_images: int = 512, batch_size: int = 128,
                                   **data: Any) -> dict[str, Any]:  # fmt: skip
    """The training config of a translation from ``source`` into the shipped autoencoder on Fashion-MNIST:
    ``train_images`` training images (a subset drawn with ``seed``), ``val_images`` test images for the logged
    validation, ``steps`` steps of ``model``; ``data``: further ``TranslationDataModule`` parameters."""
    return {
        "model": dict(model),
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "name": name, "batch_size": batch_size, "source": dict(source),
            "target": {"target": "net2net.experts.target.load_autoencoder_target", "params": {"path": AUTOENCODER}},
            "train": {"target": "net2net.data.Subset", "params": {
                "dataset": fashion_mnist("train"), "n": train_images, "seed": seed}},
            "validation": {"target": "net2net.data.Subset", "params": {
                "dataset": fashion_mnist("test"), "n": val_images, "seed": 1}},
            **data}},
        "seed": seed,
        "lightning": trainer_config(steps),
    }  # fmt: skip


# -- the page -----------------------------------------------------------------------------------------------------
def save_figure(images: Tensor, path: Path, nrow: int, scale: int = 2) -> Path:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into a PNG at ``path`` (atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_png(make_grid(images.clamp(-1, 1), nrow=nrow, scale=scale, padding=2), path)


def page_head(title: str, name: str, quick: bool, note: str = "") -> list[str]:
    """The first lines of a page: ``# title`` and ``Reproduce: `net2net reproduce NAME [--quick]```+ ``note``."""
    return [f"# {title}", "", f"Reproduce: `net2net reproduce {name}{' --quick' if quick else ''}`{note}", ""]


def training_time_line(summary: Mapping[str, Any]) -> str:
    """``Training time per run (s, 0 = reused): {...}; total N s`` from the summary's ``train_seconds`` and
    ``seconds_total`` (no full stop: some pages go on)."""
    return (f"Training time per run (s, 0 = reused): {json.dumps(summary['train_seconds'])}; total "
            f"{summary['seconds_total']:.0f} s")  # fmt: skip


def write_page(out: Path, name: str, lines: Sequence[str], summary: Mapping[str, Any]) -> Path:
    """Write ``<out>/<name>.md`` (``lines``) and ``<out>/<name>.json`` (``summary``), atomically."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / f"{name}.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with atomic_path(out / f"{name}.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out / f"{name}.md"
