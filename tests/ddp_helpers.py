"""Helpers for the multi-process (DDP) tests, importable by the training subprocesses (``tests/`` on PYTHONPATH).

``LinearGaussianPairs`` is a small synthetic dataset of ``{"z_src", "z_tgt"}`` pairs; ``StateDump`` is a callback
that writes each rank's tensors into a folder, so that the test process can compare the ranks afterwards:

``rank{R}_start.safetensors``   the module's state_dict when training starts (before any forward pass)
``rank{R}_batch0.safetensors``  the first training batch this rank received (``z_src``, ``z_tgt``)
``rank{R}_init.safetensors``    the state_dict after the first forward pass (ActNorm initialised), before the update
``rank{R}.safetensors``         the state_dict when training ends

``run_cli`` runs ``python -m net2net.cli ...`` in a subprocess as a multi-process job would start: a free
rendezvous port, no launcher variables inherited, ``tests/`` on ``PYTHONPATH`` and a timeout that ends the whole
process group (Lightning's ``ddp`` strategy starts the other ranks by re-running the command line).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import Dataset

from net2net.synthetic import LinearGaussian

__all__ = ["LinearGaussianPairs", "StateDump", "run_cli"]

TESTS_DIR = Path(__file__).resolve().parent
# environment variables that would make Lightning believe it already runs inside a launched/cluster job
_LAUNCH_VARS = ("LOCAL_RANK", "NODE_RANK", "GLOBAL_RANK", "RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "PL_GLOBAL_SEED")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(args: Sequence[str], cwd: Path, timeout: float, what: str) -> str:
    """``python -m net2net.cli *args`` in ``cwd`` as a fresh multi-process job; returns its output (stdout and
    stderr). Fails the test, with the output's tail, when it exits non-zero or runs past ``timeout`` seconds (then
    the process group, rank 1 included, is killed)."""
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS and not k.startswith("SLURM_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(TESTS_DIR), *filter(None, [os.environ.get("PYTHONPATH")])]),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(_free_port()),
        OMP_NUM_THREADS="1",
    )
    # a new session, so that a hang can be ended with the rank-1 process that Lightning starts (same process group)
    proc = subprocess.Popen([sys.executable, "-m", "net2net.cli", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{what} did not finish within {timeout} s (hang?); output:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{what} failed (exit {proc.returncode}); output tail:\n{out[-4000:]}"
    return out


class LinearGaussianPairs(Dataset):
    """``n`` fixed pairs of :class:`net2net.synthetic.LinearGaussian`, as ``{"z_src", "z_tgt"}`` items.

    Arguments:
        n: number of pairs.
        dim: features of ``z_tgt``.
        cond_dim: features of ``z_src``.
        seed: seed of the problem (A, b, L) and of the samples.
    """

    def __init__(self, n: int, dim: int, cond_dim: int, seed: int = 0) -> None:
        problem = LinearGaussian(dim, cond_dim, seed=seed)
        self.z_tgt, self.z_src = problem.sample(n, torch.Generator().manual_seed(seed + 1))

    def __len__(self) -> int:
        return self.z_tgt.shape[0]

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"z_src": self.z_src[i], "z_tgt": self.z_tgt[i]}


def _save(tensors: Mapping[str, Tensor], path: Path, rank: int, world_size: int) -> None:
    plain = {k: v.detach().cpu().clone().contiguous() for k, v in tensors.items()}
    save_file(plain, str(path), metadata={"rank": str(rank), "world_size": str(world_size)})


class StateDump(L.Callback):
    """Write this rank's state at train start, first batch, after ActNorm's initialisation and at train end.

    Arguments:
        out_dir: the folder of the ``rank{R}*.safetensors`` files (created if missing).
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self._batch_saved = False
        self._init_saved = False

    def _write(self, trainer: L.Trainer, suffix: str, tensors: Mapping[str, Tensor]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        rank = trainer.global_rank
        _save(tensors, self.out_dir / f"rank{rank}{suffix}.safetensors", rank, trainer.world_size)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, "_start", pl_module.state_dict())

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self._batch_saved and trainer.global_step == 0:
            self._write(trainer, "_batch0", {"z_src": batch["z_src"], "z_tgt": batch["z_tgt"]})
            self._batch_saved = True

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if not self._init_saved and trainer.global_step == 0:
            self._write(trainer, "_init", pl_module.state_dict())
            self._init_saved = True

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._write(trainer, "", pl_module.state_dict())
