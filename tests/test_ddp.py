"""Two-process DDP training on CPU (gloo): both ranks end with the same weights and the same ActNorm initialisation.

The run goes through the CLI in a subprocess (``python -m net2net.cli train ... lightning.trainer.strategy=ddp``):
Lightning's ``ddp`` strategy starts rank 1 by re-running the command line, which cannot work from inside pytest.
``tests/ddp_helpers.StateDump`` writes each rank's tensors (see there); the test compares them here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from ddp_helpers import run_cli
from safetensors.torch import load_file
from torch import Tensor

from net2net.flows import ConditionalINN, load_cinn
from net2net.flows.layers import ActNorm

pytestmark = pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()) or sys.platform == "win32",
    reason="needs torch.distributed with the gloo backend and POSIX process groups",
)

WORLD_SIZE = 2
BATCH_SIZE = 8
STEPS = 4
TIMEOUT_S = 240
FLOW_PARAMS = {
    "dim": 6,
    "cond_dim": 3,
    "n_blocks": 2,
    "hidden_dim": 16,
    "hidden_depth": 1,
    "embedding_dim": 4,
    "embedder_hidden_dim": 16,
    "embedder_depth": 1,
}
def _config(dump_dir: Path) -> dict[str, Any]:
    return {
        "seed": 0,
        "model": {
            "target": "net2net.training.translator.CINNModule",
            "params": {
                "flow_config": {"target": "net2net.flows.ConditionalINN", "params": FLOW_PARAMS},
                "optim": {"warmup_steps": 1, "max_lr": 1e-3},
                "batch_size": BATCH_SIZE,
            },
        },
        "data": {
            "target": "net2net.training.datamodule.DataModule",
            "params": {
                "batch_size": BATCH_SIZE,
                "train": {
                    "target": "ddp_helpers.LinearGaussianPairs",
                    "params": {"n": 64, "dim": FLOW_PARAMS["dim"], "cond_dim": FLOW_PARAMS["cond_dim"], "seed": 0},
                },
            },
        },
        "lightning": {
            "trainer": {
                "max_steps": STEPS,
                "log_every_n_steps": 1,
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "num_sanity_val_steps": 0,
            },
            "callbacks": {
                "image_logger": None,
                "state_dump": {"target": "ddp_helpers.StateDump", "params": {"out_dir": str(dump_dir)}},
            },
        },
    }


def _run_ddp(tmp_path: Path) -> tuple[Path, Path]:
    """Train the tiny config with 2 CPU processes through the CLI; returns (run folder, dump folder)."""
    run_dir, dump_dir = tmp_path / "run", tmp_path / "dump"
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(_config(dump_dir)), encoding="utf-8")
    run_cli(["train", str(config), "--log-dir", str(run_dir), "--no-resume", f"lightning.trainer.devices={WORLD_SIZE}",
             "lightning.trainer.strategy=ddp", "lightning.trainer.accelerator=cpu"], tmp_path, TIMEOUT_S,
            "2-process DDP training")  # fmt: skip
    return run_dir, dump_dir


def _load(dump_dir: Path, name: str) -> dict[str, Tensor]:
    path = dump_dir / f"{name}.safetensors"
    files = sorted(os.listdir(dump_dir)) if dump_dir.is_dir() else []
    assert path.is_file(), f"{path.name} was not written by its rank; files written: {files}"
    return load_file(str(path))


def _assert_same(a: dict[str, Tensor], b: dict[str, Tensor], what: str, atol: float = 1e-6) -> None:
    assert a.keys() == b.keys(), f"{what}: the ranks hold different tensors: {sorted(a.keys() ^ b.keys())}"
    for k in a:
        assert a[k].shape == b[k].shape, f"{what}: {k} has shapes {tuple(a[k].shape)} and {tuple(b[k].shape)}"
        diff = (a[k].double() - b[k].double()).abs().max().item() if a[k].numel() else 0.0
        assert diff <= atol, f"{what}: {k} differs across ranks by {diff:.3g} (> {atol})"


def _actnorm_state(flow: ConditionalINN) -> dict[str, Tensor]:
    """``tau.<path>.loc`` / ``.log_scale`` of every ActNorm, keyed like the module's state_dict."""
    out: dict[str, Tensor] = {}
    for name, m in flow.named_modules():
        if isinstance(m, ActNorm):
            assert bool(m.initialized), f"reference ActNorm {name} was not initialised"
            out[f"tau.{name}.loc"] = m.loc.detach().clone()
            out[f"tau.{name}.log_scale"] = m.log_scale.detach().clone()
    return out


def _init_from(start: dict[str, Tensor], z_tgt: Tensor, z_src: Tensor) -> dict[str, Tensor]:
    """ActNorm parameters after one training-mode forward of the start weights on this batch (one process)."""
    assert not (torch.distributed.is_available() and torch.distributed.is_initialized())
    flow = ConditionalINN(**FLOW_PARAMS)  # type: ignore[arg-type]
    flow.load_state_dict({k.removeprefix("tau."): v for k, v in start.items()}, strict=True)
    flow.train()
    with torch.no_grad():
        flow(z_tgt, z_src)
    return _actnorm_state(flow)


def test_ddp_ranks_share_weights_and_actnorm_init(tmp_path: Path) -> None:
    """2 processes (gloo), different first batches: identical weights throughout, ActNorm initialised from the
    statistics of the union of both first batches (all-reduced), not from either rank's own batch."""
    run_dir, dump_dir = _run_ddp(tmp_path)
    ranks = range(WORLD_SIZE)
    start = [_load(dump_dir, f"rank{r}_start") for r in ranks]
    batch = [_load(dump_dir, f"rank{r}_batch0") for r in ranks]
    init = [_load(dump_dir, f"rank{r}_init") for r in ranks]
    final = [_load(dump_dir, f"rank{r}") for r in ranks]

    # the premise: each rank trained on its own shard, so the first batches differ
    for r in ranks:
        shape = tuple(batch[r]["z_tgt"].shape)
        assert shape == (BATCH_SIZE, FLOW_PARAMS["dim"]), f"rank {r}: first batch of shape {shape}"
    shared = (torch.cdist(batch[0]["z_tgt"], batch[1]["z_tgt"]) < 1e-6).sum().item()
    assert shared == 0, f"the two ranks' first batches share {shared} samples: the data was not split across ranks"

    an_keys = sorted(k for k in start[0] if k.endswith(".initialized"))
    assert len(an_keys) == FLOW_PARAMS["n_blocks"], f"expected one ActNorm per block, found {an_keys}"
    for r in ranks:
        assert not any(bool(start[r][k]) for k in an_keys), f"rank {r}: ActNorm initialised before the first batch"
        for stage, state in (("after the first forward", init[r]), ("at the end", final[r])):
            flags = {k: bool(state[k]) for k in an_keys}
            assert all(flags.values()), f"rank {r}: ActNorm 'initialized' {stage}: {flags}"

    _assert_same(start[0], start[1], "state at train start")
    _assert_same(init[0], init[1], "state after ActNorm initialisation")
    _assert_same(final[0], final[1], "state at train end")

    # ActNorm init == statistics of both first batches together (what the all-reduce of sums gives) ...
    expected = _init_from(start[0], torch.cat([b["z_tgt"] for b in batch]), torch.cat([b["z_src"] for b in batch]))
    prefixes = {k.removesuffix(".initialized") for k in an_keys}
    assert {k.rsplit(".", 1)[0] for k in expected} == prefixes, f"ActNorms {sorted(expected)} vs {sorted(prefixes)}"
    observed = {k: init[0][k] for k in expected}
    for k in expected:
        diff = (observed[k] - expected[k]).abs().max().item()
        assert diff < 1e-5, f"{k}: differs from the statistics of both ranks' first batches by {diff:.3g}"
    # ... and not that of either rank's own batch (which is what a missing all-reduce would give)
    for r in ranks:
        own = _init_from(start[0], batch[r]["z_tgt"], batch[r]["z_src"])
        gap = max((observed[k] - own[k]).abs().max().item() for k in own)
        assert gap > 1e-2, f"ActNorm init equals rank {r}'s own first-batch statistics (gap {gap:.3g}): no all-reduce"

    # training happened, and the exported cINN (written by rank 0) is the shared model
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["global_step"] == STEPS, f"expected {STEPS} optimiser steps, summary.json says {summary}"
    moved = max((final[0][k] - init[0][k]).abs().max().item() for k in final[0] if final[0][k].is_floating_point())
    assert moved > 0, f"the weights did not change in {STEPS} steps"
    exported = {f"tau.{k}": v for k, v in load_cinn(run_dir / "cinn.safetensors").state_dict().items()}
    _assert_same(exported, {k: v for k, v in final[0].items() if k.startswith("tau.")}, "cinn.safetensors vs rank 0")
