"""Image-quality measures shared by the evaluations: PSNR, classifier accuracy, diversity of translations."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

__all__ = ["classifier_accuracy", "mean_pairwise_distance", "psnr"]


def _check_images(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected images (N, C, H, W), got {got}")


def psnr(images: Tensor, references: Tensor, data_range: float = 2.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image, ``(N,)``, for images in [-1, 1] (``data_range`` 2).

    Example:
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> round(float(psnr(x + 0.02, x)), 2)  # MSE 4e-4, range 2: 10 log10(4 / 4e-4)
        40.0
    """
    _check_images(images, "images")
    if images.shape != references.shape:
        raise ValueError(f"images {tuple(images.shape)} and references {tuple(references.shape)} differ in shape")
    mse = (images.double() - references.double()).square().flatten(1).mean(1)  # (N,)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-20))


@torch.no_grad()
def classifier_accuracy(
    classify: Callable[[Tensor], Tensor], images: Tensor, labels: Tensor, batch_size: int = 500
) -> float:
    """Fraction of ``images`` whose arg-max logit under ``classify`` equals ``labels``.

    Arguments:
        classify: images ``(B, C, H, W)`` -> logits ``(B, K)``.
        images: ``(N, C, H, W)``.
        labels: ``(N,)`` integer class indices.
    """
    _check_images(images, "images")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = classify(images[start : start + batch_size])
        correct += int((logits.argmax(1).cpu() == labels[start : start + batch_size].cpu()).sum())
    return correct / max(1, len(images))


def mean_pairwise_distance(samples: Tensor, features: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Diversity of translations: mean Euclidean distance between all pairs of samples of the same input.

    Arguments:
        samples: ``(B, n, ...)``: ``n >= 2`` translations for each of ``B`` inputs (images or latents).
        features: optional map applied to the flattened batch ``(B * n, ...)`` first (e.g. classifier
            features); ``None`` measures in the samples' own space (pixels: per-pixel RMS distance).

    Returns:
        ``(B,)`` mean over the ``n (n - 1) / 2`` pairs of ``||a - b|| / sqrt(dim)`` (an RMS distance, so
        numbers do not grow with the image size).

    Example:
        >>> s = torch.zeros(2, 3, 4)
        >>> s[:, 1] = 1.0  # pairs (0,1), (1,2) differ by 1 per entry, (0,2) agree
        >>> mean_pairwise_distance(s)
        tensor([0.6667, 0.6667])
    """
    if not isinstance(samples, Tensor) or samples.dim() < 3 or samples.shape[1] < 2:
        got = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
        raise ValueError(f"samples: expected (B, n >= 2, ...) translations per input, got {got}")
    b, n = samples.shape[:2]
    flat = samples.reshape(b * n, *samples.shape[2:])
    if features is not None:
        with torch.no_grad():
            flat = features(flat)
    flat = flat.reshape(b, n, -1).double()  # (B, n, D)
    dist = torch.cdist(flat, flat) / flat.shape[-1] ** 0.5  # (B, n, n)
    iu = torch.triu_indices(n, n, offset=1)
    return dist[:, iu[0], iu[1]].mean(1).float()
