"""``net2net fit`` under DDP with two CPU processes (gloo): each process reads its own blocks of the embedding files,
the ranks share ActNorm's initialisation and the weights, and the held-out NLL matches a single-process run.

Both runs go through the CLI in subprocesses (Lightning's ``ddp`` strategy starts rank 1 by re-running the command
line); ``tests/ddp_helpers.StateDump`` writes each rank's tensors, added with a config override.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from ddp_helpers import run_cli
from test_ddp import _assert_same, _load, pytestmark  # noqa: F401
from test_embeddings import _pairs

STEPS = 100
TIMEOUT_S = 300
ARGS = [
    "--steps",
    str(STEPS),
    "--n-blocks",
    "2",
    "--hidden-dim",
    "32",
    "--val-every",
    "50",
    "--max-lr",
    "3e-3",
    "--accelerator",
    "cpu",
    "model.params.flow_config.params.embedding_dim=8",
    "model.params.optim.warmup_steps=10",
    "lightning.trainer.enable_progress_bar=false",
]


def _fit(tmp_path: Path, name: str, extra: list[str]) -> dict:
    run_cli(["fit", "--source", "src.npy", "--target", "tgt.npy", "--out", name, *ARGS, *extra], tmp_path, TIMEOUT_S,
            f"net2net fit {name}")
    return json.loads((tmp_path / name / "model_card.json").read_text(encoding="utf-8"))


def test_fit_on_two_processes_matches_one(tmp_path: Path) -> None:
    src, tgt = _pairs(2000)
    np.save(tmp_path / "src.npy", src)
    np.save(tmp_path / "tgt.npy", tgt)
    dump = tmp_path / "dump"
    ddp = _fit(
        tmp_path,
        "ddp",
        [
            "--batch-size",
            "64",
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "lightning.callbacks.state_dump.target=ddp_helpers.StateDump",
            f"lightning.callbacks.state_dump.params.out_dir={dump}",
        ],
    )
    single = _fit(tmp_path, "single", ["--batch-size", "128"])  # the same 128 rows per step as 2 x 64

    start, batch, init, final = (
        [_load(dump, f"rank{r}{s}") for r in (0, 1)] for s in ("_start", "_batch0", "_init", "")
    )
    # each process read its own blocks: no row of one first batch is in the other
    shared = (torch.cdist(batch[0]["z_tgt"], batch[1]["z_tgt"]) < 1e-6).sum().item()
    assert shared == 0, f"the ranks' first batches share {shared} rows: the blocks were not split over the processes"
    _assert_same(start[0], start[1], "weights at train start")
    actnorm = {k: v for k, v in init[0].items() if ".loc" in k or ".log_scale" in k}
    assert actnorm, "no ActNorm state found"
    _assert_same(actnorm, {k: init[1][k] for k in actnorm}, "ActNorm after its initialisation")
    _assert_same(final[0], final[1], "weights at train end")
    assert ddp["steps"] == single["steps"] == STEPS
    # the same held-out rows (the split depends on the seed only), the same NLL within noise
    assert ddp["held_out_rows"] == single["held_out_rows"]
    gap = abs(ddp["held_out_nats_per_dim"] - single["held_out_nats_per_dim"])
    assert gap < 0.06, (
        f"held-out NLL: DDP {ddp['held_out_nats_per_dim']:.3f}, single {single['held_out_nats_per_dim']:.3f}"
    )
