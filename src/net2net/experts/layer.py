"""The activation of a named layer of any frozen network as a source expert.

:class:`LayerExpert` reads the output of one submodule (``model.get_submodule(layer)``) through a forward hook and
stops the forward pass there, so early layers cost only the layers before them. It works for any ``nn.Module``;
two builders cover the networks available here:

- :func:`imagenet_expert`: the ImageNet EfficientNet-Lite0 or MobileNetV2 of
  :mod:`net2net.autoencoder.perceptual` (same offline weights, same input normalisation and resizing), e.g. the
  1280-d pooled features for the inpainting / colourisation experiments;
- :func:`classifier_expert`: the :class:`~net2net.experts.classifier.SmallResNet` trained here, whose ``stem``,
  ``stage1`` .. ``stageN``, ``pool`` and ``fc`` layers are the early / middle / last layer sources of the
  model-diagnosis experiment (Sec. E).
"""

from __future__ import annotations

import os
from typing import Any, Literal

from torch import Tensor, nn

from ..autoencoder.perceptual import PerceptualDistance
from .protocols import FrozenExpert, describe_module

__all__ = ["ImageNetNetwork", "LayerExpert", "Pooling", "classifier_expert", "imagenet_expert"]

Pooling = Literal["avg", "max"]
_POOLINGS = ("avg", "max")


class _StopForward(Exception):
    """Raised by the hook of :class:`LayerExpert` once the wanted activation is captured."""


def _resolve_layer(model: nn.Module, layer: str, what: str) -> nn.Module:
    """``model.get_submodule(layer)``, or a ValueError listing the valid names next to the closest match."""
    if not isinstance(layer, str) or not layer:
        raise ValueError(f"{what}: layer must be a non-empty submodule name, received {layer!r}")
    try:
        return model.get_submodule(layer)
    except AttributeError:
        pass
    # the deepest existing prefix of the name, and the names of its children
    parts = layer.split(".")
    parent, prefix = model, ""
    for part in parts[:-1]:
        child = getattr(parent, "_modules", {}).get(part)
        if child is None:
            break
        parent, prefix = child, f"{prefix}{part}."
    names = [f"{prefix}{n}" for n, _ in parent.named_children()]
    shown = ", ".join(names[:24]) + (f", ... ({len(names)} in all)" if len(names) > 24 else "")
    where = f"under {prefix[:-1]!r}" if prefix else f"at the top of {type(model).__name__}"
    raise ValueError(
        f"{what}: {type(model).__name__} has no layer {layer!r}; valid names {where}: {shown or '(none)'} "
        "(nested layers are named with dots, as in model.named_modules())"
    )


class LayerExpert(FrozenExpert):
    """The output of the submodule ``layer`` of a frozen ``model`` as a source expert.

    ``encode(x)`` runs ``model(x)`` with a forward hook on the layer and stops the forward pass as soon as the
    layer has produced its output (the output of its first call, for a module called more than once).

    Arguments:
        model: any network; it is frozen in place (eval mode, ``requires_grad=False``).
        layer: a name from ``model.named_modules()``, e.g. ``"stage2"`` or ``"features.13"``.
        pool: ``None`` (keep the activation), ``"avg"`` or ``"max"``: global pooling over all dimensions after the
            channels, ``(B, C, H, W) -> (B, C)``.
        flatten: flatten the (pooled) activation to ``(B, D)``.

    Raises:
        ValueError: for an unknown layer (the message lists valid names) or pooling mode.

    Example:
        >>> import torch
        >>> net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
        >>> LayerExpert(net, "1", pool="avg").encode(torch.zeros(2, 1, 8, 8)).shape
        torch.Size([2, 4])
    """

    def __init__(self, model: nn.Module, layer: str, pool: Pooling | None = None, flatten: bool = False) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"LayerExpert: expected an nn.Module, received {type(model).__name__}")
        if pool is not None and pool not in _POOLINGS:
            raise ValueError(f"LayerExpert: pool must be None, 'avg' or 'max', received {pool!r}")
        _resolve_layer(model, layer, "LayerExpert")
        self.model = model
        self.layer = layer
        self.pool = pool
        self.flatten = bool(flatten)

    @property
    def config(self) -> dict[str, Any]:
        model, model_config = describe_module(self.model)
        return {"model": model, "model_config": model_config, "layer": self.layer, "pool": self.pool,
                "flatten": self.flatten}  # fmt: skip

    def activation(self, x: Any) -> Tensor:
        """The raw output of the layer for input ``x`` (no pooling or flattening)."""
        module = self.model.get_submodule(self.layer)
        captured: list[Any] = []

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured.append(output)
            raise _StopForward

        handle = module.register_forward_hook(hook)
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            handle.remove()
        if not captured:
            raise ValueError(
                f"LayerExpert: layer {self.layer!r} was not called in the forward pass of "
                f"{type(self.model).__name__}; choose a layer that forward() uses"
            )
        out = captured[0]
        if not isinstance(out, Tensor):
            raise ValueError(
                f"LayerExpert: layer {self.layer!r} returns {type(out).__name__}, expected a tensor; "
                "choose a submodule that returns a single tensor"
            )
        return out

    def encode(self, x: Any) -> Tensor:
        """The layer's activation for ``x``, pooled ``(B, C)`` and/or flattened ``(B, D)`` as configured."""
        out = self.activation(x)
        if self.pool is not None:
            if out.dim() < 3:
                raise ValueError(
                    f"LayerExpert: pool={self.pool!r} needs an activation with spatial dimensions (B, C, ...), "
                    f"layer {self.layer!r} gives shape {tuple(out.shape)}; use pool=None"
                )
            out = out.flatten(2)  # (B, C, H*W)
            out = out.mean(dim=2) if self.pool == "avg" else out.amax(dim=2)  # (B, C)
        if self.flatten:
            out = out.flatten(1)  # (B, D)
        return out

    def forward(self, x: Any) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return f"layer={self.layer!r}, pool={self.pool!r}, flatten={self.flatten}"


# ------------------------------------------------------------------------------------------------- ImageNet


class ImageNetNetwork(nn.Module):
    """An ImageNet network of :mod:`net2net.autoencoder.perceptual` with its input preprocessing.

    ``forward(x)`` takes images in [-1, 1], ``(B, 1 or 3, H, W)`` (grey is repeated to RGB), normalises and resizes
    them exactly as :meth:`PerceptualDistance.preprocess` does, and runs the whole network (ImageNet logits for
    EfficientNet-Lite0 and MobileNetV2). :attr:`network` is the bare network, whose module names
    (``_blocks.10``, ``features.13``, ...) :func:`imagenet_expert` takes.

    Arguments:
        perceptual: the :class:`PerceptualDistance` whose backbone and preprocessing this runs, e.g.
            ``PerceptualDistance("mobilenet_v2")`` (its ``backbone``, ``weights_path`` and ``resize`` choose the
            network, its weights and the input resizing).

    Example:
        >>> net = ImageNetNetwork(PerceptualDistance("efficientnet_lite0"))  # doctest: +SKIP
        >>> net(torch.zeros(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2, 1000])
    """

    def __init__(self, perceptual: PerceptualDistance) -> None:
        super().__init__()
        if not isinstance(perceptual, PerceptualDistance):
            raise TypeError(f"ImageNetNetwork: expected a PerceptualDistance, got {type(perceptual).__name__}")
        self.perceptual = perceptual
        self.backbone_name = perceptual.backbone_name

    @property
    def config(self) -> dict[str, Any]:
        """Backbone and input resizing (the weights enter a fingerprint through the state dict)."""
        return {"backbone": self.backbone_name, "resize": self.perceptual.resize}

    @property
    def network(self) -> nn.Module:
        """The bare network (``efficientnet_lite_pytorch.EfficientNet``, :class:`MobileNetV2`, ...)."""
        net = self.perceptual.net
        inner = getattr(net, "net", None)  # perceptual's EfficientNet-Lite0 wrapper holds the network as .net
        return inner if isinstance(inner, nn.Module) else net

    @property
    def network_prefix(self) -> str:
        """The prefix of :attr:`network`'s module names within this module (e.g. ``"perceptual.net.net."``)."""
        target = self.network
        return next(name for name, m in self.named_modules() if m is target) + "."

    def train(self, mode: bool = True) -> ImageNetNetwork:
        """Does nothing but keep eval mode: the network keeps its ImageNet batch-norm statistics."""
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.perceptual.net(self.perceptual.preprocess(x))


# layer aliases per backbone: name -> (layer of the bare network, pool, flatten)
_IMAGENET_ALIASES: dict[str, dict[str, tuple[str, Pooling | None, bool]]] = {
    "efficientnet_lite0": {"pool": ("_avg_pooling", None, True), "logits": ("_fc", None, False)},
    "mobilenet_v2": {"pool": ("features.18", "avg", False), "logits": ("classifier.1", None, False)},
    "vgg16": {"pool": ("features.29", "avg", False)},
}


def imagenet_expert(
    backbone: str = "efficientnet_lite0",
    layer: str = "pool",
    pool: Pooling | None = None,
    flatten: bool = False,
    weights_path: str | os.PathLike | None = None,
    resize: int | None = None,
) -> LayerExpert:
    """A layer of an offline ImageNet network as a source expert, for images in [-1, 1].

    Arguments:
        backbone: ``"efficientnet_lite0"`` (default), ``"mobilenet_v2"`` or ``"vgg16"`` (needs ``weights_path``).
        layer: a module name of the bare network (EfficientNet-Lite0: ``"_blocks.0"`` .. ``"_blocks.15"``,
            ``"_conv_head"``, ``"_bn1"``, ``"_avg_pooling"``, ``"_fc"``; MobileNetV2: ``"features.0"`` ..
            ``"features.18"``, ``"classifier.1"``), or an alias: ``"pool"``, the globally average-pooled last
            feature map, ``(B, 1280)`` for EfficientNet-Lite0 and MobileNetV2 (``(B, 512)`` for VGG16), and
            ``"logits"``, the ImageNet logits ``(B, 1000)``.
        pool: ``None``, ``"avg"`` or ``"max"`` global pooling of a spatial layer (not with the ``"pool"`` alias).
        flatten: flatten the activation to ``(B, D)``.
        weights_path: a local weights file replacing the installed weights package's (required for VGG16); nothing
            is ever downloaded.
        resize: as for :class:`PerceptualDistance`: ``None`` upsamples images smaller than 96 px (64 px for VGG16)
            to that size, ``N > 0`` resizes the shorter side to ``N``, ``0`` never resizes.

    Raises:
        ValueError: for an unknown backbone or layer (the message lists valid names).
        ModuleNotFoundError: if the offline weights package of the backbone is not installed.

    Example:
        >>> expert = imagenet_expert("efficientnet_lite0", "pool")  # doctest: +SKIP
        >>> expert.encode(torch.zeros(2, 3, 64, 64)).shape  # doctest: +SKIP
        torch.Size([2, 1280])
    """
    network = ImageNetNetwork(PerceptualDistance(backbone, weights_path, resize))
    aliases = _IMAGENET_ALIASES.get(network.backbone_name, {})
    if layer in aliases:
        if pool is not None:
            raise ValueError(
                f"imagenet_expert: layer={layer!r} is an alias that fixes the pooling; received pool={pool!r} as well. "
                "Give a spatial layer name (e.g. the last feature map) with pool='max' instead"
            )
        layer, pool, alias_flatten = aliases[layer]
        flatten = flatten or alias_flatten
    _resolve_layer(network.network, layer, f"imagenet_expert({network.backbone_name!r})")
    return LayerExpert(network, network.network_prefix + layer, pool=pool, flatten=flatten)


# --------------------------------------------------------------------------------------------- classifier


def classifier_expert(
    path_or_model: str | os.PathLike | nn.Module,
    layer: str,
    pool: Pooling | None = None,
    flatten: bool = False,
    architecture: dict[str, Any] | None = None,
) -> LayerExpert:
    """A layer of the :class:`~net2net.experts.classifier.SmallResNet` trained here as a source expert.

    Arguments:
        path_or_model: a safetensors file written by :func:`~net2net.experts.classifier.save_classifier` (loaded
            with :func:`~net2net.experts.classifier.load_classifier`) or a ``SmallResNet`` (frozen in place).
        layer: ``"stem"``, ``"stage1"`` .. ``"stageN"``, ``"pool"`` (``(B, widths[-1])``) or ``"fc"`` (logits), or
            any nested module name such as ``"stage2.0.conv1"``.
        pool: ``None``, ``"avg"`` or ``"max"`` global pooling of a spatial layer.
        flatten: flatten the activation to ``(B, D)``.
        architecture: passed to ``load_classifier`` (checked against the file).

    Raises:
        FileNotFoundError: no file at the path (the message says how to train one).
        TypeError: if ``path_or_model`` is neither a path nor a ``SmallResNet``.
        ValueError: for an unknown layer (the message lists the valid names).

    Example:
        >>> import torch
        >>> from net2net.experts.classifier import SmallResNet
        >>> expert = classifier_expert(SmallResNet(), "stage2")
        >>> expert.encode(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 64, 14, 14])
    """
    from .classifier import SmallResNet, load_classifier

    if isinstance(path_or_model, (str, os.PathLike)):
        model = load_classifier(path_or_model, architecture)
    elif isinstance(path_or_model, SmallResNet):
        model = path_or_model.freeze()
    else:
        raise TypeError(
            "classifier_expert: expected a path to a SmallResNet safetensors file or a SmallResNet, "
            f"received {type(path_or_model).__name__}; use LayerExpert(model, layer) for other networks"
        )
    return LayerExpert(model, layer, pool=pool, flatten=flatten)
