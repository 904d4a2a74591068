"""Experiment ``translators``: why a cINN? The five translators of :mod:`net2net.translators` compared on the same
experts, data and budgets.

Three tasks of the results pages, each on the latent cache its experiment uses:

* ``text2image``: Sentence-BERT -> the Fashion-MNIST autoencoder (the main job's data; held out: the held-out
  phrasings on test images);
* ``diagnosis``: the last layer (logits) of the Fashion-MNIST classifier -> the autoencoder;
* ``superres``: the 14 px autoencoder's code of the downsampled image -> the 28 px autoencoder.

Every translator (cINN, MLP, spline flow, flow matching, linear-Gaussian) is trained on the same cached pairs with
the same batch size and learning-rate recipe (constant after the warm-up: a wall-clock budget has no known last
step), in one run per task and translator that keeps a snapshot after ``steps`` optimiser steps and one after
``seconds`` of training (:class:`~net2net.training.translator.TrainingBudget`); the linear one is fitted in closed
form. On held-out data, for both snapshots: conditional NLL (nats/dim), the classifier's accuracy and the domain FID
of decoded samples, their diversity, the consistency of super-resolution, the round-trip error ``‖τ(τ⁻¹(z)) − z‖``
and the sampling time per 1000 samples. A known answer: on a linear-Gaussian conditional (:mod:`net2net.synthetic`)
whose entropy is known in closed form, each translator's held-out NLL minus the true conditional entropy.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..data import FashionMNIST
from ..metrics import domain_fid, mean_pairwise_distance
from .experiment import (
    CLASSIFIER,
    FASHION_MNIST_SIZES,
    Experiment,
    Settings,
    batched,
    classifier_features,
    config_key,
    decode,
    heldout_images,
    page_head,
    sample_codes,
    shipped_autoencoder,
    shipped_classifier,
    train_once,
)

__all__ = ["FULL", "KINDS", "QUICK", "SIZES", "TASKS", "TranslatorsSettings", "run_translators", "translator_config",
           "translator_params"]  # fmt: skip

log = logging.getLogger(__name__)

KINDS = ("cinn", "mlp", "spline", "flow_matching", "linear")
TASKS = ("text2image", "diagnosis", "superres")
DIM = 64  # the Fashion-MNIST autoencoder's code
BUDGETS = ("time", "steps")  # the two snapshots of every run


@dataclass(frozen=True)
class TranslatorsSettings(Settings):
    """Sizes of one comparison.

    Arguments:
        steps: optimiser steps of the same-steps snapshot.
        seconds: training seconds of the same-wall-clock snapshot.
        train_images: Fashion-MNIST training images of the diagnosis and super-resolution tasks (text2image uses
            the main job's latent cache of all 60k).
        test_images: held-out examples evaluated per task.
        samples: samples per held-out condition (diversity; at least 2).
        nll_examples: held-out examples of the NLL and the round trip (the first ones; flow matching's exact
            divergence costs ``dim`` backward passes per ODE stage), and held-out pairs of the known answer.
        known_train: training pairs of the known-answer problem.
        known_steps: its same-steps budget.
        known_seconds: its wall-clock budget.
        seed: of the data subsets, training and sampling.
    """

    steps: int = 3000
    seconds: float = 600.0
    train_images: int = 60000
    test_images: int = 2000
    samples: int = 8
    nll_examples: int = 2000
    known_train: int = 20000
    known_steps: int = 2000
    known_seconds: float = 120.0
    seed: int = 0

    MINIMUMS: ClassVar[Mapping[str, int]] = {"test_images": 2, "samples": 2, "nll_examples": 2, "known_train": 256}
    MAXIMUMS: ClassVar[Mapping[str, int]] = FASHION_MNIST_SIZES

    def check(self) -> None:
        for name in ("seconds", "known_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"TranslatorsSettings.{name} must be positive, got {getattr(self, name)!r}")


QUICK = TranslatorsSettings(steps=150, seconds=60.0, train_images=10000, test_images=300, samples=4, nll_examples=150,
                            known_train=8192, known_steps=100, known_seconds=15.0)  # fmt: skip
FULL = TranslatorsSettings()


# the cINN of the CPU experiments (12 blocks, width 256, embedding 64) and the others at the same widths and embedding
SIZES: dict[str, dict[str, Any]] = {
    "cinn": {"n_blocks": 12, "hidden_dim": 256, "hidden_depth": 2, "embedding_dim": 64},
    "mlp": {"hidden_dim": 256, "depth": 2, "embedding_dim": 64},
    "spline": {"transforms": 8, "hidden_dim": 256, "hidden_depth": 2, "bins": 8, "embedding_dim": 64},
    "flow_matching": {"hidden_dim": 256, "depth": 3, "embedding_dim": 64, "ode_steps": 8},
    "linear": {},
}


def translator_params(kind: str, cond: dict[str, Any], dim: int = DIM) -> dict[str, Any]:
    """Constructor arguments of ``kind`` in the comparison (:data:`SIZES`) for a condition ``cond``."""
    if kind not in SIZES:
        raise ValueError(f"unknown translator {kind!r}; expected one of {list(SIZES)}")
    return {"dim": dim, **cond, **SIZES[kind]}


def _optim(settings: TranslatorsSettings, steps: int) -> dict[str, Any]:
    """The CPU experiments' rate (1.5e-3 at batch 128 after a warm-up), held constant: no decay, because a
    wall-clock budget has no known last step."""
    return {"base_lr": 1.2e-5, "max_lr": 1.5e-3, "warmup_steps": min(200, max(1, steps // 4))}


def translator_config(kind: str, cond: dict[str, Any], data: dict[str, Any], settings: TranslatorsSettings,
                      dim: int = DIM) -> dict[str, Any]:  # fmt: skip
    """The training config of translator ``kind`` on the ``data`` block of a task: one run that writes the
    same-steps and the same-wall-clock snapshots and stops."""
    return {
        "model": {"target": "net2net.training.translator.TranslatorModule", "params": {
            "translator": kind, "translator_params": translator_params(kind, cond, dim), "batch_size": 128,
            "optim": _optim(settings, settings.steps)}},
        "data": data,
        "seed": settings.seed,
        "lightning": {
            "trainer": {"max_steps": 100 * settings.steps, "limit_val_batches": 0, "num_sanity_val_steps": 0,
                        "log_every_n_steps": 50},
            "callbacks": {"image_logger": None, "checkpoint": {"params": {"every_n_train_steps": settings.steps}},
                          "budget": {"target": "net2net.training.translator.TrainingBudget",
                                     "params": {"steps": settings.steps, "seconds": settings.seconds}}}},
    }  # fmt: skip


# -- the tasks: data block of the training run and held-out evaluation set --------------------------------------
@dataclass
class _Task:
    name: str
    cond: dict[str, Any]
    data: dict[str, Any]
    z_src: Tensor  # (N, D_src) held-out conditions
    z_tgt: Tensor  # (N, 64) held-out target codes (sampled from q(z | y), as in training)
    labels: Tensor  # (N,) class of each example
    real: Tensor  # (N, 1, 28, 28) the held-out images
    low: Tensor | None = None  # (N, 1, 14, 14) the super-resolution inputs


def _text2image(settings: TranslatorsSettings, runs: Path, g: torch.Generator) -> _Task:
    from ..apps.main_job import text2image_config
    from ..config import instantiate_from_config

    data = text2image_config()["data"]
    dm = instantiate_from_config(data, key="data")
    dm.prepare_data()  # the main job's cache (reused), and the held-out phrasings on the test images
    dm.setup("fit")
    held = dm.pairs["validation"]  # the held-out phrasings of each test image's class
    idx = torch.randperm(len(held), generator=g)[: settings.test_images]
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)  # the cache draws z_tgt and the phrasing with the global generator
        batch = held[idx]
    test = FashionMNIST(split="test")
    real = torch.stack([test[int(i)]["image"] for i in idx])
    return _Task("text2image", {"cond_dim": batch["z_src"].shape[1]}, data, batch["z_src"], batch["z_tgt"],
                 batch["label"].long(), real)  # fmt: skip


def _diagnosis(settings: TranslatorsSettings, runs: Path, g: torch.Generator) -> _Task:
    from ..experts.layer import classifier_expert
    from .diagnosis import LAYERS, DiagnosisSettings, diagnosis_config

    layer = LAYERS["last"]
    cfg = diagnosis_config(layer, "cinn", DiagnosisSettings(train_images=settings.train_images, steps=settings.steps,
                                                            seed=settings.seed))  # fmt: skip
    real, labels = heldout_images(settings.test_images, settings.seed)
    z_src = batched(classifier_expert(CLASSIFIER, layer).encode, real)
    z_tgt = sample_codes(shipped_autoencoder(), real, g)[2]  # (N, 64): codes as the translators were trained on
    return _Task("diagnosis", {"cond_dim": z_src.shape[1]}, cfg["data"], z_src, z_tgt, labels, real)


def _superres(settings: TranslatorsSettings, runs: Path, g: torch.Generator) -> _Task:
    from ..experts.encoder_source import resize_images
    from ..experts.resize import low_res_encoder
    from . import superres

    # the 14 px autoencoder of `net2net reproduce superres` (same settings: the same run, reused)
    ae_settings = superres.QUICK if settings.train_images < 60000 else superres.FULL
    ae_run, _ = train_once(superres.low_res_autoencoder_config(ae_settings), runs, "superres-ae14",
                           "autoencoder.safetensors")  # fmt: skip
    weights = ae_run / "autoencoder.safetensors"
    sr_settings = replace(ae_settings, train_images=settings.train_images, test_images=settings.test_images,
                          seed=settings.seed)  # fmt: skip
    data = superres.fashion_config(weights, sr_settings)["data"]
    real, labels = heldout_images(settings.test_images, settings.seed)
    z_src = batched(low_res_encoder(weights).encode, real)
    z_tgt = sample_codes(shipped_autoencoder(), real, g)[2]
    return _Task("superres", {"cond_dim": z_src.shape[1]}, data, z_src, z_tgt, labels, real,
                 low=resize_images(real, superres.LOW_RES))  # fmt: skip


_TASK_BUILDERS = {"text2image": _text2image, "diagnosis": _diagnosis, "superres": _superres}


# -- evaluation ---------------------------------------------------------------------------------------------------
def _snapshots(run: Path) -> dict[str, Path]:
    """The two snapshots of a run; a closed-form fit has one state for both (its export)."""
    out = {b: run / f"translator-{b}.safetensors" for b in BUDGETS}
    if not all(p.is_file() for p in out.values()):
        out = {b: run / "translator.safetensors" for b in BUDGETS}
    return out


def _snapshot_info(path: Path) -> dict[str, float]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return {"step": int(meta.get("global_step", 0)), "train_seconds": float(meta.get("train_seconds", 0.0))}


def _has_density(t: Any) -> bool:
    return not t.deterministic


@torch.no_grad()
def _likelihood_metrics(t: Any, z_tgt: Tensor, z_src: Tensor) -> dict[str, float | None]:
    """Held-out NLL (nats/dim) and the round-trip error mean ``‖τ(τ⁻¹(z)) − z‖₂`` (None for the MLP)."""
    if not _has_density(t):
        return {"nll": None, "round_trip": None}
    nll, err = [], []
    for i in range(0, len(z_tgt), 250):
        z, c = z_tgt[i : i + 250], z_src[i : i + 250]
        nll.append(-t.log_prob(z, c))
        err.append((t.from_residual(t.residual(z, c), c) - z).norm(dim=1))
    return {"nll": float(torch.cat(nll).mean()) / t.dim, "round_trip": float(torch.cat(err).mean())}


def _sampling_seconds_per_1000(t: Any, z_src: Tensor, repeats: int = 3) -> float:
    """Median wall time of 1000 samples (250 conditions x 4), translator only (no decoding)."""
    cond = z_src[:250]
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t0 = time.perf_counter()
            t.sample(cond, n_samples=1000 // len(cond))
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000 / (len(cond) * (1000 // len(cond)))


@torch.no_grad()
def _evaluate(t: Any, task: _Task, k: int, nll_examples: int, target: Any, classifier: Any,
              g: torch.Generator) -> tuple[dict, Tensor]:  # fmt: skip
    """All metrics of one translator snapshot on a task's held-out set; also its decoded samples (N, k, 1, 28, 28)."""
    from .superres import _paired_metrics

    n, m = len(task.z_src), nll_examples
    out = _likelihood_metrics(t, task.z_tgt[:m], task.z_src[:m])
    z = torch.cat([t.sample(task.z_src[i : i + 250], n_samples=k, generator=g) for i in range(0, n, 250)])
    images = decode(target, z)  # (N, k, 1, 28, 28)
    hits = batched(classifier, images.flatten(0, 1)).argmax(1) == task.labels.repeat_interleave(k)
    out["fid"] = domain_fid(images[:, 0], task.real, classifier_features(classifier))
    out["accuracy"] = float(hits.float().mean())
    out["diversity"] = float(mean_pairwise_distance(images).mean())
    if task.low is not None:
        paired = _paired_metrics(images, task.low, task.real)
        out["consistency_psnr"], out["fidelity_psnr"] = paired["consistency_psnr"], paired["fidelity_psnr"]
    return out, images


def _known_answer(settings: TranslatorsSettings, runs: Path) -> dict[str, Any]:
    """Each translator on ``z_tgt = A z_src + b + L eps`` (16-d target, 8-d condition), same budgets: held-out NLL
    minus the true conditional entropy, per dimension."""
    from ..io import atomic_save_safetensors
    from ..synthetic import LinearGaussian
    from ..training.run import train_from_config
    from ..translators import build_translator, load_translator, save_translator

    problem = LinearGaussian(dim=16, cond_dim=8, seed=settings.seed)
    z, c = problem.sample(settings.known_train, generator=torch.Generator().manual_seed(settings.seed))
    z_test, c_test = problem.sample(settings.nll_examples, generator=torch.Generator().manual_seed(settings.seed + 1))
    entropy = problem.conditional_entropy() / problem.dim
    true_nll = float(problem.conditional_nll(z_test, c_test).mean()) / problem.dim
    budget = replace(settings, steps=settings.known_steps, seconds=settings.known_seconds)
    rows = {}
    for kind in KINDS:
        if kind == "mlp":
            continue  # no likelihood
        params = translator_params(kind, {"cond_dim": 8}, dim=16)
        run = runs / f"translators-known-{kind}-{config_key([params, asdict(budget)])}"
        snaps = _snapshots(run)
        if not all(p.is_file() for p in snaps.values()):
            run.mkdir(parents=True, exist_ok=True)
            if kind == "linear":
                t = build_translator(kind, **params)
                t.fit_closed_form(z, c)
                save_translator(t, run / "translator.safetensors")
            else:
                atomic_save_safetensors({"z_tgt": z, "z_src": c}, run / "data.safetensors")
                # shuffled passes without replacement, the experiment's optimiser recipe (_optim) as every task
                data = {"target": "net2net.training.datamodule.TensorDataModule",
                        "params": {"path": str(run / "data.safetensors"), "batch_size": 128, "replacement": False}}
                config = translator_config(kind, {"cond_dim": 8}, data, budget, dim=16)
                with torch.enable_grad():
                    train_from_config(config, log_dir=run)
            snaps = _snapshots(run)
        row = {}
        for b, path in snaps.items():
            t = load_translator(path)
            nll = _likelihood_metrics(t, z_test, c_test)["nll"]
            assert nll is not None  # the MLP, the one translator without a density, is left out above
            row[b] = {"nll": nll, "gap": nll - true_nll, **_snapshot_info(path)}
        rows[kind] = row
    return {"entropy_per_dim": entropy, "true_nll_per_dim": true_nll, "dim": 16, "cond_dim": 8,
            "test_pairs": len(z_test), "train_pairs": settings.known_train, "translators": rows}  # fmt: skip


# -- the experiment ------------------------------------------------------------------------------------------------
@torch.no_grad()
def run_translators(out_dir: str | Path = "docs/results", quick: bool = False, runs_dir: str | Path | None = None,
                    settings: TranslatorsSettings | None = None,
                    tasks: tuple[str, ...] = TASKS) -> dict[str, Any]:  # fmt: skip
    """Train what is missing, evaluate, write ``<out_dir>/translators.md``, its figures and ``translators.json``.

    Arguments:
        out_dir: where the results page goes.
        quick: the quick settings (:data:`QUICK`) instead of the full ones (:data:`FULL`).
        runs_dir: training runs (default ``<cache>/runs/reproduce``); finished runs are reused.
        settings: explicit sizes (overrides ``quick``).
        tasks: a subset of :data:`TASKS`, in order.
    """
    from ..translators import load_translator

    unknown = [t for t in tasks if t not in _TASK_BUILDERS]
    if unknown or not tasks:
        raise ValueError(f"tasks must be a non-empty subset of {list(TASKS)}, got {list(tasks)}")
    exp = Experiment.start("translators", out_dir, quick, runs_dir, settings, QUICK, FULL)
    settings, runs = exp.settings, exp.runs
    target, classifier = shipped_autoencoder(), shipped_classifier()
    results: dict[str, Any] = {}
    figures: dict[str, str] = {}
    for name in tasks:
        t_task = time.perf_counter()
        task = _TASK_BUILDERS[name](settings, runs, exp.generator())
        rows: dict[str, Any] = {}
        shown: dict[str, Tensor] = {}
        for kind in KINDS:
            cfg = translator_config(kind, task.cond, task.data, settings)
            run, secs = train_once(cfg, runs, f"translators-{name}-{kind}", "translator.safetensors")
            row: dict[str, Any] = {"run": run.name, "train_seconds_this_call": round(secs, 1),
                                   "closed_form": kind == "linear"}
            for b, path in _snapshots(run).items():
                t = load_translator(path)
                metrics, images = _evaluate(t, task, settings.samples, settings.nll_examples, target, classifier,
                                            exp.generator(1))  # fmt: skip
                row[b] = {**metrics, **_snapshot_info(path)}
                if b == "time":
                    row["sampling_seconds_per_1000"] = _sampling_seconds_per_1000(t, task.z_src)
                    shown[kind] = images[:4, :3]  # (4, 3, 1, 28, 28): the same 4 held-out inputs for every kind
            rows[kind] = row
            log.info("translators %s/%s: %s", name, kind, row)
        results[name] = {"translators": rows, "seconds": round(time.perf_counter() - t_task, 1),
                         "test_examples": len(task.z_src)}  # fmt: skip
        figures[name] = _figure(exp, name, task, shown)
        summary = _summary(exp, results, None, figures)
        exp.write(summary, _page)  # the tasks so far, in case the run is cut short
    summary = _summary(exp, results, _known_answer(settings, runs), figures)
    exp.write(summary, _page)
    return summary


def _summary(exp: Experiment[TranslatorsSettings], results: dict[str, Any], known: dict[str, Any] | None,
             figures: dict[str, str]) -> dict[str, Any]:  # fmt: skip
    return exp.summary(tasks=results, known_answer=known, figures=figures, threads=torch.get_num_threads(),
                       seconds_total=exp.elapsed())  # fmt: skip


def _figure(exp: Experiment[TranslatorsSettings], name: str, task: _Task, shown: dict[str, Tensor]) -> str:
    """One row per translator: for each of 4 held-out inputs the real image, then (up to) 3 decoded samples."""
    real = task.real[:4, None]  # (4, 1, 1, 28, 28)
    rows = [torch.cat([real, images], 1).flatten(0, 1) for images in shown.values()]  # each (4 * (1 + m), 1, 28, 28)
    exp.figure(torch.cat(rows), f"translators_{name}", nrow=len(rows[0]), scale=2)
    return f"figures/translators_{name}.png"


# -- the page ------------------------------------------------------------------------------------------------------
_NAMES = {"cinn": "cINN", "mlp": "MLP", "spline": "spline flow", "flow_matching": "flow matching",
          "linear": "linear-Gaussian"}  # fmt: skip


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _pair(row: dict[str, Any], key: str, spec: str, scale: float = 1.0) -> str:
    a, b = row["time"].get(key), row["steps"].get(key)
    return f"{_fmt(None if a is None else a * scale, spec)} / {_fmt(None if b is None else b * scale, spec)}"


def _ranking(rows: dict[str, Any], key: str, budget: str, lower: bool) -> list[tuple[str, float]]:
    """The translators with a value of ``key`` at ``budget``, best first."""
    values = [(k, r[budget][key]) for k, r in rows.items() if r[budget].get(key) is not None]
    return sorted(values, key=lambda kv: kv[1] if lower else -kv[1])


def _page(summary: dict[str, Any]) -> list[str]:
    s = summary["settings"]
    lines = [
        *page_head("Why a cINN? The translators compared on the same experts, data and budgets", "translators",
                   summary["quick"], f" ({summary['seconds_total'] / 60:.1f} min for this page, "
                   f"{summary['threads']} threads; training runs that existed were reused)."),
        "Five translators of `p(z_tgt | z_src)` (`net2net.translators`, chosen in configs by "
        "`model.params.translator`): the paper's **cINN** (12 affine coupling blocks, width 256), the **MLP** of the "
        "ablation (deterministic regression), a conditional **spline flow** (zuko's NSF, 8 coupling transforms, "
        "width 256, 8 bins), conditional **flow matching** (velocity MLP of width 256, RK4 with 8 steps; likelihood "
        "by the instantaneous change of variables with the exact divergence) and **linear-Gaussian** (least "
        "squares and the residuals' Cholesky factor, fitted in closed form). All trained on the same cached latents, "
        f"batch 128, Adam at 1.5e-3 after a warm-up (constant), each in one run that keeps a snapshot after "
        f"**{s['seconds']:.0f} s** of training (same wall clock) and one after **{s['steps']} steps** (same steps). "
        "Cells read *same wall clock / same steps*.",
        "",
        "Metrics on held-out examples: NLL of the held-out target code (nats/dim, lower is better; the MLP has "
        "none); accuracy: the Fashion-MNIST classifier recognises the input's class in the decoded samples; domain "
        "FID: Fréchet distance in the classifier's features, first sample per input against the real held-out "
        "images; diversity: mean pairwise RMS distance of the decoded samples of one input; round trip: mean "
        "‖τ(τ⁻¹(z)) − z‖₂ of held-out codes; sampling: seconds per 1000 samples of the translator alone.",
        "",
    ]
    task_titles = {"text2image": "Text → image (Sentence-BERT → autoencoder, held-out phrasings)",
                   "diagnosis": "Diagnosis, last classifier layer (logits → autoencoder)",
                   "superres": "Super-resolution 14 px → 28 px (autoencoder codes)"}  # fmt: skip
    findings = []
    for name, res in summary["tasks"].items():
        rows = res["translators"]
        sr = name == "superres"
        lines += [f"## {task_titles[name]}", "", f"{res['test_examples']} held-out examples, {s['samples']} samples "
                  f"each (NLL and round trip: the first {min(s['nll_examples'], res['test_examples'])}); "
                  f"{res['seconds'] / 60:.1f} min.", ""]  # fmt: skip
        head = "| translator | NLL (nats/dim) | accuracy (%) | domain FID | diversity |"
        head += " consistency (dB) |" if sr else ""
        head += " round trip | sampling (s / 1000) | steps in the time budget | s to reach the step budget |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for kind, r in rows.items():
            cells = [_NAMES[kind], _pair(r, "nll", ".3f"), _pair(r, "accuracy", ".1f", 100), _pair(r, "fid", ".2f"),
                     _pair(r, "diversity", ".3f")]  # fmt: skip
            if sr:
                cells.append(_pair(r, "consistency_psnr", ".1f"))
            closed = r["closed_form"]
            cells += [_fmt(r["time"]["round_trip"], ".1e"), f"{r['sampling_seconds_per_1000']:.3f}",
                      "closed form" if closed else str(r["time"]["step"]),
                      "closed form" if closed else f"{r['steps']['train_seconds']:.0f}"]  # fmt: skip
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"![samples per translator]({summary['figures'][name]})", "",
                  "Rows: " + ", ".join(_NAMES[k] for k in rows) + "; for each of 4 held-out inputs the real image, "
                  "then 3 samples.", ""]  # fmt: skip
        for key, label, lower in (("nll", "lowest NLL", True), ("fid", "lowest FID", True),
                                  ("accuracy", "highest accuracy", False)):  # fmt: skip
            for budget in BUDGETS:
                ranking = _ranking(rows, key, budget, lower)
                if not ranking:
                    continue
                show = [f"{_NAMES[k]} {100 * v:.1f} %" if key == "accuracy" else f"{_NAMES[k]} {v:.3f}"
                        for k, v in ranking]  # fmt: skip
                findings.append(f"{name}, {'same wall clock' if budget == 'time' else 'same steps'}, "
                                f"{label} first: " + ", ".join(show))  # fmt: skip
    k = summary["known_answer"]
    if k is None:
        lines += ["## Known answer", "", "(not run yet: the page was written after the tasks above)", ""]
    lines += [] if k is None else [
        "## Known answer: a linear-Gaussian conditional",
        "",
        f"`z_tgt = A z_src + b + L ε` ({k['dim']}-d target, {k['cond_dim']}-d condition, {k['train_pairs']} "
        f"training pairs; `net2net.synthetic.LinearGaussian`): the true conditional entropy is "
        f"{k['entropy_per_dim']:.4f} nats/dim (the true model's NLL on the {k['test_pairs']} held-out pairs: "
        f"{k['true_nll_per_dim']:.4f}). Budgets: {s['known_seconds']:.0f} s / {s['known_steps']} steps. "
        "Gaps: the held-out NLL minus the true entropy, and minus the true model's NLL on the same pairs (which "
        "removes the sampling noise of the held-out set; 0 is perfect).",
        "",
        "| translator | NLL (nats/dim) | NLL − true entropy | NLL − true model's NLL |",
        "|---|---|---|---|",
    ]
    for kind, row in (k or {"translators": {}})["translators"].items():
        to_entropy = {b: {"d": row[b]["nll"] - k["entropy_per_dim"]} for b in BUDGETS}
        lines.append(f"| {_NAMES[kind]} | {_pair(row, 'nll', '.4f')} | {_pair(to_entropy, 'd', '+.4f')} | "
                     f"{_pair(row, 'gap', '+.4f')} |")  # fmt: skip
    lines += ["", "## What the numbers say", "", "Measured in this run, each metric's ranking per task and budget:", ""]
    lines += [f"- {f}" for f in findings]
    lines += [""]
    return lines
