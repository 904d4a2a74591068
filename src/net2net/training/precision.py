"""``lightning.trainer.precision: auto``: bf16 mixed precision where it makes the model's own training step faster.

Lightning's ``"bf16-mixed"`` runs the training and validation steps under ``torch.autocast`` (on CPU too), with
float32 master weights; the cINN keeps its affine maps, ActNorm, log-determinants and loss in float32 under
autocast (see :mod:`net2net.flows.precision`). ``"auto"`` is not a Lightning value: :func:`trainer_precision`
turns it into ``"bf16-mixed"`` or ``"32-true"`` once the model is built, before the Trainer is.
"""

from __future__ import annotations

import logging
import statistics
from typing import Any

import torch

from ..flows.precision import (
    AUTO_MIN_SPEEDUP,
    AUTO_MIN_STEP_SPEEDUP,
    bf16_speedup,
    choose_precision,
    probe_step_seconds,
    resolve_precision,
)

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


def trainer_precision(precision: Any, accelerator: Any = "auto", model: Any = None) -> Any:
    """Lightning's ``precision`` for a config value; any value but ``"auto"`` is returned unchanged (Lightning checks
    it).

    ``"auto"`` becomes ``"bf16-mixed"`` or ``"32-true"``. For a model with a flow ``tau`` and a ``batch_size`` (the
    cINN module), a short probe times that flow's training step at that batch in both precisions on the
    accelerator's device, and bf16 is chosen where the step is at least
    :data:`~net2net.flows.precision.AUTO_MIN_STEP_SPEEDUP` times faster. For any other model, where bf16 matrix
    products measure at least :data:`~net2net.flows.precision.AUTO_MIN_SPEEDUP` times faster than float32 ones.
    """
    if precision != "auto":
        return precision
    device = _device_of(accelerator)
    if device is None or (device == "cuda" and not torch.cuda.is_bf16_supported()):
        log.info("precision auto: accelerator %r has no bf16 support here, training in float32", accelerator)
        return "32-true"
    flow, batch = getattr(model, "tau", None), getattr(model, "batch_size", None)
    if isinstance(flow, torch.nn.Module) and hasattr(flow, "cond_shape") and isinstance(batch, int):
        t32, t16 = probe_step_seconds(flow, batch, device)
        choice = "bf16-mixed" if choose_precision(t32, t16) == "bf16" else "32-true"
        m32, m16 = statistics.median(t32), statistics.median(t16)
        log.info("precision auto on %s: the model's step at batch %d takes %.0f ms in float32, %.0f ms in bf16 "
                 "(%.2fx; bf16 from %.2fx) -> %s", device, batch, m32 * 1e3, m16 * 1e3, m32 / m16,
                 AUTO_MIN_STEP_SPEEDUP, choice)  # fmt: skip
        return choice
    choice = "bf16-mixed" if resolve_precision("auto", device) == "bf16" else "32-true"
    log.info("precision auto on %s: bf16 products %.2fx the float32 rate (bf16 from %.1fx) -> %s",
             device, bf16_speedup(device), AUTO_MIN_SPEEDUP, choice)  # fmt: skip
    return choice
