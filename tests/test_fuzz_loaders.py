"""Fuzzing the two loaders that read files from elsewhere: ``load_cinn`` and the latent-cache reader.

Random bytes, truncations, flipped bytes and arbitrary JSON in the metadata or the manifest: the only outcome
allowed is a clear error (``ValueError`` / ``FileNotFoundError`` naming the file) or, for an intact file, a model.
The default run tries a few dozen cases per loader; ``-m slow`` runs each for about half a minute.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from net2net.data.latent_cache import LatentDataset, encode_dataset
from net2net.experts.label import LabelEncoder
from net2net.flows import ConditionalINN, load_cinn, save_cinn
from net2net.io import read_safetensors_metadata

TINY = {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "embedding_dim": 4}
QUICK = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
LONG_SECONDS = 30.0  # per loader in the slow run

_DIR = Path(tempfile.mkdtemp(prefix="net2net-fuzz-"))
GOOD_CINN = save_cinn(ConditionalINN(**TINY), _DIR / "cinn.safetensors")


class _Codes(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 24

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"label": i % 3, "z": torch.full((4,), float(i))}


GOOD_CACHE = encode_dataset(_Codes(), LabelEncoder(3), None, _DIR / "cache", source_key="label", target_key="z",
                            shard_size=10, progress=False)  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
cinn_field = st.sampled_from([*TINY, "cond_shape", "alpha", "seed", "hidden_depth", "target", "params"])


def _damage(data: bytes, how: str, where: int, byte: int) -> bytes:
    if how == "truncate":
        return data[: where % max(len(data), 1)]
    if how == "flip":
        i = where % len(data)
        return data[:i] + bytes([data[i] ^ (byte or 1)]) + data[i + 1 :]
    return bytes([byte]) * (where % 200) + data[where % 50 :]  # garbage in front


damages = st.tuples(st.sampled_from(["truncate", "flip", "prefix"]), st.integers(0, 10**6), st.integers(0, 255))


def _check_cinn(tmp: Path, data: bytes) -> None:
    path = tmp / "x.safetensors"
    path.write_bytes(data)
    try:
        tau = load_cinn(path)
    except ValueError as e:
        assert str(path) in str(e)
    else:
        assert isinstance(tau, ConditionalINN)


def _cinn_cases(random: bytes, damage: tuple[str, int, int], field: str, value: Any) -> None:
    tmp = Path(tempfile.mkdtemp(dir=_DIR))
    _check_cinn(tmp, random)
    _check_cinn(tmp, _damage(GOOD_CINN.read_bytes(), *damage))
    meta = read_safetensors_metadata(GOOD_CINN)
    config = {**json.loads(meta["config"]), field: value}
    for fmt, key, text in (("net2net.ConditionalINN/2", "config", json.dumps(config)),
                           ("net2net.ConditionalINN/1", "flow_config", json.dumps({"target": value, "params": config})),
                           ("net2net.ConditionalINN/2", "config", json.dumps(value))):  # fmt: skip
        save_file(load_file(str(GOOD_CINN)), str(tmp / "m.safetensors"), metadata={**meta, "format": fmt, key: text})
        _check_cinn(tmp, (tmp / "m.safetensors").read_bytes())
    shutil.rmtree(tmp)


def _check_cache(path: Path) -> None:
    try:
        ds = LatentDataset(path)
    except (ValueError, FileNotFoundError) as e:
        assert str(path) in str(e)
    else:
        assert len(ds) > 0 and ds[0]["z_tgt"].shape == (4,)


def _cache_cases(random: bytes, damage: tuple[str, int, int], shard: int, manifest: Any) -> None:
    tmp = Path(tempfile.mkdtemp(dir=_DIR)) / "cache"
    shutil.copytree(GOOD_CACHE, tmp)
    name = json.loads((tmp / "manifest.json").read_text())["shards"][shard % 3]
    (tmp / name).write_bytes(random)
    _check_cache(tmp)
    (tmp / name).write_bytes(_damage((GOOD_CACHE / name).read_bytes(), *damage))
    _check_cache(tmp)
    shutil.copy(GOOD_CACHE / name, tmp / name)
    (tmp / "manifest.json").write_bytes(_damage((GOOD_CACHE / "manifest.json").read_bytes(), *damage))
    _check_cache(tmp)
    good = json.loads((GOOD_CACHE / "manifest.json").read_text())
    for changed in (manifest, {**good, "shards": manifest}, {**good, "files": manifest}):
        (tmp / "manifest.json").write_text(json.dumps(changed))
        _check_cache(tmp)
    shutil.rmtree(tmp.parent)


_cinn_args = (st.binary(max_size=400), damages, cinn_field, json_values)
_cache_args = (st.binary(max_size=400), damages, st.integers(0, 2), json_values)


@QUICK
@given(*_cinn_args)
def test_fuzz_load_cinn(random: bytes, damage: tuple[str, int, int], field: str, value: Any) -> None:
    _cinn_cases(random, damage, field, value)


@QUICK
@given(*_cache_args)
def test_fuzz_latent_cache(random: bytes, damage: tuple[str, int, int], shard: int, manifest: Any) -> None:
    _cache_cases(random, damage, shard, manifest)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["cinn", "cache"])
def test_fuzz_loaders_for_half_a_minute_each(which: str) -> None:
    cases, args = (_cinn_cases, _cinn_args) if which == "cinn" else (_cache_cases, _cache_args)
    count = 0

    @QUICK
    @given(st.tuples(*args))
    def fuzz(values: tuple[Any, ...]) -> None:
        nonlocal count
        cases(*values)
        count += 1

    end = time.monotonic() + LONG_SECONDS
    while time.monotonic() < end:  # rounds of QUICK.max_examples fresh random cases
        fuzz()
    assert count >= QUICK.max_examples
