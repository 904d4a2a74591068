"""PyTorch's CPU threads on a shared machine: one thread when the load leaves fewer free cores than PyTorch's default.

Kept apart from :mod:`net2net.training.run` (which imports Lightning) so that inference commands such as
``net2net translate`` can choose their threads without importing the training stack.
"""

from __future__ import annotations

import logging
import os

import torch

__all__ = ["choose_threads", "warn_if_busy"]

log = logging.getLogger(__name__)


def choose_threads(requested: int | None = None) -> int:
    """Set PyTorch's CPU threads for a run or a command and return the number.

    ``requested`` wins; else a thread count set through ``OMP_NUM_THREADS`` is kept; else, on a machine whose load
    leaves fewer free cores than PyTorch's default threads, one thread is used (on the shared 2-core machine, one
    thread trained the main job at about 1 step/s where the default two managed 0.13-0.24, and ran `net2net translate`
    in 5-6 s where two took 15-16 s, benchmarks/README.md).

    Raises:
        ValueError: ``requested`` is not a positive int.
    """
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive int, got {requested!r}")
        torch.set_num_threads(requested)
    elif "OMP_NUM_THREADS" not in os.environ and _busy(torch.get_num_threads(), load := _load_average()):
        log.warning("the machine is busy (load average %.1f on %d cores): using 1 PyTorch thread, which is "
                    "faster here than %d competing ones (set OMP_NUM_THREADS or --threads to choose)",
                    load, os.cpu_count() or 1, torch.get_num_threads())  # fmt: skip
        torch.set_num_threads(1)
    return torch.get_num_threads()


def warn_if_busy() -> None:
    """Warn when the machine's load leaves PyTorch's threads fewer cores than they use (they then slow down a lot);
    ``net2net train`` warns rather than switching, as :func:`choose_threads` does for the commands."""
    threads, load = torch.get_num_threads(), _load_average()
    if _busy(threads, load):
        log.warning("the machine is busy (load average %.1f on %d cores) and PyTorch uses %d threads: they may slow "
                    "each other down; try `net2net train --threads 1`", load, os.cpu_count() or 1, threads)  # fmt: skip


def _load_average() -> float | None:
    """The 1-minute load average, ``None`` where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _busy(threads: int, load: float | None) -> bool:
    """Whether the load average leaves ``threads`` (> 1) PyTorch threads fewer cores than they need."""
    return load is not None and threads > 1 and load + threads > (os.cpu_count() or 1) + 0.5
