"""``net2net fit`` from memory-mapped files against the same arrays loaded into a ``TensorDataset``: rows/s and peak
memory at 200k and 2M rows, and the time ``fit`` takes to reach a held-out NLL within 0.02 nats/dim of its final one.

The data (seeded, written once to ``--data``, not part of the repository): ``z_src`` (N, 512) standard normal,
``z_tgt`` (N, 64) = ``z_src @ W + 0.5 * noise``, float32 ``.npy`` files (2M rows: 4.1 GB + 0.5 GB). Each measurement
runs in its own process, which reports its own peak resident memory (``VmHWM``):

- ``fit``: :func:`net2net.training.fit.fit` (one scan pass for checks, standardisation and digests, then Lightning
  training on the block stream, held-out evaluations every ``--val-every`` steps, early stopping);
- ``tensor``: the baseline a user would write first: ``np.load`` both arrays, standardise them in memory, wrap them
  in a ``TensorDataset`` with a shuffling ``DataLoader`` and train the same ``CINNModule`` with the same Lightning
  trainer for the same steps (no held-out split).

rows/s is the batch size over the median step time (``summary.json`` of the fit run; the same callback for the
baseline), so it does not include the scan or the loading.

    OMP_NUM_THREADS=2 python benchmarks/fit_memory.py --rows 200000 2000000 --steps 1500
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import ClassVar

import lightning as L
import numpy as np

SRC_DIM, TGT_DIM = 512, 64
FLOW = {"n_blocks": 4, "hidden_dim": 256, "hidden_depth": 2, "embedding_dim": 64}


def make_data(folder: Path, rows: int, chunk: int = 100_000) -> tuple[Path, Path]:
    """Write the seeded pair of arrays (once), in chunks, without holding them in memory."""
    src, tgt = folder / f"src_{rows}.npy", folder / f"tgt_{rows}.npy"
    if src.is_file() and tgt.is_file():
        return src, tgt
    folder.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(0).normal(size=(SRC_DIM, TGT_DIM)) / np.sqrt(SRC_DIM)
    a = np.lib.format.open_memmap(str(src) + ".partial.npy", mode="w+", dtype=np.float32, shape=(rows, SRC_DIM))
    b = np.lib.format.open_memmap(str(tgt) + ".partial.npy", mode="w+", dtype=np.float32, shape=(rows, TGT_DIM))
    for i, start in enumerate(range(0, rows, chunk)):
        rng = np.random.default_rng([1, i])
        x = rng.normal(size=(min(chunk, rows - start), SRC_DIM))
        a[start : start + len(x)] = x
        b[start : start + len(x)] = x @ w + 0.5 * rng.normal(size=(len(x), TGT_DIM))
    a.flush(), b.flush()
    del a, b
    os.replace(str(src) + ".partial.npy", src)
    os.replace(str(tgt) + ".partial.npy", tgt)
    return src, tgt


class ValClock(L.Callback):
    """Seconds since training started at every held-out evaluation, and the step times (median -> rows/s)."""

    records: ClassVar[list[tuple[float, int, float]]] = []  # shared on purpose: read after trainer.fit
    step_times: ClassVar[list[float]] = []

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.t0 = self.last = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        now = time.perf_counter()
        ValClock.step_times.append(now - self.last)
        self.last = now

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get("val/nats_per_dim")
        if value is not None:
            ValClock.records.append((time.perf_counter() - self.t0, trainer.global_step, float(value)))


def _rss_mb() -> float:
    """This process's peak resident memory: VmHWM, which starts afresh at exec (``ru_maxrss`` does not: it keeps the
    parent's peak, here the writing of the data files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_fit(src: Path, tgt: Path, out: Path, args: argparse.Namespace) -> dict:
    from net2net.training.fit import FitSettings, fit

    settings = FitSettings(
        steps=args.steps, batch_size=args.batch, val_every=args.val_every, patience=args.patience, **FLOW
    )
    t0 = time.perf_counter()
    fit(
        src,
        tgt,
        out,
        settings,
        progress=False,
        trainer={"enable_progress_bar": False, "enable_model_summary": False},
        overrides=["lightning.callbacks.val_clock.target=__main__.ValClock"],
        command="benchmarks/fit_memory.py",
    )
    wall = time.perf_counter() - t0
    card = json.loads((out / "model_card.json").read_text())
    final = ValClock.records[-1][2]
    reach = next(t for t, _, v in ValClock.records if v <= final + 0.02)
    return {
        "wall_s": wall,
        "steps": card["steps"],
        "held_out_nats_per_dim": card["held_out_nats_per_dim"],
        "time_to_within_0.02_s": reach,
        "val_curve": ValClock.records,
    }


def run_tensor(src: Path, tgt: Path, args: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from net2net.training.translator import CINNModule

    t0 = time.perf_counter()
    x, y = torch.from_numpy(np.load(src)), torch.from_numpy(np.load(tgt))  # whole arrays in memory
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean(0)) / y.std(0)
    load_s = time.perf_counter() - t0
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=args.batch,
        shuffle=True,
        drop_last=True,
        collate_fn=lambda items: {
            "z_src": torch.stack([a for a, _ in items]),
            "z_tgt": torch.stack([b for _, b in items]),
        },
    )
    flow = {"target": "net2net.flows.ConditionalINN", "params": {"dim": TGT_DIM, "cond_dim": SRC_DIM, **FLOW}}
    model = CINNModule(flow, {"max_lr": 1e-3, "base_lr": 1.0, "decay_steps": "max_steps"}, batch_size=args.batch)
    trainer = L.Trainer(
        max_steps=args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[ValClock()],
        accelerator="cpu",
    )
    trainer.fit(model, loader)
    return {"wall_s": time.perf_counter() - t0, "load_s": load_s, "steps": trainer.global_step}


def one(mode: str, rows: int, args: argparse.Namespace) -> None:
    """Child process: one measurement, printed as JSON on the last line."""
    warnings.simplefilter("ignore")
    src, tgt = make_data(args.data, rows)
    out = args.data / f"run_{rows}_{os.getpid()}"
    result = run_fit(src, tgt, out, args) if mode == "fit" else run_tensor(src, tgt, args)
    median = statistics.median(ValClock.step_times[5:] or ValClock.step_times)
    result.update(mode=mode, rows=rows, peak_rss_mb=_rss_mb(), rows_per_s=args.batch / median)
    print(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--data", type=Path, default=Path("/tmp/net2net-fit-bench"))
    p.add_argument("--modes", nargs="+", default=["fit", "tensor"])
    p.add_argument("--one", nargs=2, metavar=("MODE", "ROWS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        one(args.one[0], int(args.one[1]), args)
        return
    results = []
    for rows in args.rows:
        t0 = time.perf_counter()
        make_data(args.data, rows)
        print(f"data {rows} rows ready ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        for mode in args.modes:
            cmd = [
                sys.executable,
                __file__,
                "--one",
                mode,
                str(rows),
                "--steps",
                str(args.steps),
                "--batch",
                str(args.batch),
                "--val-every",
                str(args.val_every),
                "--patience",
                str(args.patience),
                "--data",
                str(args.data),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise SystemExit(f"{mode} {rows} failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "val_curve"}), file=sys.stderr)
    print(
        f"\nOMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, load average at the end "
        f"{Path('/proc/loadavg').read_text().split()[:3]}, {args.steps} max steps of batch {args.batch}, cINN {FLOW}\n"
    )
    print(
        "| rows | data path | peak RSS MB | rows/s (median step) | steps | wall s | held-out nats/dim | "
        "time to within 0.02 nats/dim of final |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        name = "fit (block stream from .npy)" if r["mode"] == "fit" else "TensorDataset (np.load)"
        print(
            f"| {r['rows']:,} | {name} | {r['peak_rss_mb']:.0f} | {r['rows_per_s']:.0f} | {r['steps']} | "
            f"{r['wall_s']:.0f} | {r.get('held_out_nats_per_dim', float('nan')):.3f} | "
            f"{r.get('time_to_within_0.02_s', float('nan')):.0f} s |"
        )


if __name__ == "__main__":
    main()
