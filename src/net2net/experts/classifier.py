"""A small ResNet classifier for 28/32 px images, trained here, whose layers serve as source experts.

The model-diagnosis experiment (paper Sec. E, Fig. 5 / Tab. S4) translates the representation of an
early, a middle and the last layer of a classifier into images. Here the classifier is a small
ResNet trained on Fashion-MNIST on the CPU: :func:`load_classifier` rebuilds it frozen from a safetensors
file written by :func:`save_classifier`, and :meth:`SmallResNet.features` returns the named activations
(``stem``, ``stage1`` .. ``stageN``, ``pool``, ``fc``).

Training is :mod:`net2net.training.classifier_module`, through the one training entry point::

    net2net train configs/classifier/fashion_mnist_classifier.yaml    # writes runs/fashion_mnist_classifier/classifier.safetensors
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from safetensors import safe_open
from torch import Tensor, nn

from ..io import atomic_save_safetensors
from .protocols import describe_state_mismatch

__all__ = [
    "CHECKPOINT_FORMAT",
    "TRAIN_COMMAND",
    "BasicBlock",
    "SmallResNet",
    "check_positive_int",
    "load_classifier",
    "read_classifier_metadata",
    "save_classifier",
]

CHECKPOINT_FORMAT = "net2net.SmallResNet/1"  # the "format" metadata entry of files written by save_classifier
TRAIN_COMMAND = "net2net train configs/classifier/fashion_mnist_classifier.yaml"  # how the shipped classifier is made


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The shortcut is the identity, or a strided 1x1 convolution with BatchNorm where the stride or the
    width changes. (Zero-initialising the second BatchNorm's scale, a common trick for long runs,
    slowed the first hundred steps down markedly here: 54 % against 66 % test accuracy after 100
    steps, so it is not used.)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def check_positive_int(name: str, value: Any) -> int:
    """``value`` if it is a positive int (not a bool); else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SmallResNet(nn.Module):
    """A small ResNet for 28x28 or 32x32 images in [-1, 1] (any size >= 8 works: global pooling).

    Layout: ``stem`` (3x3 conv, BN, ReLU) -> ``stage1`` .. ``stageN`` (``blocks_per_stage`` basic blocks
    each; ``stage1`` keeps the resolution, each later stage halves it) -> ``pool`` (global average,
    flattened) -> ``fc`` (linear to logits). With the default widths and a 28x28 input the activations
    are ``stem`` (32, 28, 28), ``stage1`` (32, 28, 28), ``stage2`` (64, 14, 14), ``stage3`` (128, 7, 7),
    ``pool`` (128,), ``fc`` (10,); about 0.7M parameters.

    Arguments:
        in_channels: 1 (grey) or 3 (RGB).
        n_classes: number of output logits.
        widths: channels of each stage; its length is the number of stages.
        blocks_per_stage: basic blocks per stage.

    Example:
        >>> import torch
        >>> net = SmallResNet()
        >>> feats = net.features(torch.zeros(2, 1, 28, 28))
        >>> {k: tuple(v.shape) for k, v in feats.items()}["stage3"]
        (2, 128, 7, 7)
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        blocks_per_stage: int = 2,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage width, got an empty sequence")
        for w in widths:
            check_positive_int("every entry of widths", w)
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.n_classes = check_positive_int("n_classes", n_classes)
        self.widths = widths
        self.blocks_per_stage = check_positive_int("blocks_per_stage", blocks_per_stage)
        self.frozen = False

        self.stem = nn.Sequential(_conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.stage_names = tuple(f"stage{i + 1}" for i in range(len(widths)))
        in_w = widths[0]
        for i, (name, w) in enumerate(zip(self.stage_names, widths, strict=True)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_w, w, stride)] + [BasicBlock(w, w) for _ in range(blocks_per_stage - 1)]
            self.add_module(name, nn.Sequential(*blocks))
            in_w = w
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(widths[-1], n_classes)
        self.layer_names: tuple[str, ...] = ("stem", *self.stage_names, "pool", "fc")

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def architecture(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable: ``SmallResNet(**net.architecture)`` rebuilds it."""
        return {
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "widths": list(self.widths),
            "blocks_per_stage": self.blocks_per_stage,
        }

    def features(self, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Return the activations of the named layers, in network order.

        Arguments:
            x: images ``(B, in_channels, H, W)`` in [-1, 1].
            layers: names from :attr:`layer_names` (``stem``, ``stage1`` .., ``pool``, ``fc``); ``None``
                returns all. The forward pass stops after the last requested layer.

        Returns:
            ``{name: activation}``: ``(B, C, H', W')`` for ``stem`` and the stages, ``(B, widths[-1])``
            for ``pool``, ``(B, n_classes)`` logits for ``fc``.
        """
        wanted = set(self.layer_names if layers is None else layers)
        unknown = wanted.difference(self.layer_names)
        if unknown:
            raise ValueError(f"unknown layer(s) {sorted(unknown)}; expected names from {list(self.layer_names)}")
        self._check_input(x)
        out: dict[str, Tensor] = {}
        h = x
        for name in self.layer_names:
            h = getattr(self, name)(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, n_classes)`` of images ``(B, in_channels, H, W)``."""
        self._check_input(x)
        h = self.stem(x)
        for name in self.stage_names:
            h = getattr(self, name)(h)
        return self.fc(self.pool(h))

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallResNet expects images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def freeze(self) -> SmallResNet:
        """Put the network in eval mode for good (a later ``train()`` keeps it there) and stop its gradients."""
        self.frozen = True
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> SmallResNet:
        """As :meth:`nn.Module.train`, except that a frozen network stays in eval mode."""
        return super().train(False if self.frozen else mode)


# ------------------------------------------------------------------------------------- save and load


def save_classifier(model: SmallResNet, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s weights to a safetensors file, atomically (:func:`net2net.io.atomic_save_safetensors`).

    The metadata holds ``format``, ``architecture`` (JSON of the constructor arguments) and each
    entry of ``metadata`` (strings kept, other values JSON-encoded). Returns the path written.
    """
    meta = {"format": CHECKPOINT_FORMAT, "architecture": json.dumps(model.architecture)}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    return atomic_save_safetensors(model.state_dict(), path, metadata=meta)


def read_classifier_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a classifier file written by :func:`save_classifier` (raw strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights not found: {path}. Train them with `{TRAIN_COMMAND}` (its run folder then holds "
            "classifier.safetensors)"
        )
    from ..io import read_safetensors_metadata

    return read_safetensors_metadata(path, "the classifier weights",
                                     f"train them again ({TRAIN_COMMAND}) or copy the file again")  # fmt: skip


def load_classifier(path: str | os.PathLike[str], architecture: dict[str, Any] | None = None) -> SmallResNet:
    """Rebuild a :class:`SmallResNet` from a file written by :func:`save_classifier`, frozen and in eval mode.

    Arguments:
        path: the safetensors file, or ``pretrained:fashion_mnist_classifier`` for the shipped one.
        architecture: the architecture the caller expects (constructor arguments); ``None`` takes the
            one stored in the file. Given, it must agree with the stored weights.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says how to train one).
        ValueError: the file is not a SmallResNet checkpoint, or its tensors do not fit the
            architecture (the message lists missing / unexpected keys and shape mismatches).

    Example:
        >>> net = load_classifier("checkpoints/fashion_mnist_classifier.safetensors")  # doctest: +SKIP
        >>> net.features(images, ["stage2"])["stage2"].shape  # doctest: +SKIP
        torch.Size([B, 64, 14, 14])
    """
    from ..pretrained import resolve_weights

    path = resolve_weights(path)
    meta = read_classifier_metadata(path)
    if architecture is None:
        if meta.get("format") != CHECKPOINT_FORMAT or "architecture" not in meta:
            raise ValueError(
                f"{path} is not a SmallResNet checkpoint: expected metadata format={CHECKPOINT_FORMAT!r} with an "
                f"'architecture' entry, received metadata keys {sorted(meta)} (format={meta.get('format')!r}). "
                "Write it with net2net.experts.classifier.save_classifier, or pass architecture=..."
            )
        architecture = json.loads(meta["architecture"])
    model = SmallResNet(**architecture)
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as f:
        received = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
        mismatch = describe_state_mismatch(expected, received)
        if mismatch:
            raise ValueError(
                f"{path} does not hold weights of SmallResNet({architecture}): {mismatch}. "
                "Was it saved from a different architecture?"
            )
        state = {k: f.get_tensor(k) for k in received}
    model.load_state_dict(state, strict=True)
    return model.freeze()
