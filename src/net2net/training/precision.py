"""``lightning.trainer.precision: auto``: bf16 mixed precision where the device's bf16 products are measured faster.

Lightning's ``"bf16-mixed"`` runs the training and validation steps under ``torch.autocast`` (on CPU too), with
float32 master weights; the cINN keeps its affine maps, ActNorm, log-determinants and loss in float32 under
autocast (see :mod:`net2net.flows.precision`). ``"auto"`` is not a Lightning value: :func:`trainer_precision`
turns it into ``"bf16-mixed"`` or ``"32-true"`` before the Trainer is built.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..flows.precision import AUTO_MIN_SPEEDUP, bf16_speedup, resolve_precision

__all__ = ["trainer_precision"]
log = logging.getLogger(__name__)


def _device_of(accelerator: Any) -> str | None:
    """The device a Trainer with ``accelerator`` trains on, as far as precision is concerned (None: not CPU/CUDA)."""
    name = str(accelerator).lower() if accelerator is not None else "auto"
    if name in ("gpu", "cuda") or (name == "auto" and torch.cuda.is_available()):
        return "cuda"
    if name in ("cpu", "auto"):
        return "cpu"
    return None


def trainer_precision(precision: Any, accelerator: Any = "auto") -> Any:
    """Lightning's ``precision`` for a config value: ``"auto"`` becomes ``"bf16-mixed"`` where bf16 matrix products
    measure at least :data:`~net2net.flows.precision.AUTO_MIN_SPEEDUP` times faster than float32 ones on the
    accelerator's device, else ``"32-true"``; any other value is returned unchanged (Lightning checks it)."""
    if precision != "auto":
        return precision
    device = _device_of(accelerator)
    if device is None:
        log.info("precision auto: accelerator %r is neither CPU nor CUDA, training in float32", accelerator)
        return "32-true"
    choice = "bf16-mixed" if resolve_precision("auto", device) == "bf16" else "32-true"
    log.info("precision auto on %s: bf16 products %.2fx the float32 rate (bf16 from %.1fx) -> %s",
             device, bf16_speedup(device), AUTO_MIN_SPEEDUP, choice)  # fmt: skip
    return choice
