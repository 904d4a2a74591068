"""Mixed precision for the flows: bf16 matrix products where the hardware makes them faster, float32 elsewhere.

Under ``precision_context("bf16", device)`` the coupling subnets' and the embedder's matrix products run in bfloat16
(``torch.autocast``: master weights stay float32), while the coupling's affine map, ActNorm (its statistics are
taken in float64), the log-determinant accumulation and the loss stay in float32: :class:`~.coupling.ScaleShiftMLP`
returns its scale and shift in the input's dtype. ``precision_context("32", device)`` runs everything in float32,
also inside an outer autocast region (the exact inverse on demand).

``"auto"`` resolves to ``"bf16"`` only where a quick measurement in this process says bf16 products are clearly
faster than float32 ones on the device (:func:`bf16_speedup`, cached per process and device): CPUs with
AVX512-BF16 or AMX and recent GPUs, not CPUs that emulate bf16 (where it is about three times slower).
"""

from __future__ import annotations

import contextlib
import functools
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import torch

__all__ = [
    "PRECISIONS",
    "AUTO_MIN_SPEEDUP",
    "bf16_speedup",
    "cpu_bf16_features",
    "matmul_gflops",
    "precision_context",
    "resolve_precision",
]

PRECISIONS = ("32", "bf16", "auto")
# "auto" picks bf16 when its products measure at least this much faster than float32 ones. Measured: 1.6-2.6x on an
# AVX512-BF16 CPU (also under heavy load), about 0.35x where bf16 is emulated; the main job's training step gained
# 1.22x where products gained 1.9x, so a smaller product gain would hardly pay for the casts
AUTO_MIN_SPEEDUP = 1.3
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


@functools.lru_cache(maxsize=None)
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


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"32"`` or ``"bf16"`` for ``precision`` in :data:`PRECISIONS`; ``"auto"`` is bf16 only where its measured
    matmul speed-up (:func:`bf16_speedup`) is at least :data:`AUTO_MIN_SPEEDUP`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "bf16" if bf16_speedup(device) >= AUTO_MIN_SPEEDUP else "32"
    return precision


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
