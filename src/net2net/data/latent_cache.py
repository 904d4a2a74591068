"""Latent cache: a dataset encoded once by a frozen source expert Φ and a frozen target expert Θ.

The experts never change during cINN training (DESIGN.md §6), so each example is encoded once and the cINN
trains on the stored codes. A cache is a folder::

    <cache_dir>/<name>-<key>/
        manifest.json               written last: its presence marks a complete cache; holds each file's size and
                                    SHA-256, checked by :func:`verify_cache` and when a LatentDataset opens it
        shard_00000.safetensors     z_tgt_mean, z_tgt_std, z_src or src_index, label (per example)
        ...
        src_table.safetensors       text sources only: one row per distinct caption

``key`` is a digest of the source's and the target's fingerprints (kind, configuration and weights, see
:func:`net2net.experts.protocols.expert_fingerprint`), the dataset's fingerprint (:func:`dataset_fingerprint`)
and the item keys read, so changing any of them leads to a new folder instead of stale codes.

Stochastic target encoders (the autoencoder's Gaussian q(z | y)) are stored as mean and std, and
:class:`LatentDataset` draws ``z_tgt = mean + std * eps`` at every access, as training on live encodings
would. Text conditions (items holding a list of captions, e.g. :class:`net2net.data.CaptionedDataset`) are
stored as a table of distinct captions plus per-example indices; each access picks one of the example's
captions at random. Sources that depend on random augmentation (``expert.stochastic = True``, e.g. the
deformed encoder of Sec. C) cannot be cached and are encoded live instead (see
:class:`net2net.training.translation.TranslationDataModule`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..experts.protocols import check_code
from ..io import atomic_path, atomic_save_safetensors, file_digest, load_safetensors, read_safetensors_metadata

__all__ = [
    "CACHE_FORMAT",
    "LatentDataset",
    "cache_key",
    "dataset_fingerprint",
    "encode_dataset",
    "encode_source",
    "encode_target",
    "verify_cache",
]

CACHE_FORMAT = "net2net.LatentCache/1"
log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]


def _update_array(h: Any, value: Any) -> None:
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    arr = np.ascontiguousarray(value)
    h.update(f"{arr.dtype}{arr.shape}".encode())
    h.update(arr.tobytes())


_KNOWN_ARRAYS = ("images", "labels", "indices")


def _is_file_list(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(isinstance(v, (str, os.PathLike)) for v in value)
        and all(os.path.isfile(v) for v in value[:1])
    )


def dataset_fingerprint(dataset: Dataset, config: Mapping[str, Any] | None = None) -> str:
    """A short digest identifying a dataset's content: its type, length, configuration and, for it and every
    dataset it wraps (``dataset``/``datasets`` attributes):

    - the content of every NumPy array or tensor it holds as an attribute (whatever its name, also in lists);
    - ``captions`` tables;
    - lists of files (e.g. an image folder's ``files``): each file's path, size and modification time.

    So a dataset whose arrays are replaced, or whose files change, gets a new key (and a latent cache keyed by it
    is re-encoded) even where its configuration is the same.

    Example:
        >>> from net2net.data import Digits
        >>> dataset_fingerprint(Digits(split="test")) == dataset_fingerprint(Digits(split="test"))
        True
    """
    h = hashlib.sha256()
    h.update(json.dumps(config or {}, sort_keys=True, default=str).encode())
    pending: list[Any] = [dataset]
    while pending:
        layer = pending.pop(0)
        attrs = vars(layer) if hasattr(layer, "__dict__") else {}
        h.update(type(layer).__name__.encode())
        h.update(str(len(layer)).encode())
        for attr in ("size", "channels", "split"):
            if attr in attrs:
                h.update(f"{attr}={attrs[attr]}".encode())
        for attr in _KNOWN_ARRAYS:
            if isinstance(attrs.get(attr), (np.ndarray, Tensor)):
                _update_array(h, attrs[attr])
        if isinstance(attrs.get("captions"), Mapping):
            h.update(json.dumps({str(k): list(v) for k, v in attrs["captions"].items()}, sort_keys=True).encode())
        for attr in sorted(attrs):  # what the names above miss: any other array, list of arrays or list of files
            value = attrs[attr]
            if attr in _KNOWN_ARRAYS or attr.startswith("_"):
                continue
            if isinstance(value, (np.ndarray, Tensor)):
                h.update(attr.encode())
                _update_array(h, value)
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (np.ndarray, Tensor)) for v in value):
                h.update(attr.encode())
                for v in value:
                    _update_array(h, v)
            elif _is_file_list(value):
                h.update(attr.encode())
                for f in value:
                    st = os.stat(f)
                    h.update(f"{os.fspath(f)}:{st.st_size}:{st.st_mtime_ns}".encode())
        if attrs.get("dataset") is not None:
            pending.append(attrs["dataset"])
        if isinstance(attrs.get("datasets"), (list, tuple)):
            pending.extend(d for d in attrs["datasets"] if isinstance(d, Dataset) or hasattr(d, "__getitem__"))
    return h.hexdigest()[:16]


def cache_key(source_fingerprint: str, target_fingerprint: str, data_fingerprint: str, source_key: str,
              target_key: str) -> str:  # fmt: skip
    """The digest naming a cache folder (see the module docstring)."""
    payload = json.dumps([CACHE_FORMAT, source_fingerprint, target_fingerprint, data_fingerprint, source_key,
                          target_key])  # fmt: skip
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _collate(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Stack tensors and ints; keep strings and caption lists as lists."""
    out: dict[str, Any] = {}
    for k in items[0]:
        values = [it[k] for it in items]
        if isinstance(values[0], Tensor):
            out[k] = torch.stack(values)
        elif isinstance(values[0], (int, np.integer)) and not isinstance(values[0], bool):
            out[k] = torch.as_tensor(values)
        else:
            out[k] = values
    return out


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (list, tuple)) and len(value) > 0 and all(isinstance(v, str) for v in value)
    )


@torch.no_grad()
def encode_target(target: Any, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean, std)`` of a target expert's code for images ``y``: ``encode_dist`` when the encoder is stochastic,
    else ``(encode(y), zeros)``."""
    if hasattr(target, "encode_dist"):
        mean, std = target.encode_dist(y)
    elif hasattr(target, "encode"):
        mean = target.encode(y)
        std = torch.zeros_like(mean)
    else:
        raise TypeError(
            f"the target expert {type(target).__name__} has no encode/encode_dist: a generator without an encoder "
            "is trained on synthetic pairs (z, G(z)) instead of a cache of real images"
        )
    who = f"the target expert {type(target).__name__}.{'encode_dist' if hasattr(target, 'encode_dist') else 'encode'}"
    check_code(mean, len(y), who, spatial=False)
    if std.shape != mean.shape:
        raise ValueError(f"{who} returned a std of shape {tuple(std.shape)} for a mean of shape {tuple(mean.shape)}")
    return mean.float().cpu(), std.float().cpu()


@torch.no_grad()
def encode_source(source: Any, x: Any) -> Tensor:
    """A source expert's code of a batch (images, labels or a list of strings), as float32 on the CPU."""
    z = check_code(source.encode(x), len(x), f"the source expert {type(source).__name__}.encode")
    return z.float().cpu()


@torch.inference_mode()  # frozen experts, outputs only stored: no autograd bookkeeping (~1.15x over no_grad)
def encode_dataset(
    dataset: Dataset,
    source: Any,
    target: Any,
    out_dir: PathLike,
    *,
    source_key: str = "image",
    target_key: str = "image",
    batch_size: int = 256,
    shard_size: int = 16384,
    metadata: Mapping[str, Any] | None = None,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> Path:
    """Encode ``dataset`` with both experts into ``out_dir`` (see the module docstring for the layout).

    Arguments:
        dataset: items are dicts holding ``source_key`` (images ``(C, H, W)``, an int label, or caption
            strings) and ``target_key``: images ``(C, H, W)`` for Θ, or a flat code ``(D,)`` stored as it is (the
            latent of a synthetic pair ``(z, G(z))`` for a generator without an encoder, supplementary G.2, e.g.
            ``DCGANFaces`` items with ``target_key="z"``); an int ``"label"`` is stored when present.
        source: source expert Φ (``encode``); not stochastic.
        target: target expert Θ (``encode_dist`` or ``encode``); unused when ``target_key`` holds codes.
        out_dir: the cache folder; written to ``out_dir`` (shards first, ``manifest.json`` last, all atomically).
        source_key, target_key: which item entries the experts read.
        batch_size: examples per encoder call.
        shard_size: examples per shard file.
        metadata: extra JSON-serialisable entries for the manifest (e.g. fingerprints).
        progress: show a progress bar.
        device: where the experts run (they must already be there).

    Returns:
        ``out_dir``.
    """
    if getattr(source, "stochastic", False):
        raise ValueError(
            f"the source expert {type(source).__name__} is stochastic (random augmentation): it cannot be cached; "
            "encode it live (TranslationDataModule does this when the source is stochastic)"
        )
    if len(dataset) == 0:  # type: ignore[arg-type]
        raise ValueError("cannot cache an empty dataset")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=_collate)
    t0 = time.perf_counter()
    texts: dict[str, int] = {}  # distinct caption -> row of the source table
    rows_of: dict[tuple[str, ...], Tensor] = {}  # an item's captions -> their rows of the table
    buffers: dict[str, list[Tensor]] = {}
    n_done, shard_files = 0, list[str]()

    def flush(final: bool) -> None:
        nonlocal buffers
        while buffers and (sum(len(t) for t in buffers["z_tgt_mean"]) >= shard_size or final):
            tensors = {k: torch.cat(v) for k, v in buffers.items()}
            n = len(tensors["z_tgt_mean"])
            if n == 0:
                break
            take = min(n, shard_size)
            shard = {k: v[:take].contiguous() for k, v in tensors.items()}
            name = f"shard_{len(shard_files):05d}.safetensors"
            atomic_save_safetensors(shard, out / name)
            shard_files.append(name)
            buffers = {k: [v[take:]] for k, v in tensors.items()} if take < n else {}

    for batch in tqdm(loader, desc=f"encoding {out.name}", disable=not progress, unit="batch"):
        if source_key not in batch or target_key not in batch:
            raise ValueError(
                f"dataset items must hold {source_key!r} (source) and {target_key!r} (target); got keys {sorted(batch)}"
            )
        y = batch[target_key]
        if not isinstance(y, Tensor):
            raise TypeError(f"item[{target_key!r}] must be an image or code tensor, got {type(y).__name__}")
        if y.dim() == 2:
            # flat codes given by the data: synthetic pairs (z, G(z)) of a generator without an encoder (G.2)
            mean, std = y.float(), torch.zeros(y.shape, dtype=torch.float32)
        else:
            mean, std = encode_target(target, y.to(device))
        entry: dict[str, Tensor] = {"z_tgt_mean": mean, "z_tgt_std": std}
        x = batch[source_key]
        if isinstance(x, list) and _is_text(x[0]):
            # caption lists: index into a table of distinct captions; -1 pads examples with fewer captions
            # (items of a class share one caption tuple: its row of table indices is built once, not per item)
            keys = [(c,) if isinstance(c, str) else tuple(c) for c in x]
            for key in keys:
                if key not in rows_of:
                    rows_of[key] = torch.tensor([texts.setdefault(c, len(texts)) for c in key], dtype=torch.int32)
            width = max(len(k) for k in keys)
            index = torch.full((len(keys), width), -1, dtype=torch.int32)  # (B, most captions of an item)
            for i, key in enumerate(keys):
                index[i, : len(key)] = rows_of[key]
            entry["src_index"] = index
        else:
            entry["z_src"] = encode_source(source, x.to(device) if isinstance(x, Tensor) else x)
        if "label" in batch and isinstance(batch["label"], Tensor):
            entry["label"] = batch["label"].long()
        if buffers and set(entry) != set(buffers):
            raise ValueError(f"dataset items changed their keys mid-way: {sorted(entry)} vs {sorted(buffers)}")
        for k, v in entry.items():
            buffers.setdefault(k, []).append(v)
        n_done += len(mean)
        flush(final=False)
    flush(final=True)

    if texts:
        captions = sorted(texts, key=texts.__getitem__)
        table = torch.cat([encode_source(source, captions[i : i + batch_size])
                           for i in range(0, len(captions), batch_size)])  # fmt: skip
        atomic_save_safetensors({"src_table": table}, out / "src_table.safetensors")
    files = [*shard_files, *(["src_table.safetensors"] if texts else [])]
    manifest: dict[str, Any] = {
        "format": CACHE_FORMAT,
        "examples": n_done,
        "shards": shard_files,
        "source_key": source_key,
        "target_key": target_key,
        "seconds": round(time.perf_counter() - t0, 2),
        "files": {name: {"bytes": (out / name).stat().st_size, "sha256": file_digest(out / name)} for name in files},
        **dict(metadata or {}),
    }
    if texts:
        manifest["captions"] = captions
    with atomic_path(out / "manifest.json") as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    log.info("encoded %d examples into %s in %.1f s", n_done, out, manifest["seconds"])
    return out


_FIX = "re-encode it with `net2net encode CONFIG` (or delete the folder; training re-encodes what is missing)"


def _read_manifest(path: Path) -> dict[str, Any]:
    manifest_file = path / "manifest.json"
    if not manifest_file.is_file():
        raise FileNotFoundError(f"{path} is not a complete latent cache (no manifest.json); encode it with "
                                "`net2net encode`")  # fmt: skip
    try:
        manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{manifest_file}: not valid JSON ({e}); {_FIX}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ValueError(f"{manifest_file}: format {found!r}, expected {CACHE_FORMAT!r}; {_FIX}")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not shards or not all(isinstance(n, str) and "/" not in n for n in shards):
        raise ValueError(f"{manifest_file}: 'shards' must be a non-empty list of file names; {_FIX}")
    return manifest


def verify_cache(path: PathLike) -> list[str]:
    """What is wrong with a cache folder (an empty list when it is complete and intact).

    Checks the manifest, then every file it lists: present, of the recorded size and SHA-256 (caches written before
    digests were recorded: a readable safetensors header that fits the file).
    """
    path = Path(path)
    try:
        manifest = _read_manifest(path)
    except (FileNotFoundError, ValueError) as e:
        return [str(e)]
    files = manifest.get("files")
    names = [*manifest["shards"], *(["src_table.safetensors"] if "captions" in manifest else [])]
    problems = []
    for name in names:
        f = path / name
        if not f.is_file():
            problems.append(f"{f}: missing")
        elif isinstance(files, dict) and isinstance(files.get(name), dict):
            expected = files[name]
            size = f.stat().st_size
            if size != expected.get("bytes"):
                problems.append(f"{f}: {size} bytes, the manifest says {expected.get('bytes')}")
            elif file_digest(f) != expected.get("sha256"):
                problems.append(f"{f}: its SHA-256 differs from the manifest's (the file changed or is corrupt)")
        else:
            try:
                read_safetensors_metadata(f, "a latent-cache shard")
            except ValueError as e:
                problems.append(str(e))
    return problems


class LatentDataset(Dataset):
    """Training pairs ``{"z_src", "z_tgt"[, "label"]}`` read from a cache folder written by :func:`encode_dataset`.

    ``z_tgt`` is drawn from the stored Gaussian at every access; a text condition picks one of the example's
    captions at random. Indexing with an int returns one example; with a list or 1-d tensor of indices, a
    whole batch at once (use it with ``DataLoader(ds, sampler=BatchSampler(...), batch_size=None)``, which
    :meth:`loader` builds).

    Arguments:
        path: the cache folder (must hold ``manifest.json``).
        sample_target: draw ``mean + std * eps``; ``False`` returns the mean.
        condition_noise: standard deviation of Gaussian noise added to ``z_src`` at every access (0: none), a
            regulariser when there are few distinct conditions (e.g. 80 captions for 60k images).
    """

    def __init__(self, path: PathLike, sample_target: bool = True, condition_noise: float = 0.0) -> None:
        self.path = Path(path)
        problems = verify_cache(self.path)
        if problems:
            if not (self.path / "manifest.json").is_file():
                raise FileNotFoundError(problems[0])
            raise ValueError(f"latent cache {self.path} is damaged: {'; '.join(problems)}; {_FIX}")
        self.manifest = _read_manifest(self.path)
        shards = [load_safetensors(self.path / name, "a latent-cache shard", _FIX) for name in self.manifest["shards"]]
        keys = set(shards[0])
        if "z_tgt_mean" not in keys or "z_tgt_std" not in keys or any(set(s) != keys for s in shards):
            raise ValueError(f"{self.path}: the shards do not hold the same z_tgt_mean/z_tgt_std/... tensors; {_FIX}")
        try:
            self.tensors = {k: torch.cat([s[k] for s in shards]) for k in shards[0]}
        except RuntimeError as e:
            raise ValueError(f"{self.path}: the shards' tensors do not fit together ({e}); {_FIX}") from e
        lengths = {len(t) for t in self.tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"{self.path}: the cached tensors have different lengths {sorted(lengths)}; {_FIX}")
        self.src_table: Tensor | None = None
        if "src_index" in self.tensors:
            table = load_safetensors(self.path / "src_table.safetensors", "the caption table", _FIX)
            if "src_table" not in table:
                raise ValueError(f"{self.path / 'src_table.safetensors'}: no src_table tensor; {_FIX}")
            self.src_table = table["src_table"]
            index = self.tensors["src_index"]
            if index.numel() and int(index.max()) >= len(self.src_table):
                raise ValueError(f"{self.path}: caption indices beyond the caption table; {_FIX}")
            index = self.tensors["src_index"].long()
            self.n_choices = (index >= 0).sum(1)  # (N,) captions per example
            if bool((self.n_choices == 0).any()):
                raise ValueError(f"{self.path}: some examples have no caption")
        if condition_noise < 0:
            raise ValueError(f"condition_noise must be >= 0, got {condition_noise}")
        self.sample_target = sample_target
        self.condition_noise = float(condition_noise)

    def __len__(self) -> int:
        return len(self.tensors["z_tgt_mean"])

    @property
    def src_shape(self) -> tuple[int, ...]:
        """Shape of one condition ``z_src``."""
        if self.src_table is not None:
            return tuple(self.src_table.shape[1:])
        return tuple(self.tensors["z_src"].shape[1:])

    @property
    def tgt_dim(self) -> int:
        return int(self.tensors["z_tgt_mean"].shape[1])

    def __getitem__(self, index: int | Sequence[int] | Tensor) -> dict[str, Tensor]:
        single = isinstance(index, (int, np.integer))
        idx = torch.as_tensor([index] if single else index, dtype=torch.long)
        if idx.numel() and (int(idx.min()) < -len(self) or int(idx.max()) >= len(self)):
            raise IndexError(f"index out of range for a latent cache of {len(self)} examples")
        mean, std = self.tensors["z_tgt_mean"][idx], self.tensors["z_tgt_std"][idx]
        z_tgt = mean + std * torch.randn_like(mean) if self.sample_target else mean
        if self.src_table is not None:
            # pick one valid caption per example: uniform over the first n_choices columns
            pick = (torch.rand(len(idx)) * self.n_choices[idx]).long()  # (B,)
            rows = self.tensors["src_index"][idx, pick].long()
            z_src = self.src_table[rows]
        else:
            z_src = self.tensors["z_src"][idx]
        if self.condition_noise > 0:
            z_src = z_src + self.condition_noise * torch.randn_like(z_src)
        out = {"z_src": z_src, "z_tgt": z_tgt}
        if "label" in self.tensors:
            out["label"] = self.tensors["label"][idx]
        if single:
            return {k: v[0] for k, v in out.items()}
        return out

    def loader(self, batch_size: int, shuffle: bool = True, drop_last: bool = True,
               generator: torch.Generator | None = None) -> DataLoader:  # fmt: skip
        """A DataLoader fetching whole batches with one indexing call each (no per-item Python overhead)."""
        from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

        base = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        drop = drop_last and len(self) > batch_size
        return DataLoader(self, sampler=BatchSampler(base, batch_size, drop_last=drop), batch_size=None)

    def __repr__(self) -> str:
        return f"LatentDataset({str(self.path)!r}, n={len(self)}, src_shape={self.src_shape}, tgt_dim={self.tgt_dim})"
