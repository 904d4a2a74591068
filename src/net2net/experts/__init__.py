"""Source and target experts: frozen networks whose representations the cINN translates between.

The protocols (:class:`SourceExpert`, :class:`TargetExpert`), the frozen base class and cache fingerprints are
in :mod:`.protocols`. Sources: :class:`SentenceEncoder` (text), :class:`LabelEncoder` (one-hot labels),
:class:`ClassifierArgmax` (one-hot argmax of a classifier),
:class:`LayerExpert` (any layer of any model; :func:`classifier_expert`, :func:`imagenet_expert`),
:class:`EncoderSource` / :class:`DeformedEncoder` (an autoencoder's encoder, optionally after the deformation
of Sec. C), :class:`BlackBoxExpert` (a NumPy callable), :class:`ProgramExpert` (TorchScript files, source or target). Targets: :class:`AutoencoderTarget`,
:class:`BigGANTarget` (with the dequantisation VAE of Tab. S4), and any generator with ``decode``.
:mod:`.classifier` holds the small ResNet trained here on Fashion-MNIST (its training is
:mod:`net2net.training.classifier_module`). The experts import torch and nothing heavier
(sentence-transformers, kornia and the ImageNet weights load when an expert is built).
"""

from __future__ import annotations

from .biggan import BigGAN, BigGANConfig, BigGANTarget, DequantizationVAE
from .blackbox import BlackBoxExpert
from .classifier import BasicBlock, SmallResNet, load_classifier, read_classifier_metadata, save_classifier
from .encoder_source import DeformedEncoder, EncoderSource
from .label import ClassifierArgmax, LabelEncoder, classifier_argmax_expert
from .layer import LayerExpert, classifier_expert, imagenet_expert
from .program import ProgramExpert
from .protocols import FrozenExpert, SourceExpert, TargetExpert, expert_fingerprint, freeze, is_stochastic
from .target import AutoencoderTarget, load_autoencoder_target
from .text import SentenceEncoder

__all__ = [
    "AutoencoderTarget",
    "BasicBlock",
    "BigGAN",
    "BigGANConfig",
    "BigGANTarget",
    "BlackBoxExpert",
    "ClassifierArgmax",
    "DeformedEncoder",
    "DequantizationVAE",
    "EncoderSource",
    "FrozenExpert",
    "LabelEncoder",
    "LayerExpert",
    "ProgramExpert",
    "SentenceEncoder",
    "SmallResNet",
    "SourceExpert",
    "TargetExpert",
    "classifier_argmax_expert",
    "classifier_expert",
    "expert_fingerprint",
    "freeze",
    "imagenet_expert",
    "is_stochastic",
    "load_autoencoder_target",
    "load_classifier",
    "read_classifier_metadata",
    "save_classifier",
]
