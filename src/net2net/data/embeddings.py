"""Paired embedding files: two row-aligned arrays ``z_src`` (N, D_src) and ``z_tgt`` (N, D_tgt), streamed from disk.

A user who computed embeddings elsewhere (text and image embeddings of the same items, two layers of a model)
trains a translation from them with ``net2net fit`` (:mod:`net2net.training.fit`). What this module gives it:

- :func:`open_embeddings`: one array from a ``.npy`` file, a ``.safetensors`` file (its single tensor, or the one
  named ``key``) or a folder of shards of either (rows concatenated in file-name order). Rows are read with
  positional reads into small buffers, so an array of tens of millions of rows is never held in memory (a memory
  map would be flat too but counts every page touched in the process's resident memory).
- :func:`scan_pair`: one pass over both arrays that checks them (finite rows, matching row counts, a target
  without constant dimensions), computes the per-dimension mean and standard deviation (:class:`~net2net.data.standardization.Standardization`)
  and the arrays' content digests.
- :class:`PairedEmbeddingStream`: an endless ``IterableDataset`` of standardised training batches, read in
  blocks, shuffled within a buffer of several blocks, with a new block order every pass; each process of a
  multi-process (DDP) run and each loader worker reads its own share of the blocks.
- the Lightning data module of a ``fit`` run (held-out blocks for validation, the stream for training) is
  :class:`net2net.training.datamodule.EmbeddingDataModule`: this module does not import Lightning.

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> np.save(os.path.join(d, "src.npy"), np.random.default_rng(0).normal(size=(100, 3)).astype("float32"))
    >>> emb = open_embeddings(os.path.join(d, "src.npy"))
    >>> emb.rows, emb.dim, emb.read(10, 12).shape
    (100, 3, (2, 3))
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import IterableDataset, get_worker_info

from .standardization import Standardization

__all__ = [
    "EMBEDDING_SUFFIXES",
    "EmbeddingArray",
    "PairScan",
    "PairedEmbeddingStream",
    "Standardization",
    "held_out_blocks",
    "open_embeddings",
    "row_ranges",
    "scan_pair",
]

PathLike = str | os.PathLike[str]
EMBEDDING_SUFFIXES = (".npy", ".safetensors")
_SAFETENSORS_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": None,
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


@dataclass(frozen=True)
class _Part:
    """One file's array: ``rows`` rows of ``dim`` values of ``dtype`` at byte ``offset`` of ``path``."""

    path: Path
    offset: int
    rows: int
    dim: int
    dtype: np.dtype


def _check_shape_dtype(path: Path, shape: Sequence[int], dtype: np.dtype | str) -> tuple[int, int, np.dtype]:
    if len(shape) != 2:
        hint = " (one feature per row? reshape it to (N, 1))" if len(shape) == 1 else ""
        raise ValueError(f"{path}: expected a 2-d array (rows, features), got shape {tuple(shape)}{hint}")
    if isinstance(dtype, str):  # a safetensors dtype without a NumPy equivalent (BF16)
        raise TypeError(f"{path}: expected float32 or float64 values, got {dtype}; save them as float32")
    if dtype.kind != "f" or dtype.itemsize < 4:
        raise TypeError(
            f"{path}: expected float32 or float64 values, got {dtype.name}; convert with arr.astype(np.float32)"
            + (" (float16 loses the precision a density needs)" if dtype.itemsize == 2 else "")
        )
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{path}: the array is empty (shape {tuple(shape)})")
    return int(shape[0]), int(shape[1]), dtype


def _npy_part(path: Path) -> _Part:
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read_header:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = read_header[version](f)  # the header only, no data
        except ValueError as e:
            raise ValueError(f"{path}: not a .npy file ({e})") from e
        offset = f.tell()
    if fortran and len(shape) == 2 and shape[1] > 1:
        raise ValueError(f"{path}: the array is in Fortran (column-major) order; save np.ascontiguousarray(arr)")
    rows, dim, dtype = _check_shape_dtype(path, shape, dtype)
    return _Part(path, offset, rows, dim, dtype)


def _safetensors_part(path: Path, key: str | None) -> _Part:
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header size)")
        (n,) = struct.unpack("<Q", head)
        if n > 100_000_000:
            raise ValueError(f"{path}: not a safetensors file (header of {n} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise ValueError(f"{path}: not a safetensors file (header is not JSON: {e})") from e
    names = sorted(k for k in header if k != "__metadata__")
    if key is None:
        if len(names) != 1:
            raise ValueError(
                f"{path}: holds tensors {names}; name the one to use (key=... / --source-key/--target-key)"
            )
        key = names[0]
    if key not in header or key == "__metadata__":
        raise ValueError(f"{path}: no tensor {key!r}; it holds {names}")
    entry = header[key]
    np_dtype = _SAFETENSORS_DTYPES.get(entry["dtype"], entry["dtype"])
    rows, dim, dtype = _check_shape_dtype(
        path, entry["shape"], entry["dtype"] if np_dtype is None else np.dtype(np_dtype)
    )
    return _Part(path, 8 + n + int(entry["data_offsets"][0]), rows, dim, dtype)


class EmbeddingArray:
    """Rows of one or several files read as one ``(rows, dim)`` float32 array, without loading it.

    Arguments:
        parts: the files' arrays in order (see :func:`open_embeddings`).
        name: what error messages call it (e.g. ``"source"``).
    """

    def __init__(self, parts: Sequence[_Part], name: str = "array") -> None:
        if not parts:
            raise ValueError(f"{name}: no arrays")
        dims = {p.dim for p in parts}
        if len(dims) != 1:
            raise ValueError(
                f"{name}: the shards have different feature counts {sorted(dims)}: "
                + ", ".join(f"{p.path.name}: {p.dim}" for p in parts[:5])
            )
        self.parts, self.name = list(parts), name
        self.dim = parts[0].dim
        self.starts = np.cumsum([0] + [p.rows for p in parts])  # global row where each part starts
        self.rows = int(self.starts[-1])
        self._fds: dict[Path, int] = {}
        self._pid = os.getpid()

    def __repr__(self) -> str:
        return f"EmbeddingArray({self.name}: {self.rows} x {self.dim}, {len(self.parts)} file(s))"

    def __getstate__(self) -> dict[str, Any]:  # file descriptors do not travel to loader workers
        return {**self.__dict__, "_fds": {}}

    def _fd(self, path: Path) -> int:
        if self._pid != os.getpid():  # forked: the parent's descriptors share its file offsets; pread does not care,
            self._fds, self._pid = {}, os.getpid()  # but open our own so that closing them is ours to do
        if path not in self._fds:
            self._fds[path] = os.open(path, os.O_RDONLY)
        return self._fds[path]

    def close(self) -> None:
        """Close the open files (reads reopen them)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        try:
            if self._pid == os.getpid():
                self.close()
        except Exception:
            pass

    def read_raw(self, start: int, stop: int) -> list[np.ndarray]:
        """Rows ``start:stop`` as they are stored: one array per file they span."""
        if not 0 <= start <= stop <= self.rows:
            raise IndexError(f"{self.name}: rows {start}:{stop} out of range 0:{self.rows}")
        out = []
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        while start < stop:
            part = self.parts[i]
            lo, hi = start - int(self.starts[i]), min(stop, int(self.starts[i + 1])) - int(self.starts[i])
            row_bytes = part.dim * part.dtype.itemsize
            buf = os.pread(self._fd(part.path), (hi - lo) * row_bytes, part.offset + lo * row_bytes)
            if len(buf) != (hi - lo) * row_bytes:
                raise ValueError(f"{part.path}: file is shorter than its header says (truncated?)")
            out.append(np.frombuffer(buf, dtype=part.dtype).reshape(hi - lo, part.dim))  # bytes -> (n, dim)
            start += hi - lo
            i += 1
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a float32 ``(stop - start, dim)`` array."""
        chunks = self.read_raw(start, stop)
        if len(chunks) == 1:
            return chunks[0].astype(np.float32, copy=chunks[0].dtype != np.float32 or not chunks[0].flags.writeable)
        return np.concatenate(chunks).astype(np.float32, copy=False)


def row_ranges(rows: int, size: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of at most ``size`` rows covering ``0:rows``."""
    for start in range(0, rows, size):
        yield start, min(start + size, rows)


def open_embeddings(path: PathLike, key: str | None = None, name: str | None = None) -> EmbeddingArray:
    """Open a ``.npy`` file, a ``.safetensors`` file or a folder of shards of either as an :class:`EmbeddingArray`.

    Arguments:
        path: the file or folder (shards are the folder's ``*.npy`` / ``*.safetensors`` files, in name order).
        key: the tensor to read from safetensors files holding several.
        name: what error messages call the array (default: the path).

    Raises:
        FileNotFoundError: no such file or folder, or a folder without shards.
        ValueError: not 2-d, empty, unreadable, or shards of different widths.
        TypeError: values that are not float32/float64 (integers, float16, bfloat16).
    """
    p = Path(path).expanduser()
    label = name or str(p)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix in EMBEDDING_SUFFIXES and f.is_file())
        if not files:
            raise FileNotFoundError(f"{label}: the folder {p} holds no {' or '.join(EMBEDDING_SUFFIXES)} shards")
    elif p.is_file():
        files = [p]
    else:
        raise FileNotFoundError(f"{label}: no such file or folder: {p}")
    parts = []
    for f in files:
        if f.suffix == ".npy":
            parts.append(_npy_part(f))
        elif f.suffix == ".safetensors":
            parts.append(_safetensors_part(f, key))
        else:
            raise ValueError(f"{label}: {f.name}: expected a {' or '.join(EMBEDDING_SUFFIXES)} file")
    return EmbeddingArray(parts, name=label)


@dataclass
class PairScan:
    """What :func:`scan_pair` found: the standardisation, the row count and the arrays' content digests."""

    standardization: Standardization
    rows: int
    source_digest: str
    target_digest: str


class _Moments:
    """Running per-dimension count, mean and sum of squared deviations, merged block by block (Chan et al.)."""

    def __init__(self, dim: int) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def add(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        n_b, mean_b = x.shape[0], x.mean(0)
        m2_b = np.square(x - mean_b).sum(0)
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + np.square(delta) * (self.n * n_b / n)
        self.n = n

    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.n - 1, 1))


def _digest(h: Any, chunks: Sequence[np.ndarray]) -> None:
    for c in chunks:
        h.update(c.tobytes())


def scan_pair(
    source: EmbeddingArray, target: EmbeddingArray, block_rows: int = 8192, progress: bool = False
) -> PairScan:
    """One pass over both arrays: check them, compute their standardisation and content digests.

    Raises:
        ValueError: different row counts; rows with NaN or Inf (the message lists them); target dimensions
            with zero variance (a constant has no density). Constant source dimensions only warn (they are
            left unscaled: a constant condition is harmless).
    """
    if source.rows != target.rows:
        raise ValueError(
            f"source has {source.rows} rows but target has {target.rows}: the two arrays must hold aligned pairs "
            "(row i of one belongs to row i of the other)"
        )
    moments = {"source": _Moments(source.dim), "target": _Moments(target.dim)}
    hashes = {"source": hashlib.sha256(), "target": hashlib.sha256()}
    bad: dict[str, list[int]] = {"source": [], "target": []}
    n_bad = {"source": 0, "target": 0}
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=source.rows, unit="rows", desc="scanning", leave=False)
    for start, stop in row_ranges(source.rows, block_rows):
        for name, arr in (("source", source), ("target", target)):
            raw = arr.read_raw(start, stop)
            _digest(hashes[name], raw)
            x = np.concatenate(raw) if len(raw) > 1 else raw[0]
            finite = np.isfinite(x).all(1)
            if not finite.all():
                rows = np.flatnonzero(~finite) + start
                n_bad[name] += len(rows)
                bad[name].extend(rows[: 10 - len(bad[name])].tolist())
                continue
            moments[name].add(x)
        if bar is not None:
            bar.update(stop - start)
    if bar is not None:
        bar.close()
    for name in ("source", "target"):
        if n_bad[name]:
            raise ValueError(
                f"{name}: {n_bad[name]} row(s) hold NaN or Inf, e.g. rows {bad[name]}; "
                "drop or fix them (in both arrays)"
            )
    std = {k: m.std() for k, m in moments.items()}
    const_t = np.flatnonzero(std["target"] <= 1e-12 * np.maximum(1.0, np.abs(moments["target"].mean)))
    if len(const_t):
        raise ValueError(
            f"target: {len(const_t)} dimension(s) are constant (zero variance), e.g. {const_t[:10].tolist()}: a "
            "constant has no density; drop those columns"
        )
    const_s = std["source"] <= 1e-12 * np.maximum(1.0, np.abs(moments["source"].mean))
    if const_s.any():
        warnings.warn(
            f"source: {int(const_s.sum())} constant dimension(s), e.g. {np.flatnonzero(const_s)[:10].tolist()};"
            " they carry no information",
            stacklevel=2,
        )
        std["source"] = np.where(const_s, 1.0, std["source"])

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64))

    stdz = Standardization(t(moments["source"].mean), t(std["source"]), t(moments["target"].mean), t(std["target"]))
    digest = {k: f"sha256:{h.hexdigest()}" for k, h in hashes.items()}
    return PairScan(stdz, source.rows, digest["source"], digest["target"])


# -- blocks, the training stream and the held-out set ---------------------------------------------------------
def block_size(rows: int, block_rows: int) -> int:
    """Rows per block: ``block_rows``, smaller for small arrays so that there are at least 32 blocks."""
    return max(1, min(block_rows, rows // 32 if rows >= 32 else 1))


def held_out_blocks(
    rows: int, block_rows: int, val_fraction: float, max_val_rows: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split the blocks of ``rows`` rows into training and held-out blocks (a seeded random choice of blocks).

    Returns ``(train_blocks, val_blocks)``, block indices; block ``b`` holds rows ``b*block_rows`` up to
    ``min((b+1)*block_rows, rows)``. The held-out share is ``val_fraction`` of the blocks, at most
    ``max_val_rows`` rows, at least one block.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n_blocks = math.ceil(rows / block_rows)
    if n_blocks < 2:
        raise ValueError(f"{rows} rows are too few for a held-out split")
    n_val = min(max(1, round(val_fraction * n_blocks)), max(1, max_val_rows // block_rows), n_blocks - 1)
    perm = np.random.default_rng(seed).permutation(n_blocks)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class PairedEmbeddingStream(IterableDataset):
    """Endless standardised training batches ``{"z_src": (B, D_src), "z_tgt": (B, D_tgt)}`` from two arrays.

    Every pass (epoch) permutes the training blocks with a seed of its own; the blocks are dealt to the processes
    (``rank`` of ``world_size``, each gets the same number, the remainder of a pass is dropped), then to this
    process's loader workers; ``shuffle_blocks`` blocks are read at a time and their rows shuffled together.

    Arguments:
        source, target: the arrays.
        blocks: the training block indices (:func:`held_out_blocks`).
        block_rows: rows per block.
        batch_size: rows per batch.
        standardization: applied to every batch.
        seed: seed of the block order and the shuffles.
        rank, world_size: this process's share (DDP).
        shuffle_blocks: blocks read and shuffled together.
    """

    def __init__(
        self,
        source: EmbeddingArray,
        target: EmbeddingArray,
        blocks: np.ndarray,
        block_rows: int,
        batch_size: int,
        standardization: Standardization,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle_blocks: int = 8,
    ) -> None:
        super().__init__()
        if len(blocks) < world_size:
            raise ValueError(f"{len(blocks)} training blocks cannot be shared by {world_size} processes")
        self.source, self.target, self.blocks = source, target, np.asarray(blocks)
        self.block_rows, self.batch_size = block_rows, batch_size
        s = standardization
        self._src = (s.src_mean.numpy().astype(np.float32), (1.0 / s.src_std).numpy().astype(np.float32))
        self._tgt = (s.tgt_mean.numpy().astype(np.float32), (1.0 / s.tgt_std).numpy().astype(np.float32))
        self.seed, self.rank, self.world_size, self.shuffle_blocks = seed, rank, world_size, shuffle_blocks

    def _rows(self, b: int) -> tuple[int, int]:
        return b * self.block_rows, min((b + 1) * self.block_rows, self.source.rows)

    def my_blocks(self, epoch: int, worker: int = 0, workers: int = 1) -> np.ndarray:
        """The blocks this process and loader worker read in pass ``epoch``, in order."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.blocks)
        per_rank = len(order) // self.world_size
        return order[self.rank :: self.world_size][:per_rank][worker::workers]

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        src_left = tgt_left = None  # rows carried over to the next buffer
        for epoch in range(2**62):
            mine = self.my_blocks(epoch, worker, workers)
            if len(mine) == 0:
                raise ValueError(f"loader worker {worker} has no training blocks; use fewer workers")
            rng = np.random.default_rng([self.seed, epoch, self.rank, worker])
            for i in range(0, len(mine), self.shuffle_blocks):
                spans = [self._rows(int(b)) for b in mine[i : i + self.shuffle_blocks]]
                src = np.concatenate([self.source.read(a, b) for a, b in spans])  # (rows of the buffer, D_src)
                tgt = np.concatenate([self.target.read(a, b) for a, b in spans])
                perm = rng.permutation(len(src))
                src, tgt = src[perm], tgt[perm]
                if src_left is not None:
                    src, tgt = np.concatenate([src_left, src]), np.concatenate([tgt_left, tgt])
                n_full = len(src) // self.batch_size * self.batch_size
                src_left, tgt_left = src[n_full:], tgt[n_full:]
                src = (src[:n_full] - self._src[0]) * self._src[1]
                tgt = (tgt[:n_full] - self._tgt[0]) * self._tgt[1]
                for j in range(0, n_full, self.batch_size):
                    yield {
                        "z_src": torch.from_numpy(src[j : j + self.batch_size]),
                        "z_tgt": torch.from_numpy(tgt[j : j + self.batch_size]),
                    }
        raise AssertionError("unreachable")
