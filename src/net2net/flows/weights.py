"""The cINN's weights file: safetensors with the constructor arguments as checked JSON metadata (never an import path).

``save_cinn`` writes τ's weights and buffers (ActNorm state included) with :attr:`ConditionalINN.config`;
``load_cinn`` rebuilds it after checking the metadata against the constructor's signature and the tensor shapes,
so an untrusted file can neither run code nor ask for a network larger than the file. Torch and safetensors only.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..io import atomic_save_safetensors, load_safetensors, read_safetensors_metadata, read_safetensors_shapes
from .cinn import ConditionalINN

__all__ = ["CINN_FORMAT", "CINN_FORMATS", "cinn_params_from_metadata", "load_cinn", "save_cinn"]

CINN_FORMAT = "net2net.ConditionalINN/2"  # the "format" metadata entry of cinn.safetensors; "config": its arguments
_CINN_FORMAT_V1 = "net2net.ConditionalINN/1"  # older files: "flow_config", a target/params block (still read)
CINN_FORMATS = (CINN_FORMAT, _CINN_FORMAT_V1)  # every format load_cinn reads
_CINN_TARGETS = ("net2net.flows.ConditionalINN", "net2net.flows.cinn.ConditionalINN")


def save_cinn(tau: ConditionalINN, path: str | os.PathLike[str], metadata: Mapping[str, str] | None = None) -> Path:
    """Write τ's weights and buffers (ActNorm state included) to a safetensors file, atomically, with the constructor
    arguments that rebuild it (:attr:`ConditionalINN.config`) in the metadata: numbers, never an import path."""
    if type(tau) is not ConditionalINN:  # a subclass would be rebuilt as the base class
        raise TypeError(f"save_cinn: expected a ConditionalINN, got {type(tau).__name__}")
    if isinstance(path, Mapping):
        raise TypeError("save_cinn(tau, path, metadata): the flow config is no longer passed, the model carries it "
                        "(tau.config)")  # fmt: skip
    meta = {**dict(metadata or {}), "format": CINN_FORMAT, "config": json.dumps(tau.config)}
    return atomic_save_safetensors(tau.state_dict(), path, metadata=meta)


def _json_number_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def cinn_params_from_metadata(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    """The constructor arguments of the cINN in a file's metadata, checked against :class:`ConditionalINN`'s
    signature: known names only, numbers (or lists of ints, or null) only. Files of format 1 name the class in a
    ``flow_config`` ``target``; only ConditionalINN itself is accepted, nothing is imported."""
    fmt = meta.get("format")
    try:
        if fmt == CINN_FORMAT:
            params = json.loads(meta["config"])
        elif fmt == _CINN_FORMAT_V1:
            block = json.loads(meta["flow_config"])
            if not isinstance(block, dict) or block.get("target") not in _CINN_TARGETS:
                target = block.get("target") if isinstance(block, dict) else block
                raise ValueError(f"{path}: flow_config names {target!r}; a cINN file may only describe "
                                 "net2net.flows.ConditionalINN (nothing else is imported from a weights file)")
            params = block.get("params") or {}
        else:
            raise ValueError(f"{path}: format {fmt!r}, expected {CINN_FORMAT!r} (a file from save_cinn)")
    except (KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: the {fmt!r} metadata is incomplete or not JSON ({e})") from e
    if not isinstance(params, dict):
        raise ValueError(f"{path}: the cINN config must be a JSON object, got {type(params).__name__}")
    known = inspect.signature(ConditionalINN).parameters
    for name, value in params.items():
        if name not in known:
            raise ValueError(f"{path}: unknown cINN field {name!r}; known: {', '.join(known)}")
        scalar = value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                   and math.isfinite(value))  # fmt: skip
        if not (scalar or _json_number_list(value)):
            raise ValueError(f"{path}: cINN field {name!r} must be a finite number, a list of ints or null, "
                             f"got {value!r}")
    return params


def load_cinn(path: str | os.PathLike[str]) -> ConditionalINN:
    """Rebuild a cINN written by :func:`save_cinn`, in eval mode.

    Safe on untrusted files: safetensors holds only tensors and strings, the metadata is read as JSON and checked
    against a schema of known fields (:func:`cinn_params_from_metadata`), and the network is built directly
    (no import path from the file is ever imported or called).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is truncated or corrupt, not a cINN file, or its config or weights do not fit.
    """
    path = Path(path)
    fix = "retrain the run or copy the file again"
    meta = read_safetensors_metadata(path, "the cINN weights", fix)
    params = cinn_params_from_metadata(meta, path)
    shapes = read_safetensors_shapes(path, "the cINN weights", fix)
    # bound the sizes by what the file holds before building anything (a header could ask for a 10^12-wide net)
    largest = max((math.prod(s) for s in shapes.values()), default=0)
    for name, value in params.items():
        values = value if isinstance(value, list) else [value]
        limit = len(shapes) if name.endswith(("blocks", "depth")) else largest
        if name not in ("alpha", "seed") and any(isinstance(v, int) and not 0 <= v <= max(limit, 1) for v in values):
            raise ValueError(f"{path}: cINN field {name}={value!r} does not fit the {len(shapes)} tensors in the file")
    try:
        with torch.device("meta"):  # shapes only, no memory
            tau = ConditionalINN(**params)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{path}: its cINN config does not build a network: {e}") from e
    expected = {k: tuple(v.shape) for k, v in tau.state_dict().items()}
    if expected != shapes:
        diff = sorted(set(expected) ^ set(shapes)) or [k for k in expected if expected[k] != shapes[k]]
        raise ValueError(f"{path}: the weights do not fit the cINN of its config (first differences: {diff[:3]})")
    # every parameter and buffer is in the file (checked above): the file's tensors replace the meta ones, without
    # building the network a second time with a random initialisation that would be overwritten (nor to_empty,
    # whose meta empty_like imports sympy: issue 17)
    dtypes = {k: v.dtype for k, v in tau.state_dict().items()}
    weights = {k: w.to(dtypes.get(k, w.dtype)) for k, w in load_safetensors(path, "the cINN weights", fix).items()}
    tau.load_state_dict(weights, strict=True, assign=True)  # cast to the network's dtypes, as a copy would
    return tau.eval()
