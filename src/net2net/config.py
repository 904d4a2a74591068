r"""YAML configurations and the ``target``/``params`` instantiation convention.

Configurations follow the CompVis convention: a block that describes an object has a ``target``
key, the import path of a class or function, and an optional ``params`` mapping of keyword
arguments for it.

.. code-block:: yaml

    model:
      target: net2net.flows.ConditionalINN
      params:
        dim: 128
        cond_dim: 128
        n_blocks: 20

This module depends only on OmegaConf (and the YAML parser it ships with) and the standard library.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = ["load_config", "get_obj_from_str", "instantiate_from_config"]

PathLike = Union[str, os.PathLike[str]]  # a file path


def _load_one(path: PathLike) -> DictConfig:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"config file not found: '{p}'")
    with open(p, encoding="utf-8") as f:  # genuine I/O errors (directory, permissions) propagate as they are
        try:
            cfg = OmegaConf.load(f)
        except yaml.YAMLError as e:
            raise ValueError(f"invalid YAML in config file '{p}':\n{e}") from e
        except OSError as e:  # OmegaConf's way of rejecting a top-level scalar
            raise ValueError(f"config file '{p}' must hold a mapping at the top level ({e})") from e
    if not isinstance(cfg, DictConfig):
        raise ValueError(f"config file '{p}' must hold a mapping at the top level, got a {type(cfg).__name__}")
    return cfg


def _parse_override(override: str) -> DictConfig:
    if not isinstance(override, str) or "=" not in override:
        raise ValueError(f"malformed override {override!r}: expected the form key.path=value")
    key = override.split("=", 1)[0].strip()
    if not key or any(not part for part in key.split(".")):
        raise ValueError(f"malformed override {override!r}: expected the form key.path=value with a non-empty key")
    try:
        return OmegaConf.from_dotlist([override])
    except (yaml.YAMLError, OmegaConfBaseException) as e:
        raise ValueError(f"malformed override {override!r}: cannot parse the value ({e})") from e


def load_config(path: PathLike | Sequence[PathLike], overrides: Sequence[str] = ()) -> DictConfig:
    r"""Loads a YAML configuration and applies command-line style overrides.

    Several files are merged in order, later files winning, like ``--base a.yaml b.yaml`` in the
    CompVis scripts. Overrides are then merged one by one; their values are parsed as YAML, so
    ``3`` is an int, ``1e-3`` a float, ``true`` a bool and ``[1,2]`` a list. Overrides may add
    new keys. Interpolations (``${...}``) are left unresolved.

    Arguments:
        path: A YAML file, or a sequence of YAML files to merge in order.
        overrides: Dotlist overrides of the form ``key.path=value``.

    Returns:
        The merged configuration.

    Raises:
        FileNotFoundError: If a file does not exist.
        ValueError: If a file is not valid YAML or not a mapping, or an override is malformed.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "cfg.yaml"
        >>> _ = f.write_text("model:\n  params:\n    n_blocks: 2\n")
        >>> cfg = load_config(f, ["model.params.n_blocks=4", "lr=1e-3"])
        >>> cfg.model.params.n_blocks, cfg.lr
        (4, 0.001)
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("load_config: no config file given")
    if isinstance(overrides, str):  # a lone string would be iterated character by character
        overrides = [overrides]

    cfg = OmegaConf.create()
    for p in paths:
        try:
            cfg = OmegaConf.merge(cfg, _load_one(p))
        except OmegaConfBaseException as e:
            raise ValueError(f"cannot merge config file '{p}': {e}") from e
    for override in overrides:
        parsed = _parse_override(override)
        try:
            cfg = OmegaConf.merge(cfg, parsed)
        except OmegaConfBaseException as e:
            raise ValueError(f"cannot apply override {override!r}: {e}") from e
    assert isinstance(cfg, DictConfig)
    return cfg


def _is_missing(err: ModuleNotFoundError, module: str) -> bool:
    """Whether ``err`` says that ``module`` itself (or one of its parents) does not exist."""
    return err.name is not None and (module == err.name or module.startswith(err.name + "."))


def get_obj_from_str(name: str) -> Any:
    r"""Imports an object from its dotted path ``package.module.attr``.

    The longest importable module prefix is imported and the remaining parts are looked up as
    attributes, so nested attributes such as ``package.module.Class.method`` work too. Errors
    raised while importing a module that exists (including a missing dependency of it) are not
    caught.

    Arguments:
        name: The dotted import path.

    Returns:
        The object.

    Raises:
        ValueError: If the path is malformed, its top-level module does not exist or an attribute
            is missing.

    Example:
        >>> get_obj_from_str("fractions.Fraction")(3, 6)
        Fraction(1, 2)
    """
    if not isinstance(name, str):
        raise ValueError(f"expected an import path 'package.module.attr', got {name!r}")
    parts = name.split(".")
    if len(parts) < 2 or any(not part for part in parts):
        raise ValueError(f"malformed import path {name!r}: expected 'package.module.attr'")

    module = None
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if _is_missing(e, module_name):
                continue
            raise
        break
    if module is None:
        raise ValueError(f"cannot import {name!r}: no module named {parts[0]!r}")

    obj: Any = module
    for j in range(i, len(parts)):
        try:
            obj = getattr(obj, parts[j])
        except AttributeError:
            owner = ".".join(parts[:j])
            kind = "module" if inspect.ismodule(obj) else "object"
            raise ValueError(f"cannot import {name!r}: {kind} {owner!r} has no attribute {parts[j]!r}") from None
    return obj


def _to_plain(obj: Any) -> Any:
    """Converts OmegaConf containers (at any depth) to plain dicts and lists, resolving interpolations."""
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


def _accepted(obj: Any) -> tuple[inspect.Signature | None, str]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # builtins without a signature
        return None, ""
    names = []
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            names.append(f"*{p.name}")
        elif p.kind is p.VAR_KEYWORD:
            names.append(f"**{p.name}")
        elif p.kind is not p.POSITIONAL_ONLY:
            names.append(p.name if p.default is p.empty else f"{p.name}={p.default!r}")
    return sig, "; accepted parameters: " + (", ".join(names) if names else "(none)")


def _bind_problem(sig: inspect.Signature, kwargs: Mapping[str, Any], err: TypeError) -> str:
    """Names every unexpected and missing keyword, not only the first one ``Signature.bind`` reports."""
    params = sig.parameters.values()
    keywords = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    problems = []
    if not any(p.kind is p.VAR_KEYWORD for p in params):
        unexpected = [k for k in kwargs if k not in keywords]
        if unexpected:
            problems.append("unexpected parameter(s) " + ", ".join(repr(k) for k in unexpected))
    missing = [
        p.name
        for p in params
        if p.default is p.empty and p.name not in kwargs and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if missing:
        problems.append("missing required parameter(s) " + ", ".join(repr(k) for k in missing))
    return "; ".join(problems) if problems else str(err)


def instantiate_from_config(config: Mapping[str, Any], key: str = "<root>") -> Any:
    r"""Instantiates the object described by a ``target``/``params`` block.

    Calls ``get_obj_from_str(config["target"])(**config["params"])`` (``params`` may be absent or
    null). DictConfig parameters are converted to plain containers with interpolations resolved,
    so the callee receives dicts and lists, not OmegaConf objects. Other keys next to ``target``
    and ``params`` are ignored.

    Nested blocks such as ``first_stage_config`` inside ``params`` are *not* instantiated here:
    as in the CompVis code, the callee receives them as dicts and calls
    :func:`instantiate_from_config` on them itself (passing a ``key`` gives better errors).

    Arguments:
        config: A mapping (dict or DictConfig) with a ``target`` and optional ``params``.
        key: The path of the block in the configuration, used in error messages.

    Returns:
        The result of calling the target with the parameters.

    Raises:
        ValueError: If ``target`` is missing or cannot be imported, or ``params`` is not a mapping.
        TypeError: If ``config`` is not a mapping, or the target rejects the parameters. The
            message names ``key``, the target, the original error and the accepted parameters.

    Example:
        >>> cfg = {"target": "torch.nn.Linear", "params": {"in_features": 3, "out_features": 2}}
        >>> instantiate_from_config(cfg)
        Linear(in_features=3, out_features=2, bias=True)
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"{key}: expected a mapping with a 'target' key, got {type(config).__name__}")
    if "target" not in config:
        found = ", ".join(repr(k) for k in config) or "none"
        raise ValueError(f"{key}: expected a 'target' key naming a class or function to instantiate (keys: {found})")
    target = config["target"]
    if not isinstance(target, str) or not target:
        raise ValueError(f"{key}: 'target' must be a non-empty import path string, got {target!r}")
    try:
        obj = get_obj_from_str(target)
    except ValueError as e:
        raise ValueError(f"{key}: unknown target {target!r}: {e}") from e
    if not callable(obj):
        raise ValueError(f"{key}: target {target!r} is not callable (got {type(obj).__name__})")

    params = config.get("params")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError(f"{key}.params: expected a mapping of keyword arguments, got {type(params).__name__}")
    try:
        kwargs = _to_plain(params)
    except OmegaConfBaseException as e:
        raise ValueError(f"{key}.params: cannot resolve the parameters: {e}") from e
    bad = [k for k in kwargs if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{key}.params: parameter names must be strings, got {bad!r}")

    sig, accepted = _accepted(obj)
    if sig is not None:
        try:
            sig.bind(**kwargs)
        except TypeError as e:
            problem = _bind_problem(sig, kwargs, e)
            raise TypeError(f"{key}: invalid params for target {target!r}: {problem}{accepted}") from None
    try:
        return obj(**kwargs)
    except TypeError as e:
        raise TypeError(f"{key}: calling target {target!r} failed: {e}{accepted}") from e
    except Exception as e:
        if hasattr(e, "add_note"):  # Python >= 3.11
            e.add_note(f"while instantiating {key} (target {target!r})")
        raise
