"""Source and target experts: frozen networks whose representations the cINN translates between.

:mod:`.classifier` holds the small ResNet trained here on Fashion-MNIST (its ``stem`` / ``stage1`` ..
/ ``pool`` / ``fc`` activations are the early, middle and last layer sources). Names are imported
lazily, so that ``python -m net2net.experts.classifier`` runs the module once, as ``__main__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .classifier import (
        BasicBlock,
        ClassifierModule,
        SmallResNet,
        augment_batch,
        load_classifier,
        read_classifier_metadata,
        save_classifier,
        train_fashion_mnist_classifier,
    )

_EXPORTS = {
    "BasicBlock": ".classifier",
    "ClassifierModule": ".classifier",
    "SmallResNet": ".classifier",
    "augment_batch": ".classifier",
    "load_classifier": ".classifier",
    "read_classifier_metadata": ".classifier",
    "save_classifier": ".classifier",
    "train_fashion_mnist_classifier": ".classifier",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # cache: later look-ups skip __getattr__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
