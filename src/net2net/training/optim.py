"""The cINN training recipe: the original Adam settings, made stable at large batches."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig

__all__ = ["ClippedAdam", "FlowOptimConfig", "configure_flow_optimizer", "learning_rate", "make_optimizer", "optim_config"]


@dataclass
class FlowOptimConfig:
    """Optimiser settings for the cINN.

    The original recipe is Adam(betas=(0.5, 0.9), amsgrad=True) with a learning rate of
    ``base_lr * batch_size`` (times accumulation and devices). That linear rule diverges at large
    batches (batch 256 gives 1.15e-3 and the loss explodes within ~20 steps), so here the rate is
    capped at ``max_lr``, reached by a linear warm-up, and gradients are clipped by norm. With ``decay_steps``
    the rate then follows a cosine from its peak down to ``final_lr_fraction`` of it at step ``decay_steps``
    (and stays there): short runs such as the text-to-image demo converge further in the same steps.
    ``decay_steps: max_steps`` makes the decay end with the run (:meth:`resolve` reads the trainer's ``max_steps``),
    so a run resumed with a larger ``max_steps`` decays over the new length instead of training at the final rate.
    """

    base_lr: float = 4.5e-6  # per sample of the effective batch, as in the original code
    max_lr: float = 2.5e-4  # cap on base_lr * effective batch size
    betas: tuple[float, float] = (0.5, 0.9)
    amsgrad: bool = True
    warmup_steps: int = 200  # linear warm-up from 0 to the learning rate
    decay_steps: int | str | None = None  # cosine ends at this step; "max_steps": with the run; None: constant rate
    final_lr_fraction: float = 0.0  # rate at the end of the decay, as a fraction of the peak
    grad_clip: float | None = 100.0  # max global gradient norm; None disables clipping
    fused: bool | None = None  # fused Adam kernel; None picks it where the device supports it

    def __post_init__(self) -> None:
        # YAML gives "0.001" (quoted) as a string and 2.5 where an int belongs: name the field, before any work
        for name in ("base_lr", "max_lr", "final_lr_fraction", "grad_clip"):
            value = getattr(self, name)
            if value is None and name == "grad_clip":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"optim.{name}: expected a finite number >= 0, got {value!r} ({type(value).__name__})")
        for name in ("warmup_steps", "decay_steps"):
            value = getattr(self, name)
            if name == "decay_steps" and value == "max_steps":
                continue
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                expected = "an int" if name == "warmup_steps" else "an int, 'max_steps' or None"
                raise ValueError(f"optim.{name}: expected {expected}, got {value!r} ({type(value).__name__})")
        if not (isinstance(self.betas, (tuple, list)) and len(self.betas) == 2
                and all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in self.betas)):  # fmt: skip
            raise ValueError(f"optim.betas: expected two numbers, got {self.betas!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.decay_steps == "max_steps":
            pass
        elif self.decay_steps is not None and (
            not isinstance(self.decay_steps, int)
            or isinstance(self.decay_steps, bool)
            or self.decay_steps <= self.warmup_steps
        ):
            raise ValueError(
                f"decay_steps must be an int above warmup_steps={self.warmup_steps}, 'max_steps' or None, "
                f"got {self.decay_steps!r}"
            )
        if not 0.0 <= self.final_lr_fraction <= 1.0:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}")

    def resolve(self, max_steps: int | None) -> FlowOptimConfig:
        """This config with ``decay_steps: max_steps`` replaced by the run's ``max_steps``; warns when an explicit
        ``decay_steps`` ends before ``max_steps`` with a final rate of 0 (the steps after it would not learn)."""
        if self.decay_steps == "max_steps":
            if max_steps is None or max_steps < 0:
                raise ValueError("decay_steps: 'max_steps' needs a run with a finite max_steps (lightning.trainer)")
            return replace(self, decay_steps=max(max_steps, self.warmup_steps + 1))
        if isinstance(self.decay_steps, int) and max_steps is not None and max_steps > self.decay_steps:
            warnings.warn(
                f"decay_steps={self.decay_steps} ends before max_steps={max_steps}: steps {self.decay_steps}.."
                f"{max_steps} train at {self.final_lr_fraction:g} x the peak learning rate; set decay_steps: max_steps "
                "to decay over the whole run",
                stacklevel=2,
            )
        return self

    def lr_factor(self, step: int) -> float:
        """Multiplier of the learning rate at optimiser step ``step`` (0-based): warm-up, then optional cosine."""
        if self.decay_steps == "max_steps":
            raise ValueError("decay_steps is 'max_steps': call resolve(max_steps) first (make_optimizer does)")
        factor = 1.0 if self.warmup_steps == 0 else min(1.0, (step + 1) / self.warmup_steps)
        if isinstance(self.decay_steps, int):
            t = min(1.0, max(0.0, (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps)))
            factor *= self.final_lr_fraction + (1.0 - self.final_lr_fraction) * 0.5 * (1.0 + math.cos(math.pi * t))
        return factor


def learning_rate(cfg: FlowOptimConfig, effective_batch_size: int) -> float:
    """``min(base_lr * effective_batch_size, max_lr)``."""
    if effective_batch_size < 1:
        raise ValueError(f"effective_batch_size must be positive, got {effective_batch_size}")
    return min(cfg.base_lr * effective_batch_size, cfg.max_lr)


class ClippedAdam(torch.optim.Adam):
    """Adam that clips the global gradient norm of its parameters to ``grad_clip`` at the start of every step.

    The clip runs after the closure (Lightning computes the gradients inside ``step(closure)``), and is skipped
    when a gradient scaler hands still-scaled gradients to a fused step (it sets ``grad_scale``), where a clip by
    norm would be wrong.
    """

    def __init__(self, params: Iterable[nn.Parameter], grad_clip: float | None = None, **kwargs: Any) -> None:
        if grad_clip is not None and not grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {grad_clip!r}")
        super().__init__(params, **kwargs)
        self.grad_clip = grad_clip

    def step(self, closure: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scaled = getattr(self, "grad_scale", None) is not None  # set by GradScaler.step for fused kernels
        if self.grad_clip is not None and not scaled:
            params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
            if params:
                nn.utils.clip_grad_norm_(params, self.grad_clip)
        super().step(**kwargs)
        return loss


def make_optimizer(
    params: Iterable[nn.Parameter], cfg: FlowOptimConfig, effective_batch_size: int, max_steps: int | None = None
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam with the recipe of :class:`FlowOptimConfig` and its schedule (step it every optimiser step).

    The optimiser (:class:`ClippedAdam`) clips the global gradient norm to ``cfg.grad_clip`` in every step, so the
    recipe holds in any training loop (Lightning's or a plain one). ``max_steps`` resolves
    ``decay_steps: max_steps`` (see :meth:`FlowOptimConfig.resolve`).
    """
    cfg = cfg.resolve(max_steps)
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("make_optimizer: no trainable parameters")
    fused = cfg.fused
    if fused is None:
        fused = all(p.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64) for p in params)
    opt = ClippedAdam(
        params, lr=learning_rate(cfg, effective_batch_size), betas=cfg.betas, amsgrad=cfg.amsgrad, fused=fused,
        grad_clip=cfg.grad_clip,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cfg.lr_factor)
    return opt, sched


def clip_gradients(params: Iterable[nn.Parameter], cfg: FlowOptimConfig) -> float:
    """Clip the global gradient norm to ``cfg.grad_clip``; return the norm before clipping."""
    params = [p for p in params if p.grad is not None]
    if cfg.grad_clip is None:
        return math.sqrt(sum(float(p.grad.detach().square().sum()) for p in params if p.grad is not None))
    return float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))


def optim_config(optim: Mapping[str, Any] | None, key: str = "model.params.optim") -> FlowOptimConfig:
    """A :class:`FlowOptimConfig` from a config block (``None``: the defaults); an unknown key is a ``ValueError``
    naming ``key``, the nearest valid field and the valid ones."""
    from ..config import nearest

    known = {f.name for f in fields(FlowOptimConfig)}
    unknown = set(optim or {}) - known
    if unknown:
        hint = nearest(sorted(unknown)[0], known)
        raise ValueError(f"{key}: unknown keys {sorted(unknown)}{hint}; expected some of {sorted(known)}")
    cfg = FlowOptimConfig(**dict(optim or {}))
    if isinstance(cfg.betas, list):  # YAML gives lists
        cfg.betas = (cfg.betas[0], cfg.betas[1])
    return cfg


def configure_flow_optimizer(
    params: Iterable[nn.Parameter], cfg: FlowOptimConfig, batch_size: int, trainer: Any = None
) -> OptimizerLRSchedulerConfig:
    """What a LightningModule's ``configure_optimizers`` returns for the recipe: :func:`make_optimizer` at the
    effective batch ``batch_size x world size x gradient accumulation`` of ``trainer`` (``None``: one process, no
    accumulation), with the schedule stepped every optimiser step and ``decay_steps: max_steps`` resolved from
    ``trainer.max_steps``."""
    devices = max(1, trainer.world_size) if trainer is not None else 1
    accumulate = trainer.accumulate_grad_batches if trainer is not None else 1
    max_steps = trainer.max_steps if trainer is not None else None
    # the optimiser clips gradients to cfg.grad_clip itself (ClippedAdam), under every precision
    opt, sched = make_optimizer(params, cfg, batch_size * devices * accumulate, max_steps=max_steps)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
