"""Class or domain labels as a source expert: one-hot codes (the "Labelator" of the original code).

Used for label-to-image translation (Fig. 7a) and for unpaired translation between domains (Sec. D), where the
source representation is the domain index of each image. :class:`ClassifierArgmax` reads the labels off images
instead: the one-hot argmax of a frozen classifier's logits (the "argmaxed" segmentation output of Fig. S6).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..flows.checks import check_int
from .protocols import FrozenExpert, describe_module

__all__ = ["ClassifierArgmax", "LabelEncoder", "classifier_argmax_expert"]


class LabelEncoder(FrozenExpert):
    """One-hot encoding of integer labels in ``[0, n_classes)``: ``(B,)`` labels -> ``(B, n_classes)`` floats.

    Arguments:
        n_classes: number of classes (or domains), at least 1.
        dtype: floating dtype of the codes.

    Example:
        >>> LabelEncoder(3).encode([2, 0])
        tensor([[0., 0., 1.],
                [1., 0., 0.]])
    """

    def __init__(self, n_classes: int, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        check_int("LabelEncoder: n_classes", n_classes)
        if not dtype.is_floating_point:
            raise TypeError(f"LabelEncoder: dtype must be a floating dtype, received {dtype}")
        self.n_classes = n_classes
        self.dim = n_classes
        self.dtype = dtype

    @property
    def config(self) -> dict[str, Any]:
        return {"n_classes": self.n_classes, "dtype": str(self.dtype)}

    def _labels(self, labels: Any) -> Tensor:
        if isinstance(labels, Tensor):
            t = labels
        elif isinstance(labels, (Sequence, np.ndarray)) and not isinstance(labels, (str, bytes)):
            try:
                t = torch.as_tensor(np.asarray(labels))
            except (TypeError, ValueError, RuntimeError) as e:
                raise TypeError(f"LabelEncoder: expected a sequence of integer labels, received {labels!r}") from e
        else:
            raise TypeError(
                f"LabelEncoder: expected an integer tensor, array or list of labels, received {type(labels).__name__}"
            )
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise TypeError(
                f"LabelEncoder: expected integer labels, received dtype {t.dtype}; convert them, e.g. labels.long()"
            )
        if t.dim() == 2 and t.shape[1] == 1:
            t = t[:, 0]  # (B, 1) -> (B,)
        if t.dim() != 1:
            raise ValueError(f"LabelEncoder: expected labels of shape (B,), received shape {tuple(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.n_classes):
            bad = t[(t < 0) | (t >= self.n_classes)]
            raise ValueError(
                f"LabelEncoder: labels must lie in [0, {self.n_classes}), received {bad[:5].tolist()} "
                f"({bad.numel()} out of range); build LabelEncoder(n_classes) with the right number of classes"
            )
        return t.long()

    def encode(self, labels: Tensor | Sequence[int] | np.ndarray) -> Tensor:
        """One-hot codes ``(B, n_classes)`` of labels ``(B,)`` (a ``(B, 1)`` tensor is accepted too).

        Raises:
            TypeError: for non-integer labels (float, bool, strings).
            ValueError: for labels outside ``[0, n_classes)`` or of another shape.
        """
        return F.one_hot(self._labels(labels), self.n_classes).to(self.dtype)

    def forward(self, labels: Tensor | Sequence[int] | np.ndarray) -> Tensor:
        return self.encode(labels)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}"


class ClassifierArgmax(FrozenExpert):
    """The one-hot argmax of a frozen classifier's logits as a source expert: images -> ``(B, n_classes)`` codes.

    Unlike the logits, the code keeps only the predicted class, none of the within-class information (how sure the
    classifier is, which other classes it considers). Its latent-cache fingerprint covers the classifier's class,
    architecture and weights (see :func:`~net2net.experts.protocols.expert_fingerprint`).

    Arguments:
        classifier: a network mapping inputs to logits ``(B, n_classes)``; frozen in place.
        n_classes: number of logits.

    Example:
        >>> net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
        >>> ClassifierArgmax(net, 3).encode(torch.zeros(2, 1, 2, 2)).sum(1)
        tensor([1., 1.])
    """

    def __init__(self, classifier: nn.Module, n_classes: int) -> None:
        super().__init__()
        if not isinstance(classifier, nn.Module):
            raise TypeError(f"ClassifierArgmax: expected an nn.Module, received {type(classifier).__name__}")
        check_int("ClassifierArgmax: n_classes", n_classes, 2)
        self.classifier = classifier
        self.n_classes = n_classes
        self.dim = n_classes

    @property
    def config(self) -> dict[str, Any]:
        classifier, architecture = describe_module(self.classifier, "architecture")
        return {"classifier": classifier, "architecture": architecture, "n_classes": self.n_classes}

    def encode(self, x: Tensor) -> Tensor:
        """One-hot codes ``(B, n_classes)`` (float32) of the classifier's predicted classes for inputs ``x``."""
        logits = self.classifier(x)
        if logits.dim() != 2 or logits.shape[1] != self.n_classes:
            raise ValueError(
                f"ClassifierArgmax: the classifier returned shape {tuple(logits.shape)}, expected logits "
                f"(B, {self.n_classes})"
            )
        return F.one_hot(logits.argmax(1), self.n_classes).to(torch.float32)

    def forward(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}"


def classifier_argmax_expert(path_or_model: str | os.PathLike[str] | nn.Module) -> ClassifierArgmax:
    """:class:`ClassifierArgmax` of the :class:`~net2net.experts.classifier.SmallResNet` trained here, usable from a
    config ``target:`` block (``params: {path_or_model: "pretrained:fashion_mnist_classifier"}``).

    Arguments:
        path_or_model: a file written by :func:`~net2net.experts.classifier.save_classifier` (or
            ``pretrained:fashion_mnist_classifier``), or a ``SmallResNet`` (frozen in place).
    """
    from .classifier import SmallResNet, load_classifier

    if isinstance(path_or_model, (str, os.PathLike)):
        model = load_classifier(path_or_model)
    elif isinstance(path_or_model, SmallResNet):
        model = path_or_model.freeze()
    else:
        raise TypeError(
            "classifier_argmax_expert: expected a path to a SmallResNet safetensors file or a SmallResNet, "
            f"received {type(path_or_model).__name__}; use ClassifierArgmax(model, n_classes) for other networks"
        )
    return ClassifierArgmax(model, model.n_classes)
