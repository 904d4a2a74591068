"""net2net: network-to-network translation with conditional invertible neural networks.

The public API is imported lazily: ``import net2net`` loads nothing heavy (no torch, no Lightning); a name is
imported on first use, e.g. ``from net2net import Net2Net`` imports the inference stack only.

Example:
    >>> from net2net import ConditionalINN, load_config  # doctest: +SKIP
    >>> tau = ConditionalINN(dim=8, cond_dim=4, n_blocks=2, hidden_dim=16)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# module that defines them (relative to this package) -> public names
_MODULES: dict[str, tuple[str, ...]] = {
    ".apps.translate": ("Net2Net",),
    ".config": ("load_config", "instantiate_from_config"),
    ".flows": ("ConditionalINN", "UnconditionalFlow", "nll", "load_cinn", "save_cinn"),
    ".training.run": ("train_from_config",),
    ".translators": ("load_translator", "save_translator"),
}
_EXPORTS: dict[str, str] = {name: module for module, names in _MODULES.items() for name in names}  # name -> module

# written out (not computed from _EXPORTS) so that linters and IDEs see it; tests/test_public_api.py keeps them equal
__all__ = [
    "ConditionalINN",
    "Net2Net",
    "UnconditionalFlow",
    "__version__",
    "instantiate_from_config",
    "load_cinn",
    "load_config",
    "load_translator",
    "nll",
    "save_cinn",
    "save_translator",
    "train_from_config",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names are resolved by __getattr__
    from .apps.translate import Net2Net
    from .config import instantiate_from_config, load_config
    from .flows import ConditionalINN, UnconditionalFlow, load_cinn, nll, save_cinn
    from .training.run import train_from_config
    from .translators import load_translator, save_translator


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'net2net' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # cache: later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
