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

A ``target`` is an import path, so a config is code: loading one imports the modules it names and calls
what it names. A config the user passes (``net2net train CONFIG``) is the user's own code, like a Python file.
A config that comes with someone else's run folder is not: :func:`trusted_modules` restricts every import
made through :func:`get_obj_from_str` (and so :func:`instantiate_from_config`, at any depth) to ``net2net``
and the modules the user allows; ``Net2Net.from_run`` and ``net2net translate`` load run folders this way
(see docs/security.md).

This module depends only on OmegaConf (and the YAML parser it ships with) and the standard library.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.resources
import inspect
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from omegaconf import Container, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

__all__ = [
    "MOVED_TARGETS",
    "ConfigError",
    "UntrustedTargetError",
    "get_obj_from_str",
    "instantiate",
    "instantiate_from_config",
    "load_config",
    "moved_target",
    "nearest",
    "resolve_run_paths",
    "shipped_config",
    "trusted_modules",
]

PathLike = str | os.PathLike[str]  # a file path


class ConfigError(ValueError):
    """A configuration cannot be loaded or instantiated; the message names the config key."""


class UntrustedTargetError(ConfigError):
    """A config names an import path outside ``net2net`` and the modules the user trusts."""


# None: every import path is allowed (a config the user wrote); a tuple: only net2net and these module prefixes
_TRUSTED: ContextVar[tuple[str, ...] | None] = ContextVar("net2net_trusted_modules", default=None)
PACKAGE = "net2net"

# Import paths that moved, old -> new: configs and run folders written before a move keep loading. A key names a
# module or an object; a path under a key (``old.module.Name`` for the key ``old.module``) moves with it.
MOVED_TARGETS: dict[str, str] = {
    # experts: file names that said what they hold (issue 13)
    "net2net.experts.base": "net2net.experts.protocols",
    "net2net.experts.encoder": "net2net.experts.encoder_source",
    "net2net.experts.classifier.ClassifierModule": "net2net.training.classifier_module.ClassifierModule",
    "net2net.experts.classifier.augment_batch": "net2net.training.classifier_module.augment_batch",
    # issue 13: one LightningModule file for the translators; the cINN's weights file next to the model
    "net2net.training.cinn.CINNModule": "net2net.training.translator.CINNModule",
    "net2net.training.cinn.save_cinn": "net2net.flows.weights.save_cinn",
    "net2net.training.cinn.load_cinn": "net2net.flows.weights.load_cinn",
    "net2net.training.mlp.MLPTranslatorModule": "net2net.training.translator.TranslatorModule.from_translator_config",
    "net2net.training.mlp.MLPTranslator": "net2net.translators.mlp.MLPTranslator",
    "net2net.training.autoencoder.AutoencoderModule": "net2net.training.autoencoder_module.AutoencoderModule",
    "net2net.flows.base.InvertibleModule": "net2net.flows.invertible.InvertibleModule",
    "net2net.flows.base.SequentialFlow": "net2net.flows.invertible.SequentialFlow",
    "net2net.data.embeddings.EmbeddingDataModule": "net2net.training.datamodule.EmbeddingDataModule",  # data/: no Lightning
}


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in prefixes)


@contextlib.contextmanager
def trusted_modules(allow: Iterable[str] = ()) -> Iterator[tuple[str, ...]]:
    r"""Within the block, import paths of configs may only name ``net2net`` and the modules in ``allow``.

    Every import made through :func:`get_obj_from_str` checks the policy *before* importing anything: the
    path must lie in ``net2net`` or an allowed module (``"mypkg"`` allows ``mypkg.models.Expert``), and the
    object it reaches must be defined there too (so ``net2net.config.os.system`` is refused). This is how a
    run folder made by someone else is loaded (``Net2Net.from_run``, ``net2net translate``).

    Arguments:
        allow: module names the user trusts besides ``net2net``.

    Example:
        >>> with trusted_modules():
        ...     get_obj_from_str("os.system")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        net2net.config.UntrustedTargetError: refusing to import 'os.system': ...
    """
    allowed = tuple(allow)
    for m in allowed:
        if not isinstance(m, str) or not m or any(not part.isidentifier() for part in m.split(".")):
            raise ValueError(f"trusted module names must be dotted Python module names, got {m!r}")
    token = _TRUSTED.set((PACKAGE, *allowed))
    try:
        yield (PACKAGE, *allowed)
    finally:
        _TRUSTED.reset(token)


def _check_trusted(name: str, obj: Any = None) -> None:
    allowed = _TRUSTED.get()
    if allowed is None:
        return
    hint = (
        "a run folder's config is code: allow a module you trust with --trust MODULE (trust=[...] in "
        "Net2Net.from_run), or everything with trust_config=True"
    )
    if not _within(name, allowed):
        raise UntrustedTargetError(
            f"refusing to import {name!r}: it is outside {', '.join(allowed)} ({hint})"
        )
    if obj is not None:
        module = getattr(obj, "__name__", None) if inspect.ismodule(obj) else getattr(obj, "__module__", None)
        if not isinstance(module, str) or not _within(module, allowed):
            raise UntrustedTargetError(
                f"refusing {name!r}: it resolves to an object of module {module!r}, outside {', '.join(allowed)} "
                f"({hint})"
            )


def nearest(name: str, candidates: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest candidate to a misspelt ``name``, else ``""``."""
    match = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


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


def load_config(
    path: PathLike | Mapping[str, Any] | Sequence[PathLike | Mapping[str, Any]], overrides: Sequence[str] = ()
) -> DictConfig:
    r"""Loads a YAML configuration and applies command-line style overrides.

    Several files are merged in order, later files winning, like ``--base a.yaml b.yaml`` in the
    CompVis scripts. Overrides are then merged one by one; their values are parsed as YAML, so
    ``3`` is an int, ``1e-3`` a float, ``true`` a bool and ``[1,2]`` a list. Overrides may add
    new keys. Interpolations (``${...}``) are left unresolved.

    Arguments:
        path: A YAML file or a mapping (a ``dict`` or ``DictConfig``, copied), or a sequence of them to merge in
            order.
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
    paths = [path] if isinstance(path, (str, os.PathLike, Mapping)) else list(path)
    if not paths:
        raise ValueError("load_config: no config file given")
    if isinstance(overrides, str):  # a lone string would be iterated character by character
        overrides = [overrides]

    cfg: Container = OmegaConf.create()  # merge() is typed as returning any container; a DictConfig here
    for p in paths:
        try:
            if isinstance(p, Mapping):
                cfg = OmegaConf.merge(cfg, OmegaConf.create(p if isinstance(p, DictConfig) else dict(p)))
            else:
                cfg = OmegaConf.merge(cfg, _load_one(p))
        except OmegaConfBaseException as e:
            what = "config mapping" if isinstance(p, Mapping) else f"config file '{p}'"
            raise ValueError(f"cannot merge {what}: {e}") from e
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


def moved_target(name: str) -> str:
    """The current import path of ``name``: itself, or where :data:`MOVED_TARGETS` says it (or a module above it)
    moved to.

    Example:
        >>> moved_target("net2net.experts.base.FrozenExpert")
        'net2net.experts.protocols.FrozenExpert'
    """
    parts = name.split(".")
    for i in range(len(parts), 1, -1):  # the longest moved prefix wins
        new = MOVED_TARGETS.get(".".join(parts[:i]))
        if new is not None:
            return ".".join([new, *parts[i:]])
    return name


def get_obj_from_str(name: str) -> Any:
    r"""Imports an object from its dotted path ``package.module.attr``.

    The longest importable module prefix is imported and the remaining parts are looked up as
    attributes, so nested attributes such as ``package.module.Class.method`` work too. A path that moved is
    read at its new place (:data:`MOVED_TARGETS`, :func:`moved_target`). Errors
    raised while importing a module that exists (including a missing dependency of it) are not
    caught.

    Arguments:
        name: The dotted import path.

    Returns:
        The object.

    A name in :data:`MOVED_TARGETS` (where a class or function lived before it moved) imports its new name.

    Raises:
        ValueError: If the path is malformed, its top-level module does not exist or an attribute
            is missing.
        UntrustedTargetError: Inside :func:`trusted_modules`, if the path or the object it reaches lies
            outside the trusted modules (checked before importing).

    Example:
        >>> get_obj_from_str("fractions.Fraction")(3, 6)
        Fraction(1, 2)
    """
    if not isinstance(name, str):
        raise ValueError(f"expected an import path 'package.module.attr', got {name!r}")
    name = MOVED_TARGETS.get(name, name)  # a name from before a move (configs and run folders on disk)
    parts = name.split(".")
    if len(parts) < 2 or any(not part for part in parts):
        raise ValueError(f"malformed import path {name!r}: expected 'package.module.attr'")
    name = moved_target(name)
    parts = name.split(".")
    _check_trusted(name)  # before importing anything

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
    _check_trusted(name, obj)
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
            problems.append("unexpected parameter(s) " + ", ".join(repr(k) + nearest(k, keywords) for k in unexpected))
    missing = [
        p.name
        for p in params
        if p.default is p.empty and p.name not in kwargs and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if missing:
        problems.append("missing required parameter(s) " + ", ".join(repr(k) for k in missing))
    return "; ".join(problems) if problems else str(err)


_MAPPING_WORDS = ("Mapping", "MutableMapping", "dict", "Dict", "DictConfig", "Any")


def _takes_block(sig: inspect.Signature | None, name: str) -> bool:
    """Whether the callee declares parameter ``name`` as taking a config mapping (it instantiates it itself)."""
    if sig is None or name not in sig.parameters:
        return True  # **kwargs or no signature: pass blocks on as they are (the CompVis convention)
    annotation = sig.parameters[name].annotation
    if annotation is inspect.Parameter.empty or name.endswith("_config"):
        return True
    return _admits_mapping(annotation if isinstance(annotation, str) else repr(annotation))


def _admits_mapping(text: str) -> bool:
    """Whether a type annotation's text has a mapping (or ``Any``) among its top-level union members."""
    members, depth, start = [], 0, 0  # "A | B[C, D] | None" or the arguments of Union[...] / Optional[...]
    for i, ch in enumerate(text + "|"):
        depth += ch == "["
        depth -= ch == "]"
        if ch in "|," and depth == 0:
            members.append(text[start:i].strip())
            start = i + 1
    for member in members:
        head = member.split("[")[0].split(".")[-1]  # "typing.Mapping[str, Any]" -> "Mapping"
        if head in ("Optional", "Union") and "[" in member:
            if _admits_mapping(member[member.index("[") + 1 : member.rindex("]")]):
                return True
        elif head in _MAPPING_WORDS:
            return True
    return False


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping) and "target" in value and set(value) <= {"target", "params"}


def instantiate_from_config(config: Mapping[str, Any], key: str = "<root>") -> Any:
    r"""Instantiates the object described by a ``target``/``params`` block.

    Calls ``get_obj_from_str(config["target"])(**config["params"])`` (``params`` may be absent or
    null). DictConfig parameters are converted to plain containers with interpolations resolved,
    so the callee receives dicts and lists, not OmegaConf objects. Other keys next to ``target``
    and ``params`` are errors (a misspelt ``parms`` would otherwise be ignored).

    Nested blocks (a mapping with only ``target`` and ``params``) given for a parameter that the callee
    declares with a type that is not a mapping, e.g. ``LayerExpert(model: nn.Module)`` with
    ``model: {target: ..., params: ...}``, are instantiated first, recursively. Blocks for parameters named
    ``*_config``, declared as a ``Mapping``/``dict``/``Any`` or not annotated are passed on as dicts: as in the
    CompVis code, such a callee calls :func:`instantiate_from_config` on them itself.

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
    stray = [k for k in config if k not in ("target", "params")]
    if stray:
        raise ValueError(
            f"{key}: unknown key(s) " + ", ".join(f"{k!r}{nearest(k, ('target', 'params'))}" for k in stray)
            + " next to 'target'; a block has only 'target' and 'params'"
        )
    target = config["target"]
    if not isinstance(target, str) or not target:
        raise ValueError(f"{key}: 'target' must be a non-empty import path string, got {target!r}")
    try:
        obj = get_obj_from_str(target)
    except UntrustedTargetError as e:
        raise UntrustedTargetError(f"{key}: {e}") from None
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
    for name, value in kwargs.items():
        if _is_block(value) and not _takes_block(sig, name):
            kwargs[name] = instantiate_from_config(value, key=f"{key}.params.{name}")
    try:
        return obj(**kwargs)
    except TypeError as e:
        raise TypeError(f"{key}: calling target {target!r} failed: {e}{accepted}") from e
    except Exception as e:
        if hasattr(e, "add_note"):  # Python >= 3.11
            e.add_note(f"while instantiating {key} (target {target!r})")
        raise


def instantiate(config: Any, key: str) -> Any:
    """:func:`instantiate_from_config` with every construction error turned into a :class:`ConfigError` that
    names ``key`` (errors raised while the object runs later are not touched).

    Example:
        >>> instantiate({"target": "torch.nn.Linear", "params": {"in_features": 3, "out_feature": 2}}, "model")
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        net2net.config.ConfigError: model: invalid params for target 'torch.nn.Linear': unexpected parameter(s) ...
    """
    try:
        return instantiate_from_config(config, key=key)
    except ConfigError:
        raise
    except (ValueError, TypeError, FileNotFoundError, ImportError, KeyError, OmegaConfBaseException) as e:
        msg = str(e)
        raise ConfigError(msg if msg.startswith(key) else f"{key}: {msg}") from e


def shipped_config(name: str) -> Path:
    """The path of a YAML config shipped with the package, e.g. ``"translation/text2image.yaml"``.

    The package's ``configs/`` folder (``src/net2net/configs``; the repository's ``configs/`` links to it) holds
    the configs of the main job, the demo and the shipped experts; they are package data, so an installed wheel
    has them too.

    Raises:
        FileNotFoundError: there is no such config (the message lists the shipped ones).

    Example:
        >>> shipped_config("translation/text2image.yaml").name
        'text2image.yaml'
    """
    if not isinstance(name, str):
        raise TypeError(f"shipped_config: expected a name such as 'translation/text2image.yaml', got {name!r}")
    root = Path(str(importlib.resources.files(PACKAGE) / "configs"))
    path = root / name
    if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
        known = sorted(str(p.relative_to(root)) for p in root.rglob("*.yaml"))
        raise FileNotFoundError(f"no shipped config {name!r}; the package ships {known}")
    return path


RUN_PATH_PREFIX = "run:"  # a config string "run:experts/x.safetensors" names a file inside the run folder


def resolve_run_paths(block: Any, run: Path) -> Any:
    """Replace ``run:FILE`` strings in a config block by paths inside the run folder ``run`` (an exported
    translation names its experts' weights so)."""
    if isinstance(block, dict):
        return {k: resolve_run_paths(v, run) for k, v in block.items()}
    if isinstance(block, list):
        return [resolve_run_paths(v, run) for v in block]
    if isinstance(block, str) and block.startswith(RUN_PATH_PREFIX):
        return str(run / block.removeprefix(RUN_PATH_PREFIX))
    return block
