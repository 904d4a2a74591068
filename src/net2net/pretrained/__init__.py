"""Small trained weights shipped with the package, and the ``pretrained:NAME`` references that point at them.

The text-to-image main job and the experiments reuse experts trained here: the Fashion-MNIST classifier and
autoencoder, and the autoencoder of the union MNIST ∪ Fashion-MNIST ∪ 8x8 digits (the target of the unpaired
translation experiment). Training them takes about 1 h 50 min on 2 CPU cores, so the package ships their weights
(float32 safetensors, a few MB each). ``scripts/make_pretrained.sh`` rebuilds the files from scratch with the
commands listed in :data:`PRETRAINED` (the Fashion-MNIST autoencoder's results are in ``docs/autoencoder.md``).

Anywhere a weights path is accepted (configs included), ``pretrained:NAME`` names one of these files.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PREFIX", "PRETRAINED", "pretrained_path", "resolve_weights"]

PREFIX = "pretrained:"
_HERE = Path(__file__).resolve().parent

# name -> (file in this folder, the command that made it)
PRETRAINED: dict[str, tuple[str, str]] = {
    "fashion_mnist_classifier": (
        "fashion_mnist_classifier.safetensors",
        "net2net train configs/classifier/fashion_mnist_classifier.yaml  "
        "(then $NET2NET_CACHE/runs/fashion_mnist_classifier/classifier.safetensors)",
    ),
    "fashion_mnist_autoencoder": (
        "fashion_mnist_autoencoder.safetensors",
        "net2net train configs/autoencoder/fashion_mnist.yaml  (then $NET2NET_CACHE/runs/fashion_mnist/autoencoder.safetensors)",
    ),
    "digits_union_autoencoder": (
        "digits_union_autoencoder.safetensors",
        "net2net train configs/autoencoder/digits_union.yaml  (then $NET2NET_CACHE/runs/digits_union/autoencoder.safetensors)",
    ),
}


def pretrained_path(name: str) -> Path:
    """The shipped file called ``name`` (a key of :data:`PRETRAINED`).

    Example:
        >>> pretrained_path("fashion_mnist_classifier").name
        'fashion_mnist_classifier.safetensors'
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained weights {name!r}; available: {sorted(PRETRAINED)}")
    path = _HERE / PRETRAINED[name][0]
    if not path.is_file():
        raise FileNotFoundError(
            f"the shipped weights {path} are missing; rebuild them with `{PRETRAINED[name][1]}` "
            "(or scripts/make_pretrained.sh)"
        )
    return path


def resolve_weights(path: str | os.PathLike[str]) -> Path:
    """``pretrained:NAME`` -> the shipped file; any other value -> ``Path(path)`` unchanged."""
    text = os.fspath(path)
    if text.startswith(PREFIX):
        return pretrained_path(text[len(PREFIX) :])
    return Path(text)
