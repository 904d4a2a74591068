"""Quality of a trained autoencoder g = Λ∘Θ on a labelled test set (issue: the target expert's quality).

:func:`evaluate_autoencoder` measures, on the same test images:

- PSNR and L1 of the reconstructions ``Λ(mean of Θ(y))``,
- the accuracy of a classifier trained on real images on the test images and on their reconstructions
  (reconstructions should keep the class),
- the FID (standard Inception network) of reconstructions and of decoded prior samples ``Λ(z), z ~ N(0, I)``
  against the real test images, on ``n_fid`` images each.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor

from .fid import InceptionFeatures, fid_from_features
from .quality import classifier_accuracy, psnr

__all__ = ["evaluate_autoencoder"]


class _Autoencoder(Protocol):
    z_dim: int | None

    def encode_dist(self, y: Tensor) -> tuple[Tensor, Tensor]: ...
    def decode(self, z: Tensor) -> Tensor: ...


@torch.no_grad()
def _reconstruct(ae: _Autoencoder, images: Tensor, batch_size: int) -> Tensor:
    out = [ae.decode(ae.encode_dist(images[i : i + batch_size])[0]) for i in range(0, len(images), batch_size)]
    return torch.cat(out).clamp(-1, 1)


@torch.no_grad()
def evaluate_autoencoder(
    ae: _Autoencoder,
    images: Tensor,
    labels: Tensor,
    classify: Callable[[Tensor], Tensor] | None = None,
    n_fid: int = 300,
    seed: int = 0,
    batch_size: int = 250,
    inception: Callable[[Tensor], Tensor] | None = None,
) -> dict[str, Any]:
    """Reconstruction and sample quality of an autoencoder on a labelled test set.

    Arguments:
        ae: the autoencoder (``encode_dist(y) -> (mean, std)``, ``decode(z)``, ``z_dim``), e.g.
            :class:`net2net.experts.target.AutoencoderTarget`.
        images: test images ``(N, C, H, W)`` in [-1, 1].
        labels: their classes ``(N,)``.
        classify: images -> logits; ``None`` skips the accuracies.
        n_fid: images per set for the FIDs (the first ``n_fid`` test images, their reconstructions and
            ``n_fid`` prior samples); 0 skips the FIDs (Inception-v3 runs at about 3 images/s on 2 cores).
        seed: seeds the prior samples.
        batch_size: images per forward pass.
        inception: the FID feature extractor; ``None`` builds :class:`InceptionFeatures`.

    Returns:
        ``{"test_images", "psnr_db", "l1", "acc_real", "acc_reconstructions", "fid_images",
        "fid_reconstructions", "fid_prior_samples", "seconds"}`` (accuracies/FIDs are ``None`` when skipped).
    """
    if images.dim() != 4 or labels.shape != (images.shape[0],):
        raise ValueError(
            f"expected images (N, C, H, W) and labels (N,), got {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if not 0 <= n_fid <= len(images):
        raise ValueError(f"n_fid must be in [0, {len(images)}] (the number of test images), got {n_fid}")
    t0 = time.perf_counter()
    rec = _reconstruct(ae, images, batch_size)
    result: dict[str, Any] = {
        "test_images": len(images),
        "psnr_db": float(psnr(rec, images).mean()),
        "l1": float((rec - images).abs().mean()),
        "acc_real": None,
        "acc_reconstructions": None,
        "fid_images": n_fid,
        "fid_reconstructions": None,
        "fid_prior_samples": None,
    }
    if classify is not None:
        result["acc_real"] = classifier_accuracy(classify, images, labels, batch_size)
        result["acc_reconstructions"] = classifier_accuracy(classify, rec, labels, batch_size)
    if n_fid > 0:
        if ae.z_dim is None:
            raise ValueError("the autoencoder does not state its z_dim; prior samples need it")
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n_fid, ae.z_dim, generator=g)
        samples = torch.cat([ae.decode(z[i : i + batch_size]) for i in range(0, n_fid, batch_size)]).clamp(-1, 1)
        net = inception if inception is not None else InceptionFeatures()
        f_real, f_rec, f_smp = (net(x[:n_fid]) for x in (images, rec, samples))
        result["fid_reconstructions"] = fid_from_features(f_rec, f_real)
        result["fid_prior_samples"] = fid_from_features(f_smp, f_real)
    result["seconds"] = time.perf_counter() - t0
    return result
