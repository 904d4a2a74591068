"""``net2net sample`` / ``net2net score``: a trained translation applied to arrays in files, chunk by chunk.

Inputs are read in chunks of rows and outputs written into a ``.npy`` file in place, then moved to their name
atomically, so files larger than memory work and a killed call leaves no half-written output under the name.
For a ``net2net fit`` run the files hold embeddings (``.npy``, ``.safetensors`` or folders of shards, see
:func:`net2net.data.embeddings.open_embeddings`); for a run with a source (target) expert they hold that
expert's inputs, e.g. images ``(N, C, H, W)`` in a ``.npy`` file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open

from ..data.embeddings import open_embeddings, row_ranges
from .translate import Net2Net

__all__ = ["sample_file", "score_file"]

PathLike = str | os.PathLike[str]


class _Rows:
    """Rows of an input file, read in chunks: embeddings through :func:`open_embeddings` (2-d float arrays),
    expert inputs (any shape) from a memory-mapped ``.npy`` or a safetensors tensor."""

    def __init__(self, path: PathLike, embeddings: bool, key: str | None, name: str) -> None:
        if embeddings:
            arr = open_embeddings(path, key, name=name)
            self.rows, self._read = arr.rows, arr.read
            return
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"{name}: no such file: {p}")
        if p.suffix == ".npy":
            data = np.load(p, mmap_mode="r", allow_pickle=False)
        elif p.suffix == ".safetensors":
            with safe_open(str(p), framework="np") as f:
                names = list(f.keys())
                if key is None and len(names) != 1:
                    raise ValueError(f"{name}: {p} holds tensors {names}; name the one to use")
                data = f.get_tensor(key or names[0])
        else:
            raise ValueError(f"{name}: {p}: expected a .npy or .safetensors file")
        if data.ndim < 1 or len(data) == 0:
            raise ValueError(f"{name}: {p} holds no rows (shape {data.shape})")
        self.rows = len(data)
        self._read = lambda start, stop: np.ascontiguousarray(data[start:stop])

    def chunks(self, size: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        for a, b in row_ranges(self.rows, size):
            x = self._read(a, b)
            # a float chunk is a converted copy; others (e.g. int labels) may be read-only views of a memory map
            yield a, b, torch.from_numpy(x.astype(np.float32) if x.dtype.kind == "f" else np.array(x))


def _write(out: PathLike, shape: tuple[int, ...], dtype: type, fill: Callable[[np.ndarray], None]) -> Path:
    out = Path(out)
    if out.suffix != ".npy":
        raise ValueError(f"{out}: the output must be a .npy file")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    arr = np.lib.format.open_memmap(partial, mode="w+", dtype=dtype, shape=shape)
    try:
        fill(arr)
        arr.flush()
    except BaseException:
        del arr
        partial.unlink(missing_ok=True)
        raise
    del arr
    os.replace(partial, out)
    return out


def sample_file(
    model: Net2Net,
    source: PathLike,
    out: PathLike,
    n: int = 8,
    temperature: float = 1.0,
    seed: int = 0,
    source_key: str | None = None,
    chunk: int = 4096,
) -> Path:
    """``n`` samples ``z_tgt ~ p(z_tgt | z_src)`` per source row into ``out`` (``.npy``, ``(N, n, D_tgt)`` float32)."""
    rows = _Rows(source, model.source is None, source_key, "source")
    g = torch.Generator(device=next(model.tau.parameters()).device).manual_seed(seed)

    def fill(arr: np.ndarray) -> None:
        for a, b, x in rows.chunks(chunk):
            arr[a:b] = model.sample(x, n=n, temperature=temperature, generator=g).cpu().numpy()

    return _write(out, (rows.rows, n, model.tau.dim), np.float32, fill)


def score_file(
    model: Net2Net,
    source: PathLike,
    target: PathLike,
    out: PathLike,
    source_key: str | None = None,
    target_key: str | None = None,
    chunk: int = 4096,
) -> Path:
    """``log p(z_tgt | z_src)`` in nats of each row pair into ``out`` (``.npy``, ``(N,)`` float64)."""
    src = _Rows(source, model.source is None, source_key, "source")
    tgt = _Rows(target, model.target is None, target_key, "target")
    if src.rows != tgt.rows:
        raise ValueError(f"source has {src.rows} rows but target has {tgt.rows}: score needs aligned pairs")

    def fill(arr: np.ndarray) -> None:
        for (a, b, x), (_, _, y) in zip(src.chunks(chunk), tgt.chunks(chunk), strict=True):  # same rows
            arr[a:b] = model.log_prob(y, x).double().cpu().numpy()

    return _write(out, (src.rows,), np.float64, fill)
