"""Source and target experts: frozen networks whose representations the cINN translates between.

The protocols (:class:`SourceExpert`, :class:`TargetExpert`), the frozen base class and cache fingerprints are
in :mod:`.protocols`. Sources: :class:`SentenceEncoder` (text), :class:`LabelEncoder` (one-hot labels),
:class:`ClassifierArgmax` (one-hot argmax of a classifier),
:class:`LayerExpert` (any layer of any model; :func:`classifier_expert`, :func:`imagenet_expert`),
:class:`EncoderSource` / :class:`DeformedEncoder` (an autoencoder's encoder, optionally after the deformation
of Sec. C), :class:`BlackBoxExpert` (a NumPy callable). Targets: :class:`AutoencoderTarget`,
:class:`BigGANTarget` (with the dequantisation VAE of Tab. S4), and any generator with ``decode``.
:mod:`.classifier` holds the small ResNet trained here on Fashion-MNIST (its training is
:mod:`net2net.training.classifier`). Names are imported lazily, so that ``import net2net.experts`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .protocols import (
        FrozenExpert,
        SourceExpert,
        TargetExpert,
        expert_fingerprint,
        freeze,
        is_stochastic,
    )
    from .label import (
        ClassifierArgmax,
        LabelEncoder,
        classifier_argmax_expert,
    )
    from .layer import (
        LayerExpert,
        classifier_expert,
        imagenet_expert,
    )
    from .encoder_source import (
        DeformedEncoder,
        EncoderSource,
    )
    from .blackbox import (
        BlackBoxExpert,
    )
    from .text import (
        SentenceEncoder,
    )
    from .target import (
        AutoencoderTarget,
        load_autoencoder_target,
    )
    from .biggan import (
        BigGAN,
        BigGANConfig,
        BigGANTarget,
        DequantizationVAE,
    )
    from .classifier import (
        BasicBlock,
        SmallResNet,
        load_classifier,
        read_classifier_metadata,
        save_classifier,
    )

_EXPORTS = {
    "FrozenExpert": ".protocols",
    "SourceExpert": ".protocols",
    "TargetExpert": ".protocols",
    "expert_fingerprint": ".protocols",
    "freeze": ".protocols",
    "is_stochastic": ".protocols",
    "LabelEncoder": ".label",
    "ClassifierArgmax": ".label",
    "classifier_argmax_expert": ".label",
    "LayerExpert": ".layer",
    "classifier_expert": ".layer",
    "imagenet_expert": ".layer",
    "DeformedEncoder": ".encoder_source",
    "EncoderSource": ".encoder_source",
    "BlackBoxExpert": ".blackbox",
    "SentenceEncoder": ".text",
    "AutoencoderTarget": ".target",
    "load_autoencoder_target": ".target",
    "BigGAN": ".biggan",
    "BigGANConfig": ".biggan",
    "BigGANTarget": ".biggan",
    "DequantizationVAE": ".biggan",
    "BasicBlock": ".classifier",
    "SmallResNet": ".classifier",
    "load_classifier": ".classifier",
    "read_classifier_metadata": ".classifier",
    "save_classifier": ".classifier",
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
