"""What learns ``p(z_tgt | z_src)``: five translators behind one interface (:class:`Translator`).

========================  ===================================================================================
kind                      translator
========================  ===================================================================================
``cinn`` (default)        the paper's conditional INN (affine couplings), exact NLL
``mlp``                   the deterministic MLP of the paper's ablation (no likelihood, no residual)
``spline``                zuko's conditional neural spline flow, exact NLL
``flow_matching``         conditional flow matching, ODE sampling, likelihood by the change of variables
``linear``                linear-Gaussian, fitted in closed form: exact NLL, exact inverse
========================  ===================================================================================

Files: :func:`save_translator` writes safetensors whose metadata hold the ``kind`` (a name of the fixed registry
:data:`TRANSLATORS`) and the constructor arguments as JSON; :func:`load_translator` checks both against the
registry and the class's known arguments and never imports a name from the file. It also reads the two older
single-kind files: ``cinn.safetensors`` (:func:`net2net.flows.save_cinn`, as a ``cinn`` translator) and the
``mlp.safetensors`` of the former ``save_mlp`` (format ``net2net.MLPTranslator/1``).

Example:
    >>> t = build_translator("linear", dim=3, cond_dim=2)
    >>> t.config
    {'kind': 'linear', 'params': {'dim': 3, 'ridge': 1e-06, 'cond_dim': 2}}
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .interface import MissingCapability, Translator, gaussian_log_prob

__all__ = [
    "MLP_FORMAT_V1",
    "TRANSLATORS",
    "TRANSLATOR_FORMAT",
    "MissingCapability",
    "Translator",
    "build_translator",
    "gaussian_log_prob",
    "load_translator",
    "save_translator",
    "translator_class",
]

TRANSLATOR_FORMAT = "net2net.Translator/1"  # the "format" metadata entry of files written by save_translator
MLP_FORMAT_V1 = "net2net.MLPTranslator/1"  # mlp.safetensors of the former save_mlp: "config" = {target, params}
_MLP_TARGETS_V1 = ("net2net.training.mlp.MLPTranslator", "net2net.translators.mlp.MLPTranslator")  # compared only

# kind -> (module of this package, class): the only classes a config or a file can name
TRANSLATORS: dict[str, tuple[str, str]] = {
    "cinn": ("cinn", "CINNTranslator"),
    "mlp": ("mlp", "MLPTranslator"),
    "spline": ("spline", "SplineTranslator"),
    "flow_matching": ("flow_matching", "FlowMatchingTranslator"),
    "linear": ("linear", "LinearGaussianTranslator"),
}


def translator_class(kind: str) -> type[Translator]:
    """The class registered as ``kind`` (imported on first use: the spline flow needs ``zuko``)."""
    if kind not in TRANSLATORS:
        raise ValueError(f"unknown translator {kind!r}; expected one of {sorted(TRANSLATORS)}")
    module, name = TRANSLATORS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def build_translator(kind: str, **params: Any) -> Translator:
    """A new translator of ``kind`` with constructor arguments ``params`` (unknown ones are a ``TypeError``)."""
    cls = translator_class(kind)
    unknown = sorted(set(params) - cls.accepted_params())
    if unknown:
        raise TypeError(f"translator {kind!r}: unknown parameters {unknown}; expected some of "
                        f"{sorted(cls.accepted_params())}")  # fmt: skip
    return cls(**params)


def save_translator(translator: Translator, path: str | os.PathLike[str],
                    metadata: Mapping[str, str] | None = None) -> Path:  # fmt: skip
    """Write the translator's weights and buffers to safetensors, atomically, with its ``kind`` and parameters."""
    from ..io import atomic_save_safetensors

    if not isinstance(translator, Translator):
        raise TypeError(f"save_translator: expected a Translator, got {type(translator).__name__}")
    meta = {**dict(metadata or {}), "format": TRANSLATOR_FORMAT, "kind": translator.kind,
            "params": json.dumps(translator.params)}  # fmt: skip
    return atomic_save_safetensors(translator.state_dict(), path, metadata=meta)


def _kind_and_params(meta: Mapping[str, str], path: Path) -> tuple[str, dict[str, Any]]:
    """The registry kind and the constructor arguments in a file's metadata (JSON only, nothing imported)."""
    fmt = meta.get("format")
    if fmt == MLP_FORMAT_V1:
        try:
            config = json.loads(meta.get("config", ""))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: the MLP translator config is not valid JSON: {err}") from err
        target = config.get("target") if isinstance(config, dict) else None
        if target not in _MLP_TARGETS_V1:
            raise ValueError(f"{path}: config target {target!r}, expected {_MLP_TARGETS_V1[0]!r}")
        kind, params = "mlp", config.get("params", {})
    elif fmt == TRANSLATOR_FORMAT:
        kind = meta.get("kind", "")
        if kind not in TRANSLATORS:
            raise ValueError(f"{path}: translator kind {kind!r} is not one of {sorted(TRANSLATORS)}")
        try:
            params = json.loads(meta.get("params", ""))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: the translator parameters are not valid JSON: {err}") from err
    else:
        raise ValueError(f"{path}: format {fmt!r}, expected {TRANSLATOR_FORMAT!r} (a file from save_translator)")
    if not isinstance(params, dict):
        raise ValueError(f"{path}: the translator parameters must be a JSON object, got {type(params).__name__}")
    return kind, params


def load_translator(path: str | os.PathLike[str]) -> Translator:
    """Rebuild a translator written by :func:`save_translator`, in eval mode (safetensors and JSON only).

    Also reads ``cinn.safetensors`` files of :func:`net2net.flows.save_cinn` (a ``cinn`` translator, checked by
    :func:`net2net.flows.load_cinn`) and ``mlp.safetensors`` files of the former ``save_mlp``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: not a translator file, an unknown kind or parameter, or weights that do not fit.
    """
    from ..flows.weights import CINN_FORMATS, load_cinn
    from ..io import load_safetensors, read_safetensors_metadata

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no translator weights at {path}")
    fix = "train the run again or copy the file again"
    meta = read_safetensors_metadata(path, "the translator weights", fix)
    if meta.get("format") in CINN_FORMATS:
        tau = load_cinn(path)
        translator = build_translator("cinn", **tau.config)
        translator.tau.load_state_dict(tau.state_dict(), strict=True)  # type: ignore[union-attr]
        return translator.eval()
    kind, params = _kind_and_params(meta, path)
    try:
        translator = build_translator(kind, **params)
    except TypeError as err:
        raise ValueError(f"{path}: {err}") from err
    try:
        translator.load_state_dict(load_safetensors(path, "the translator weights", fix), strict=True)
    except RuntimeError as err:  # missing or unexpected keys, or a size mismatch
        raise ValueError(f"{path}: the weights do not fit the {kind!r} translator of its parameters: {err}") from err
    return translator.eval()
