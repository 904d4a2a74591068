"""Command-line interface: ``net2net demo | train | runs | fit | sample | score | evaluate | export | reproduce |
report | encode | translate | evaluate-autoencoder | serve``."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CLIError", "main"]

EXIT_ERROR = 2  # any error: one line on stderr (the traceback with --debug)
EXIT_SIGTERM = 128 + 15  # training stopped by SIGTERM after saving last.ckpt (the shell's code for it)
EXIT_INTERRUPT = 128 + 2  # Ctrl-C outside Lightning's own handling


class CLIError(Exception):
    """A usage error found by a command; ``main`` prints it as one line and exits with status 2."""


def _import_user_modules(modules: Sequence[str]) -> None:
    """Configs the user passes may name their own modules in the working folder, as ``python -m`` would find them;
    then each ``--import MODULE`` is imported, before any config is read (as LightningCLI / Hydra users expect: a
    module that registers OmegaConf resolvers or defines the classes a config names).

    The folder is appended (not prepended): a stray ``torch.py`` in it cannot shadow an installed package. An
    imported module is not trusted by a run folder's config for that (``--trust`` does that)."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # ImportError, or whatever the module raised while importing
            raise CLIError(f"--import {name}: {type(e).__name__}: {e}") from e


_AUTO_THREADS_HELP = ("PyTorch CPU threads (default: OMP_NUM_THREADS if set; else one per core, or 1 when the load "
                      "average says the cores are busy)")  # fmt: skip


def _threads(requested: int | None, auto: bool = False) -> None:
    """``--threads``: PyTorch's CPU threads (``auto``: :func:`~net2net.training.threads.choose_threads` picks one
    thread on a busy machine when none is requested)."""
    from .training.threads import choose_threads

    if requested is not None and requested < 1:
        raise CLIError(f"--threads must be a positive integer, got {requested}")
    if requested is not None or auto:
        choose_threads(requested)


def _demo(args: argparse.Namespace) -> int:
    _threads(args.threads, auto=True)  # one thread on a busy machine unless told otherwise
    if args.task == "digits":
        from .apps.demo import run_demo

        metrics = run_demo(out_dir=args.out, run_dir=args.run_dir, steps=args.steps, seed=args.seed,
                           retrain=args.retrain)  # fmt: skip
        keys = ("png", "test_nats_per_dim", "classifier_accuracy_real_test", "classifier_accuracy_samples",
                "diversity_samples", "diversity_real_test", "trained_now", "train_seconds", "run_dir")  # fmt: skip
    else:
        from .apps.main_job import run_text2image

        metrics = run_text2image(out_dir=args.out, run_dir=args.run_dir, steps=args.steps, seed=args.seed,
                                 retrain=args.retrain, temperature=args.temperature,
                                 precision=args.precision)  # fmt: skip
        keys = ("png", "held_out_accuracy", "accuracy_per_class", "diversity_mean", "diversity_real_mean",
                "by_temperature", "trained_now", "train_seconds", "run_dir")  # fmt: skip
    print(json.dumps({k: metrics[k] for k in keys}, indent=2))
    return 0


def _encode(args: argparse.Namespace) -> int:
    from .config import ConfigError, instantiate, load_config

    configs = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    try:
        cfg = load_config(configs, overrides)
    except (ValueError, FileNotFoundError) as e:
        raise ConfigError(str(e)) from e
    dm = instantiate(cfg.data, "data")
    if not hasattr(dm, "cache_path"):
        raise CLIError("data.target must be a TranslationDataModule (source and target experts)")
    if dm.live:
        print("net2net encode: the source expert is stochastic; it is encoded live during training, nothing to cache")
        return 0
    dm.prepare_data()
    for split in dm.split_configs:
        print(f"{split}: {dm.cache_path(split)}")
    return 0


def _evaluate_autoencoder(args: argparse.Namespace) -> int:
    import torch

    from .data import FashionMNIST
    from .experts.classifier import load_classifier
    from .experts.target import load_autoencoder_target
    from .images import make_grid, save_png
    from .io import atomic_path
    from .metrics.reconstruction import evaluate_autoencoder

    ae = load_autoencoder_target(args.weights)
    if ae.image_size != 28 or ae.in_channels != 1:
        print(f"net2net evaluate-autoencoder: expected a 28 px grey Fashion-MNIST autoencoder, got "
              f"{ae.image_size} px with {ae.in_channels} channel(s)", file=sys.stderr)  # fmt: skip
        return 2
    test = FashionMNIST(split="test")
    images = torch.stack([test[i]["image"] for i in range(len(test))])  # (10000, 1, 28, 28)
    labels = torch.tensor(test.labels)
    classifier = load_classifier(args.classifier) if args.classifier else None
    result = evaluate_autoencoder(ae, images, labels, classify=classifier, n_fid=args.fid_images, seed=args.seed)
    result.update(weights=str(args.weights), classifier=args.classifier)
    if args.json:
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if args.png:
        with torch.no_grad():
            mean = ae.encode_dist(images[:16])[0]  # (16, z_dim)
            rec = ae.decode(mean)
            smp = ae.decode(torch.randn(mean.shape, generator=torch.Generator().manual_seed(args.seed)))
        grid = torch.cat([images[:16], rec.clamp(-1, 1), smp.clamp(-1, 1)])  # (48, C, H, W) in [-1, 1]
        save_png(make_grid(grid, nrow=16, scale=2), args.png)
    print(json.dumps(result, indent=2))
    return 0


def _available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or ``None`` where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _check_out_dir(out: Path) -> None:
    """The output folder can be created and written, checked before any work."""
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CLIError(f"--out {out}: cannot write there ({parent} is not a writable folder)")


def _read_images(path: str, most: int = 256) -> Any:
    """Images for `translate --images`: a ``.npy`` array ``(N, C, H, W)`` or ``(N, H, W)`` of finite floats in
    [-1, 1] with at most ``most`` rows, as a float32 tensor ``(N, C, H, W)``; anything else is a one-line error."""
    import numpy as np
    import torch

    p = Path(path)
    if p.suffix != ".npy":
        raise CLIError(f"--images {path}: expected a .npy file (np.save of an array (N, C, H, W)), got {p.suffix!r}")
    if not p.is_file():
        raise CLIError(f"--images {path}: no such file")
    try:
        arr = np.load(p, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise CLIError(f"--images {path}: not a plain .npy array ({e})") from e
    shape = arr.shape
    if arr.ndim == 3:
        arr = arr[:, None]  # (N, H, W) -> (N, 1, H, W)
    if arr.ndim != 4 or not 1 <= len(arr) <= most:
        raise CLIError(f"--images {path}: expected (N, C, H, W) or (N, H, W) with 1 <= N <= {most}, got shape "
                       f"{shape}")  # fmt: skip
    if arr.dtype.kind != "f":
        raise CLIError(f"--images {path}: expected floats in [-1, 1], got dtype {arr.dtype}")
    x = torch.from_numpy(np.array(arr, dtype=np.float32))  # a copy: the memory map is read-only
    bad = (~torch.isfinite(x.flatten(1))).any(1).nonzero().flatten().tolist()
    if bad:
        raise CLIError(f"--images {path}: NaN or inf in image(s) {bad[:10]}")
    if x.min() < -1.001 or x.max() > 1.001:
        raise CLIError(f"--images {path}: values must lie in [-1, 1] (the experts' image range), got "
                       f"[{float(x.min()):.3g}, {float(x.max()):.3g}]")  # fmt: skip
    return x.clamp(-1, 1)


def _translate(args: argparse.Namespace) -> int:
    import torch

    from .experts.label import LabelEncoder
    from .images import make_grid, save_png
    from .io import atomic_save_safetensors
    from .training.runs import resolve_run

    run, out = resolve_run(args.run), Path(args.out)
    # everything the command line decides is checked before the model loads
    if not (run / "config.yaml").is_file():
        raise CLIError(f"{run} is not a training run folder (no config.yaml)" if run.is_dir()
                       else f"{run}: no such folder")  # fmt: skip
    given = [flag for flag, v in (("--text", args.text), ("--labels", args.labels), ("--images", args.images)) if v]
    if not given:
        raise CLIError("give --text SENTENCE ..., --labels INT ... or --images FILE.npy")
    if len(given) > 1:
        raise CLIError(f"give one of --text, --labels, --images, not {' and '.join(given)}")
    pictures = _read_images(args.images) if args.images is not None else None
    if args.n < 1:
        raise CLIError(f"-n must be a positive integer, got {args.n}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise CLIError(f"--temperature must be a finite number >= 0, got {args.temperature}")
    _check_out_dir(out)
    # two threads competing with other jobs made the command 3x slower on the shared 2-core machine (issue 17)
    _threads(args.threads, auto=True)

    model = _load_run(args)
    source = model.source
    text_module = sys.modules.get("net2net.experts.text")  # loaded when the run's source is a sentence encoder
    is_text = text_module is not None and isinstance(source, text_module.SentenceEncoder)
    kind = "labels" if isinstance(source, LabelEncoder) else "text" if is_text else "images"
    if kind == "images" and pictures is None:
        raise CLIError(f"the source expert of {run} ({type(source).__name__}) reads images: give --images FILE.npy "
                       "(an array (N, C, H, W) or (N, H, W) of floats in [-1, 1])")  # fmt: skip
    if kind != "images" and pictures is not None:
        raise CLIError(f"the source expert of {run} ({type(source).__name__}) reads {kind}, not images: use "
                       f"--{kind}")  # fmt: skip
    if kind == "text" and args.labels is not None:
        raise CLIError(f"the source expert of {run} ({type(source).__name__}) reads text: use --text, not --labels")
    if kind == "labels" and args.text is not None:
        raise CLIError(f"the source expert of {run} reads class labels (0..{source.n_classes - 1}): use --labels")
    if kind == "labels":
        bad = [x for x in args.labels if not 0 <= x < source.n_classes]
        if bad:
            raise CLIError(f"--labels must lie in 0..{source.n_classes - 1} for this run, got {bad}")
    inputs: Any = list(args.text) if kind == "text" else pictures if kind == "images" else torch.tensor(args.labels)
    n_inputs = len(args.text) if kind == "text" else len(pictures) if pictures is not None else len(args.labels)

    g = torch.Generator().manual_seed(args.seed)
    # one input, one sample: the image shape (the generator is reset below, so the output does not change)
    first = model.translate(inputs[:1], n=1, temperature=args.temperature, generator=g)  # (1, 1, C, H, W)
    image_bytes = first[0, 0].numel() * 4
    # the images, the grid (scaled 2x: ~4.5x the images) and its PNG copy: about 6x the images
    need = 6 * n_inputs * args.n * image_bytes
    available = _available_memory()
    if available is not None and need > available // 2:
        most = max(1, available // 2 // (6 * n_inputs * image_bytes))
        raise CLIError(f"-n {args.n} for {n_inputs} input(s) needs about {need / 2**30:.1f} GiB; "
                       f"{available / 2**30:.1f} GiB are available: use -n {most} or less")  # fmt: skip
    g.manual_seed(args.seed)
    chunk = max(1, 512 // n_inputs)  # samples per input and call: bounds the decoder's working memory
    images = torch.empty(n_inputs, args.n, *first.shape[2:])  # (B, n, C, H, W)
    for i in range(0, args.n, chunk):
        k = min(chunk, args.n - i)
        images[:, i : i + k] = model.translate(inputs, n=k, temperature=args.temperature, generator=g)
    png = save_png(make_grid(images.flatten(0, 1), nrow=args.n, scale=2), out / "translations.png")
    atomic_save_safetensors({"images": images}, out / "translations.safetensors")
    print(json.dumps({"png": str(png), "tensors": str(out / "translations.safetensors"),
                      "shape": list(images.shape)}))  # fmt: skip
    return 0


def _report(args: argparse.Namespace) -> int:
    from .training.compute import compute_table, find_compute_records
    from .training.runs import runs_dir

    folders = args.run_dirs or [str(runs_dir(args.root))]
    try:
        records = find_compute_records(folders)
    except FileNotFoundError as e:
        print(f"net2net report: {e}", file=sys.stderr)
        return 2
    if not records:
        print(f"net2net report: no compute.json under {', '.join(folders)}", file=sys.stderr)
        return 1
    print(compute_table(records))
    return 0


def _reproduce(args: argparse.Namespace) -> int:
    from .reproduce import reproduce

    results = reproduce(args.name, out_dir=args.out, quick=args.quick)
    for name in results:
        print(f"{name}: {Path(args.out) / (name + '.md')}")
    return 0


def _reproduce_description() -> str:
    from .reproduce import ABOUT  # no torch import: the experiments load when they run

    experiments = "; ".join(f"{name}: {what}, ~{minutes:g} min" for name, (what, minutes) in ABOUT.items())
    return ("Train what is missing (runs are kept under $NET2NET_CACHE/runs/reproduce, NET2NET_CACHE defaulting to "
            "~/.cache/net2net, keyed by config and weights, and reused), evaluate, and write the results page NAME.md "
            "with its table and PNG figures. The experiments, with the minutes of a --quick run on 2 cores (empty "
            "cache; exemplar after diagnosis, whose last-layer cINN it reuses; without --quick: hours): "
            f"{experiments}. all: every one in turn, then the compute report compute.md.")  # fmt: skip


def _runs(args: argparse.Namespace) -> int:
    from .training.runs import format_table, list_runs, runs_dir

    runs = list_runs(args.root)
    if args.json:
        print(json.dumps([r.to_json() for r in runs], indent=2))
    elif runs:
        print(format_table(runs))
    else:
        print(f"net2net runs: no run folders under {runs_dir(args.root)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from .training.run import train_from_config

    configs = [a for a in args.items if "=" not in a]
    overrides = [a for a in args.items if "=" in a]
    # multi-device flags: shorthands for lightning.trainer overrides (given after the config's own values)
    for flag, key in (("devices", "devices"), ("strategy", "strategy"), ("precision", "precision"),
                      ("accelerator", "accelerator"), ("accumulate", "accumulate_grad_batches")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"lightning.trainer.{key}={value}")
    if not configs:
        raise CLIError("give at least one YAML config file before the key=value overrides")
    if args.threads is not None:
        _threads(args.threads)
    log_dir = train_from_config(configs, overrides, log_dir=args.log_dir, resume=not args.no_resume)
    print(f"net2net train: done; outputs in {log_dir}")
    return 0


def _load_run(args: argparse.Namespace) -> Any:
    """``Net2Net.from_run(args.run)`` with the modules ``--trust`` names (``--trust-config``: any)."""
    from .apps.translate import Net2Net

    return Net2Net.from_run(args.run, trust=args.trust or (), trust_config=args.trust_config)


def _fit(args: argparse.Namespace) -> int:
    from .training.fit import FitSettings, fit

    settings = FitSettings(**{k: v for k, v in vars(args).items() if k in FitSettings.__dataclass_fields__ and v is not None})
    trainer = {k: v for k, v in (("devices", args.devices), ("strategy", args.strategy), ("num_nodes", args.num_nodes),
                                 ("accelerator", args.accelerator), ("precision", args.precision)) if v is not None}  # fmt: skip
    from .training.runs import runs_dir

    out = args.out or str(runs_dir() / f"fit-{Path(args.source).stem}-{Path(args.target).stem}")
    run = fit(args.source, args.target, out, settings, source_key=args.source_key, target_key=args.target_key,
              resume=args.resume, trainer=trainer, overrides=args.overrides)  # fmt: skip
    card = run / "model_card.json"
    if card.is_file():
        c = json.loads(card.read_text(encoding="utf-8"))
        print(f"net2net fit: {run}: held-out NLL {c['held_out_nats_per_dim']:.4f} nats/dim "
              f"({c['held_out_bits_per_dim']:.4f} bits/dim) on {c['held_out_rows']} rows after {c['steps']} steps")  # fmt: skip
    return 0


def _sample(args: argparse.Namespace) -> int:
    import numpy as np

    from .apps.files import sample_file

    out = sample_file(_load_run(args), args.source, args.out, n=args.n, temperature=args.temperature,
                      seed=args.seed, source_key=args.source_key)  # fmt: skip
    print(json.dumps({"out": str(out), "shape": list(np.load(out, mmap_mode="r").shape)}))
    return 0


def _score(args: argparse.Namespace) -> int:
    from .apps.files import score_file

    out = score_file(_load_run(args), args.source, args.target, args.out, source_key=args.source_key,
                     target_key=args.target_key)  # fmt: skip
    print(json.dumps({"out": str(out), "unit": "log p(z_tgt | z_src) in nats per row"}))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .training.fit import evaluate_run

    print(json.dumps(evaluate_run(args.run, information_steps=args.information_steps), indent=2))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .training.fit import export_run

    print(f"net2net export: {export_run(args.run, args.out)}")
    return 0


def _add_module_args(parser: argparse.ArgumentParser, run: bool = False) -> None:
    """``--import MODULE`` (repeatable); for commands that load a run folder (``run``) also ``--trust`` and
    ``--trust-config``."""
    parser.add_argument("--import", dest="imports", action="append", metavar="MODULE", default=[],
                        help="import this module of yours before the config is read (repeatable), e.g. one that "
                        "registers OmegaConf resolvers; the working folder is on the import path")  # fmt: skip
    if run:
        parser.add_argument("--trust", action="append", metavar="MODULE", default=None,
                            help="a module outside net2net that the run's config may import (repeatable); a run "
                            "folder's config is code, see docs/security.md")  # fmt: skip
        parser.add_argument("--trust-config", action="store_true",
                            help="import whatever the run's config names (only for runs you made or checked)")


def _add_sampling_args(parser: argparse.ArgumentParser, n_help: str) -> None:
    """``-n`` (``n_help``), ``--temperature`` and ``--seed`` of the commands that draw samples from a run."""
    parser.add_argument("-n", type=int, default=8, help=f"{n_help} (default: %(default)s)")
    parser.add_argument("--temperature", type=float, default=1.0, help="scale of v ~ N(0, T^2 I)")
    parser.add_argument("--seed", type=int, default=0)


def _add_embedding_commands(commands: dict[str, argparse.ArgumentParser]) -> None:
    """The arguments of ``fit``, ``sample``, ``score``, ``evaluate``, ``export``: translations of one's own
    embeddings."""
    from .training.fit import FitSettings

    d = FitSettings()
    fit = commands["fit"]
    fit.add_argument("--source", required=True, help="z_src: (N, D_src) .npy / .safetensors file or folder of shards")
    fit.add_argument("--target", required=True, help="z_tgt: (N, D_tgt), row i paired with source row i")
    fit.add_argument("--out", default=None, help="run folder (default: $NET2NET_CACHE/runs/fit-<source>-<target>); must be new")
    fit.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    fit.add_argument("--source-key", default=None, help="tensor name in a .safetensors source holding several")
    fit.add_argument("--target-key", default=None, help="tensor name in a .safetensors target holding several")
    for name, help_ in (("steps", "max optimiser steps"), ("batch_size", "rows per step and process"),
                        ("n_blocks", "cINN blocks"), ("hidden_dim", "coupling subnet width"),
                        ("val_every", "steps between held-out evaluations"),
                        ("patience", "evaluations without improvement before stopping"), ("seed", "seed")):  # fmt: skip
        fit.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None,
                         help=f"{help_} (default: {getattr(d, name)})")  # fmt: skip
    fit.add_argument("--max-lr", dest="max_lr", type=float, default=None, help=f"peak learning rate (default: {d.max_lr})")
    fit.add_argument("--devices", default=None, help="devices per node (e.g. 4 GPUs: --devices 4 --strategy ddp)")
    fit.add_argument("--num-nodes", dest="num_nodes", type=int, default=None, help="machines (multi-node DDP)")
    fit.add_argument("--strategy", default=None, help="e.g. ddp (CPU: gloo)")
    fit.add_argument("--accelerator", default=None, help="cpu, gpu or auto")
    fit.add_argument("--precision", default=None, help="e.g. 32-true, bf16-mixed")
    fit.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the generated config")

    sample = commands["sample"]
    sample.add_argument("run", help="a run folder (net2net fit / train) or an exported one")
    sample.add_argument("--source", required=True, help="z_src rows (fit runs) or the source expert's inputs")
    sample.add_argument("--source-key", default=None)
    _add_sampling_args(sample, "samples per row")
    sample.add_argument("--out", required=True, help="output .npy file")
    _add_module_args(sample, run=True)

    score = commands["score"]
    score.add_argument("run", help="a run folder (net2net fit / train) or an exported one")
    score.add_argument("--source", required=True)
    score.add_argument("--target", required=True)
    score.add_argument("--source-key", default=None)
    score.add_argument("--target-key", default=None)
    score.add_argument("--out", required=True, help="output .npy file")
    _add_module_args(score, run=True)

    evaluate = commands["evaluate"]
    evaluate.add_argument("run")
    evaluate.add_argument("--information-steps", type=int, default=600,
                          help="steps of the unconditional flow behind the information estimate; 0 skips it")

    export = commands["export"]
    export.add_argument("run")
    export.add_argument("out")


def _serve(args: argparse.Namespace) -> int:
    from .serve import serve
    from .serve.discovery import TABS, find_runs

    try:
        runs = find_runs(args.run_dirs)
    except (FileNotFoundError, ValueError) as e:
        print(f"net2net serve: {e}", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        print(f"net2net serve: --port must be from 1 to 65535, got {args.port}", file=sys.stderr)
        return 2
    served = {r.tab for r in runs}
    for tab, (title, command) in TABS.items():
        where = ", ".join(str(r.path) for r in runs if r.tab == tab)
        print(f"{title}: {where}" if tab in served else f"{title}: no run (make it with: {command})")
    serve(host=args.host, port=args.port, runs=runs)
    return 0


# The subcommands in the order of `net2net --help`: name -> (handler, one-line help, description of the command's
# --help or None); build_parser makes a parser of each from here, then adds its arguments.
_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, str | None]] = {
    "train": (
        _train,
        "train a model from YAML configs (e.g. the autoencoder: configs/autoencoder/fashion_mnist.yaml)",
        "Train the model of one or more YAML configs (merged in order) with key=value overrides "
        "(e.g. lightning.trainer.max_steps=100 data.params.batch_size=32). Writes checkpoints, image grids, "
        "CSV logs, the merged config and, for autoencoders, autoencoder.safetensors into the log folder, and "
        "resumes from its checkpoints/last.ckpt when present.",
    ),
    "fit": (
        _fit,
        "train a translation p(target | source) from two row-aligned embedding files (.npy, .safetensors, folders)",
        "Check and standardise two row-aligned arrays in one pass, then train a conditional INN on them "
        "with Lightning, streamed from disk in shuffled blocks, with a held-out split and early stopping on its NLL. "
        "The run folder holds the translator, the standardisation, the config and a model card. key=value items "
        "override the generated config (e.g. model.params.optim.max_lr=5e-4). See docs/your_own_models.md.",
    ),
    "sample": (
        _sample,
        "draw N targets per source row of a file from a trained translation",
        "Write OUT.npy of shape (rows, N, D_tgt): samples of p(z_tgt | z_src), raw "
        "embeddings for a fit run.",
    ),
    "score": (
        _score,
        "log p(target | source) in nats for each row pair of two files",
        "Write OUT.npy of shape (rows,): the conditional log-density of each target "
        "row given its source row (for a fit run, of the raw embeddings).",
    ),
    "evaluate": (
        _evaluate,
        "held-out NLL of a translation run and the information its source "
        "carries about the target (nats)",
        None,
    ),
    "export": (
        _export,
        "copy a translation (translator, standardisation, config, model card, "
        "the experts' weight files) into one self-contained folder",
        None,
    ),
    "runs": (
        _runs,
        "list the training runs (main job, demo, train, reproduce) with their held-out NLL",
        "One line per run folder under the runs root ($NET2NET_CACHE/runs, NET2NET_CACHE defaulting to "
        "~/.cache/net2net; reproduce/ included): name, config key, finished or not, steps, the last held-out NLL "
        "in nats/dim, source -> target expert, last update, folder. A run name (e.g. text2image) stands for the "
        "newest finished run of that name wherever a run folder is expected (net2net translate, Net2Net.from_run).",
    ),
    "report": (
        _report,
        "table of training compute: hours, energy (kWh), CO2 (kg) and cost per run, as Tab. S1 of the paper",
        "Print a Markdown table with one row per run (hardware, training hours, energy in kWh, CO2 in "
        "kg, cost) and a total row, from the compute.json files that `net2net train` writes (codecarbon, offline) "
        "in and under the given folders. The measurement column says how energy was obtained: 'meter' (RAPL, "
        "NVML or AMD SMI readable) or 'estimated from N W' (no meter: N W, ComputeTracker's fallback_power_w, "
        "times the wall time). Set a run's country, price and fallback power with train overrides such as "
        "lightning.callbacks.compute.params.price_per_kwh=0.25 (likewise country_iso_code=FRA, currency, "
        "fallback_power_w); see net2net.training.compute.",
    ),
    "reproduce": (
        _reproduce,
        "run one of the paper's experiments (or all) and write its results page docs/results/NAME.md",
        None,  # set in build_parser from net2net.reproduce.ABOUT (_reproduce_description)
    ),
    "encode": (
        _encode,
        "encode a translation config's datasets with both experts into the latent cache",
        "Build the latent cache of a translation config (data.target: TranslationDataModule): every "
        "split is encoded once by the source and target experts and stored as sharded safetensors under "
        "~/.cache/net2net/latents (or $NET2NET_CACHE/latents), keyed by the experts' weights and the data, so "
        "`net2net train` reuses it. Prints the cache folders.",
    ),
    "translate": (
        _translate,
        "sample translations from a trained run (text or labels in, PNG grid and tensors out)",
        "Load a finished translation run (its config.yaml and cinn.safetensors) and draw N "
        "translations per input: OUT/translations.png (one row per input) and OUT/translations.safetensors.",
    ),
    "evaluate-autoencoder": (
        _evaluate_autoencoder,
        "measure a Fashion-MNIST autoencoder: PSNR, classifier accuracy on reconstructions, FID",
        "Reconstruct the 10k Fashion-MNIST test images and report PSNR, L1 and (with --classifier) the "
        "classifier's accuracy on real images and on reconstructions; FID (standard Inception network) of "
        "reconstructions and of prior samples against the first N test images (about 3 images/s on 2 cores).",
    ),
    "serve": (
        _serve,
        "the translations in a browser page: text -> image, exemplars, layer diagnosis, transfer, superres",
        "Serve a local web page (Gradio; pip install 'net2net[serve]') with a tab per translation: "
        "text -> image (prompt, samples, temperature, seed), exemplar-guided synthesis, layer diagnosis, unpaired "
        "transfer and super-resolution. With no RUN_DIR it uses the main job's run (net2net demo) and the runs of "
        "net2net reproduce under $NET2NET_CACHE/runs (default ~/.cache/net2net/runs); a tab without a run names the command that makes it. "
        "Works offline (no fonts, scripts or telemetry fetched).",
    ),
    "demo": (
        _demo,
        "the main job: text -> Fashion-MNIST images (trains once, then reuses; first run 8 min on 2 idle cores, far longer on a busy machine)",
        "text2image (default): Sentence-BERT -> the shipped Fashion-MNIST autoencoder through a cINN "
        "trained on cached latents; writes OUT/text_to_image.png (several samples per prompt, including "
        "phrasings never seen in training), the raw tensors and OUT/metrics.json (classifier accuracy on the "
        "held-out phrasings, diversity). First run on this 2-core machine: 8 min 0 s measured (empty cache, "
        "idle, 2 threads; 15 min at load 3-4 with 1 thread; see README.md), a rerun 7 s; on a busy machine "
        "PyTorch's default threads slow training many times over, so the demo then uses 1 thread (--threads). "
        "digits: the small label -> 8x8 digits cINN. Each trains its shipped config "
        "(configs/translation/text2image.yaml, configs/demo/digits.yaml) into $NET2NET_CACHE/runs/<task>-<key> "
        "(NET2NET_CACHE defaults to ~/.cache/net2net), keyed by the config and the weights it names, and the next "
        "call with the same settings reuses it; see docs/runs.md.",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="net2net",
        description="Network-to-network translation with conditional invertible neural networks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback (default: one line)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}
    for name, (func, help_, description) in _COMMANDS.items():
        commands[name] = sub.add_parser(name, help=help_, description=description)
        commands[name].set_defaults(func=func)

    train = commands["train"]
    train.add_argument("items", nargs="+", metavar="CONFIG_OR_OVERRIDE", help="YAML files, then key=value overrides")
    train.add_argument("--log-dir", default=None,
                       help="output folder (default: $NET2NET_CACHE/runs/<stem of the first config>, NET2NET_CACHE "
                       "defaulting to ~/.cache/net2net)")  # fmt: skip
    train.add_argument("--no-resume", action="store_true", help="start from step 0 even if a checkpoint exists")
    train.add_argument("--devices", default=None, help="devices per node, e.g. 2 or auto (lightning.trainer.devices)")
    train.add_argument("--strategy", default=None, help="e.g. ddp (CPU: gloo) or fsdp (lightning.trainer.strategy)")
    train.add_argument("--precision", default=None,
                       help="e.g. 32-true, bf16-mixed, 16-mixed, or auto (bf16-mixed where measured faster)")
    train.add_argument("--accelerator", default=None, help="cpu, gpu or auto")
    train.add_argument("--accumulate", type=int, default=None, help="gradient accumulation steps")
    train.add_argument("--threads", type=int, default=None,
                       help="PyTorch CPU threads (default: PyTorch's, one per core); 1 is often faster on a busy "
                       "machine")  # fmt: skip
    _add_module_args(train)
    _add_embedding_commands(commands)

    runs = commands["runs"]
    runs.add_argument("--root", default=None, help="the folder to list (default: $NET2NET_CACHE/runs)")
    runs.add_argument("--json", action="store_true", help="a JSON list instead of the table")

    report = commands["report"]
    report.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders, searched recursively")
    report.add_argument("--root", default=None,
                        help="searched when no RUN_DIR is given (default: $NET2NET_CACHE/runs)")  # fmt: skip

    from .reproduce import EXPERIMENTS  # no torch import: the experiments load when they run

    reproduce = commands["reproduce"]
    reproduce.description = _reproduce_description()
    reproduce.add_argument("name", choices=[*EXPERIMENTS, "all"])
    reproduce.add_argument("--quick", action="store_true", help="smaller data and fewer steps")
    reproduce.add_argument("--out", default="docs/results", help="folder of the results pages (default: %(default)s)")

    encode = commands["encode"]
    encode.add_argument("items", nargs="+", metavar="CONFIG_OR_OVERRIDE", help="YAML files, then key=value overrides")
    _add_module_args(encode)

    translate = commands["translate"]
    translate.add_argument("run", help="a run folder, or a run name: the newest finished run of that name under "
                           "$NET2NET_CACHE/runs (e.g. text2image, the main job's; see net2net runs)")  # fmt: skip
    translate.add_argument("--text", nargs="+", default=None, help="sentences (text sources)")
    translate.add_argument("--labels", nargs="+", type=int, default=None, help="class or domain labels (label sources)")
    translate.add_argument("--images", default=None, metavar="FILE.npy",
                           help="images (N, C, H, W) or (N, H, W) in [-1, 1], N <= 256 (image sources)")
    _add_sampling_args(translate, "translations per input")
    translate.add_argument("--out", default="outputs/translate", help="output folder (default: %(default)s)")
    translate.add_argument("--threads", type=int, default=None, help=_AUTO_THREADS_HELP)
    _add_module_args(translate, run=True)

    evaluate = commands["evaluate-autoencoder"]
    evaluate.add_argument("weights", help="autoencoder.safetensors, a .ckpt, or pretrained:fashion_mnist_autoencoder")
    evaluate.add_argument("--classifier", default=None, help="classifier weights (e.g. pretrained:fashion_mnist_classifier)")
    evaluate.add_argument("--fid-images", type=int, default=300, help="images per FID set; 0 skips (default: %(default)s)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", default=None, help="also write the results to this JSON file")
    evaluate.add_argument("--png", default=None, help="write a grid: 16 test images, reconstructions, prior samples")

    serve = commands["serve"]
    serve.add_argument("run_dirs", nargs="*", metavar="RUN_DIR", help="run folders to serve (default: those found)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; warns unless loopback (default: %(default)s)")
    serve.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")

    demo = commands["demo"]
    demo.add_argument("task", nargs="?", default="text2image", choices=["text2image", "digits"])
    demo.add_argument("--out", default="outputs/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--run-dir", default=None,
                      help="the training run folder (default: $NET2NET_CACHE/runs/<task>-<config key>, "
                      "NET2NET_CACHE defaulting to ~/.cache/net2net; reused when finished)")  # fmt: skip
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the task's)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--retrain", action="store_true", help="train again even if a trained model exists")
    demo.add_argument("--temperature", type=float, default=1.0,
                      help="text2image: sampling temperature of the PNG, v ~ N(0, T^2 I) (default: %(default)s)")
    demo.add_argument("--threads", type=int, default=None, help=_AUTO_THREADS_HELP)
    demo.add_argument("--precision", default=None, choices=["32", "bf16", "auto"],
                      help="text2image: training precision; auto = bf16 mixed where the model's own training step "
                      "measures faster (default: the config's, auto)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``net2net`` console script."""
    parser = build_parser()
    # `train`, `encode` and `fit` take key=value overrides anywhere on the line; other commands take none
    args, extra = parser.parse_known_args(argv)
    if extra:
        if args.command not in ("train", "encode", "fit") or any(a.startswith("-") for a in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command == "fit":
            args.overrides = [*args.overrides, *extra]
        else:
            args.items = [*args.items, *extra]
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # Lightning's banner lines (accelerators, tips) are noise for a CLI user; inference and `runs` do not import it
    if not args.verbose and args.command not in ("translate", "sample", "score", "runs"):
        import lightning.pytorch  # noqa: F401  (Lightning sets its loggers' levels when imported)

        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero"):
            logging.getLogger(name).setLevel(logging.WARNING)
    try:
        steps = getattr(args, "steps", None)
        if steps is not None and steps < 1:
            raise CLIError(f"--steps must be a positive integer, got {args.steps}")
        if hasattr(args, "imports"):  # commands that read a config or a run folder
            _import_user_modules(args.imports)
        return args.func(args)
    except Exception as e:
        if args.debug:
            raise
        return _report_error(args.command, e)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"net2net {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPT


def _report_error(command: str, err: Exception) -> int:
    """One line on stderr for any error; the exit status."""
    from .config import ConfigError
    from .training.run import TrainingInterrupted

    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip()) or type(err).__name__
    if isinstance(err, TrainingInterrupted):
        print(f"net2net {command}: {text}", file=sys.stderr)
        return EXIT_SIGTERM
    if isinstance(err, ConfigError):
        text = f"config error: {text}"
    elif not isinstance(err, (CLIError, ValueError, TypeError, OSError, LookupError, RuntimeError)):
        text = f"{type(err).__name__}: {text} (rerun with --debug for the traceback)"
    print(f"net2net {command}: error: {text}", file=sys.stderr)
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
