"""Mixed precision for the flows: bf16 matrix products where the hardware makes them faster, float32 elsewhere.

Under ``precision_context("bf16", device)`` the coupling subnets' and the embedder's matrix products run in bfloat16
(``torch.autocast``: master weights stay float32), while the coupling's affine map, ActNorm (its statistics are
taken in float64), the log-determinant accumulation and the loss stay in float32: :class:`~.coupling.ScaleShiftMLP`
returns its scale and shift in the input's dtype. ``precision_context("32", device)`` runs everything in float32,
also inside an outer autocast region (the exact inverse on demand).

``"auto"`` resolves to ``"bf16"`` only where bf16 makes the model's own training step faster: given a flow and
its batch size, :func:`probe_step_seconds` times a few training steps of a copy of that flow at that batch in both
precisions, interleaved, and :func:`choose_precision` takes bf16 when the median step is at least
:data:`AUTO_MIN_STEP_SPEEDUP` times faster (the matmul rate alone misleads: on an AVX512-BF16 CPU bf16 products are
about 2x faster, yet the main job's step at batch 128 gains only 1.2-1.26x, at batch 512 about 1.7x). Without a
model (e.g. ``precision_context("auto")``) the measured speed-up of bf16 matrix products decides
(:func:`bf16_speedup`).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import platform
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "AUTO_MIN_SPEEDUP",
    "AUTO_MIN_STEP_SPEEDUP",
    "PRECISIONS",
    "bf16_speedup",
    "choose_precision",
    "cpu_bf16_features",
    "matmul_gflops",
    "precision_context",
    "probe_step_seconds",
    "resolve_precision",
]

PRECISIONS = ("32", "bf16", "auto")
# "auto" picks bf16 when its products measure at least this much faster than float32 ones. Measured: 1.6-2.6x on an
# AVX512-BF16 CPU (also under heavy load), about 0.35x where bf16 is emulated; the main job's training step gained
# 1.22x where products gained 1.9x, so a smaller product gain would hardly pay for the casts
AUTO_MIN_SPEEDUP = 1.3
# "auto" with a model picks bf16 when its own training step (forward, loss, backward, Adam) measures at least this much
# faster in bf16: a margin over the probe's noise on a shared machine (medians of 4 interleaved steps each)
AUTO_MIN_STEP_SPEEDUP = 1.1
_CPU_FLAGS = ("avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16")  # Linux /proc/cpuinfo names


def cpu_bf16_features() -> list[str]:
    """The bf16-related CPU flags that ``/proc/cpuinfo`` lists (Linux; empty elsewhere or when unreadable)."""
    info = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not info.is_file():
        return []
    flags: set[str] = set()
    for line in info.read_text(errors="replace").splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in _CPU_FLAGS if f in flags]


def matmul_gflops(
    dtype: torch.dtype, device: str | torch.device = "cpu", shape: tuple[int, int, int] = (256, 1024, 1024),
    repeats: int = 20,
) -> float:  # fmt: skip
    """Median rate of ``(m, k) @ (k, n)`` products in ``dtype`` on ``device``, in GFLOP/s."""
    device = torch.device(device)
    m, k, n = shape
    a = torch.randn(m, k, device=device).to(dtype)
    w = torch.randn(k, n, device=device).to(dtype)
    times = []
    for i in range(repeats + 3):  # 3 warm-up products
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ w
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 3:
            times.append(time.perf_counter() - t)
    return 2 * m * k * n / statistics.median(times) / 1e9


@functools.cache
def _bf16_speedup(device: str) -> float:
    if device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return 0.0
    # the cINN's products: a paper-size subnet layer (1024 wide) and a small one (256 wide, batch 128);
    # the smaller of the two ratios, so that bf16 is chosen only where it pays at both sizes
    ratios = []
    for shape in ((256, 1024, 1024), (128, 256, 256)):
        reps = 10 if shape[1] == 1024 else 40
        f32 = matmul_gflops(torch.float32, device, shape, reps)
        bf16 = matmul_gflops(torch.bfloat16, device, shape, reps)
        ratios.append(bf16 / f32)
    return min(ratios)


def bf16_speedup(device: str | torch.device = "cpu") -> float:
    """bf16 against float32 matmul rate on ``device`` (``> 1``: bf16 faster), measured once per process (~0.1 s).

    0 for a CUDA device without bf16 support.
    """
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        return 0.0
    if device.type == "cpu":
        return _bf16_speedup("cpu")
    return _bf16_speedup(f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}")


def choose_precision(
    seconds_32: Sequence[float], seconds_bf16: Sequence[float], min_speedup: float = AUTO_MIN_STEP_SPEEDUP
) -> str:
    """``"bf16"`` when the median of ``seconds_32`` is at least ``min_speedup`` times that of ``seconds_bf16`` (the
    step times of :func:`probe_step_seconds`), else ``"32"``: bf16 only where it is measured faster."""
    for name, times in (("seconds_32", seconds_32), ("seconds_bf16", seconds_bf16)):
        if len(times) == 0 or any(not t > 0 for t in times):
            raise ValueError(f"choose_precision: {name} must be a non-empty sequence of positive seconds, got {times!r}")
    return "bf16" if statistics.median(seconds_32) >= min_speedup * statistics.median(seconds_bf16) else "32"


def probe_step_seconds(
    flow: torch.nn.Module, batch_size: int, device: str | torch.device = "cpu", repeats: int = 4
) -> tuple[list[float], list[float]]:
    """Seconds of ``repeats`` training steps (forward, NLL, backward, Adam) of a copy of ``flow`` at ``batch_size`` in
    float32 and in bf16 mixed precision, interleaved after one warm-up step each: ``(seconds_32, seconds_bf16)``.

    ``flow`` is a conditional flow with ``dim`` and ``cond_shape`` (:class:`~net2net.flows.ConditionalINN`); it is
    not changed (the copy is trained on random inputs of its shapes).
    """
    from .loss import nll

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"probe_step_seconds: batch_size must be a positive int, got {batch_size!r}")
    if not hasattr(flow, "dim") or not hasattr(flow, "cond_shape"):
        raise TypeError(f"probe_step_seconds: expected a conditional flow with dim and cond_shape, got {type(flow).__name__}")
    device = torch.device(device)
    tau = copy.deepcopy(flow).to(device).train()
    opt = torch.optim.Adam(tau.parameters(), lr=1e-6)
    dim: Any = getattr(flow, "dim")  # noqa: B009 (a Module attribute: mypy sees Tensor | Module)
    cond_shape: Any = getattr(flow, "cond_shape")  # noqa: B009
    z = torch.randn(batch_size, int(dim), device=device)  # (B, dim)
    c = torch.randn(batch_size, *(int(n) for n in cond_shape), device=device)  # (B, *cond_shape)
    times: dict[str, list[float]] = {"32": [], "bf16": []}
    for i in range(repeats + 1):
        for precision in ("32", "bf16") if i % 2 == 0 else ("bf16", "32"):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            with precision_context(precision, device):
                loss = nll(*tau(z, c)).per_sample.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i > 0:  # the first round warms up (and initialises the copy's ActNorm)
                times[precision].append(time.perf_counter() - t)
    return times["32"], times["bf16"]


def resolve_precision(
    precision: str, device: str | torch.device = "cpu", flow: torch.nn.Module | None = None, batch_size: int | None = None
) -> str:
    """``"32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS`.

    ``"auto"`` with a ``flow`` and its ``batch_size``: bf16 where that flow's own training step measures at least
    :data:`AUTO_MIN_STEP_SPEEDUP` times faster in bf16 (:func:`probe_step_seconds`, :func:`choose_precision`);
    without a flow, where bf16 matrix products measure at least :data:`AUTO_MIN_SPEEDUP` times faster
    (:func:`bf16_speedup`). Never bf16 on a device without bf16 support.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    device = torch.device(device)
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_bf16_supported()):
        return "32"
    if flow is not None and batch_size is not None:
        return choose_precision(*probe_step_seconds(flow, batch_size, device))
    return "bf16" if bf16_speedup(device) >= AUTO_MIN_SPEEDUP else "32"



@contextlib.contextmanager
def precision_context(precision: str, device: str | torch.device = "cpu") -> Iterator[str]:
    """Run the enclosed flow calls in ``precision`` (``"32"``, ``"bf16"`` or ``"auto"``); yields the resolved one.

    ``"bf16"``: matrix products in bfloat16 through ``torch.autocast``, everything else in float32. ``"32"``: float32
    throughout, autocast switched off even inside an outer autocast region.

    Example:
        >>> from net2net.flows import ConditionalINN
        >>> tau = ConditionalINN(dim=8, cond_dim=3, n_blocks=2, hidden_dim=32, embedding_dim=4)
        >>> _ = tau(torch.randn(16, 8), torch.randn(16, 3))  # ActNorm initialisation
        >>> with precision_context("bf16") as p:
        ...     z = tau.sample(torch.randn(2, 3), n_samples=4)
        >>> p, z.dtype
        ('bf16', torch.float32)
    """
    device = torch.device(device)
    resolved = resolve_precision(precision, device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=resolved == "bf16"):
        yield resolved
