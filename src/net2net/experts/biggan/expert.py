"""BigGAN as a frozen target expert, ``z_tgt = [z̃, ĥ]`` (supplementary G.2, Eq. 24), and its truncated noise."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from .dequantization import VAE_NAME, DequantizationVAE
from .generator import BigGAN, BigGANConfig
from .validation import PathLike, check_flat, check_truncation

__all__ = ["BigGANTarget", "truncated_noise"]


def truncated_noise(
    n: int,
    dim: int,
    truncation: float = 1.0,
    generator: torch.Generator | None = None,
    device: str | torch.device | None = None,
    bound: float = 2.0,
) -> Tensor:
    """BigGAN noise ``truncation · TN(0, I; [−bound, bound])``, ``(n, dim)``, by resampling values outside the bound.

    This is the reference package's convention (a normal truncated to [−2, 2], scaled by the truncation).

    Example:
        >>> z = truncated_noise(1000, 8, truncation=0.5, generator=torch.Generator().manual_seed(0))
        >>> bool(z.abs().max() <= 1.0)
        True
    """
    truncation = check_truncation(truncation, "truncated_noise")
    if generator is not None:
        device = generator.device
    z = torch.randn(n, dim, generator=generator, device=device)
    outside = z.abs() > bound
    while bool(outside.any()):
        z[outside] = torch.randn(int(outside.sum()), generator=generator, device=z.device)
        outside = z.abs() > bound
    return truncation * z


class BigGANTarget(nn.Module):
    """Frozen BigGAN behind the target-expert protocol, ``z_tgt = [z̃, ĥ]`` (supplementary G.2, Eq. 24).

    Always in eval mode (``train()`` keeps it) with ``requires_grad=False``; gradients still flow to inputs that
    require them. There is no ``encode`` (a GAN has no encoder): train a cINN on :meth:`synthetic_pairs`.

    Arguments:
        biggan: the generator.
        vae: the dequantisation VAE (needed to draw ``ĥ``; ``decode`` works without it).
        truncation: truncation used by :meth:`decode` and, by default, :meth:`synthetic_pairs`.

    Attributes:
        z_dim: dimension of the noise part z̃.
        embed_dim: dimension of the class-embedding part ĥ.
        dim: dimension of ``z_tgt``, ``z_dim + embed_dim``.
        image_size: side of the generated images.
        num_classes: classes the generator draws.

    Example:
        >>> cfg = BigGANConfig(output_dim=16, z_dim=4, class_embed_dim=6, channel_width=4, num_classes=3,
        ...                    layers=[(True, 2, 1), (True, 1, 1)], attention_layer_position=None)
        >>> target = BigGANTarget(BigGAN(cfg), DequantizationVAE(in_dim=6, z_dim=6, hidden_dim=16), truncation=0.5)
        >>> images, z_tgt, labels = target.synthetic_pairs(4, generator=torch.Generator().manual_seed(0))
        >>> images.shape, z_tgt.shape, target.decode(z_tgt).shape
        (torch.Size([4, 3, 16, 16]), torch.Size([4, 10]), torch.Size([4, 3, 16, 16]))
    """

    def __init__(self, biggan: BigGAN, vae: DequantizationVAE | None = None, truncation: float = 1.0) -> None:
        super().__init__()
        if not isinstance(biggan, BigGAN):
            raise TypeError(f"BigGANTarget: expected a BigGAN, received {type(biggan).__name__}")
        if vae is not None and vae.in_dim != biggan.config.class_embed_dim:
            raise ValueError(
                f"BigGANTarget: the VAE takes {vae.in_dim}-d embeddings but the BigGAN's class embedding has "
                f"{biggan.config.class_embed_dim} dimensions"
            )
        self.biggan = biggan
        self.vae = vae
        self.truncation = check_truncation(truncation, "BigGANTarget")
        cfg: BigGANConfig = biggan.config  # the dimensions are the generator's: z_tgt = [z̃ (z_dim), ĥ (embed_dim)]
        self.z_dim, self.embed_dim = cfg.z_dim, cfg.class_embed_dim
        self.dim = self.z_dim + self.embed_dim
        self.image_size, self.num_classes = cfg.output_dim, cfg.num_classes
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> BigGANTarget:
        """Does nothing but keep eval mode: the expert is frozen."""
        return super().train(False)

    def __getattr__(self, name: str) -> Any:
        if name in ("encode", "encode_dist", "mean_std"):
            raise AttributeError(
                f"BigGANTarget has no {name}(): a GAN has no encoder (DESIGN.md: encode is optional for "
                "generators); draw training pairs with synthetic_pairs() instead"
            )
        return super().__getattr__(name)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim} (z={self.z_dim}, h={self.embed_dim}), image_size={self.image_size}, "
            f"truncation={self.truncation}"
        )

    # -- z_tgt ----------------------------------------------------------------------------------------------------
    def _check_z_tgt(self, z_tgt: object, name: str) -> Tensor:
        return check_flat(z_tgt, name, self.dim, f"z_tgt = [z̃ ({self.z_dim}), ĥ ({self.embed_dim})]")

    def split(self, z_tgt: Tensor) -> tuple[Tensor, Tensor]:
        """``(z̃, ĥ)``, ``(B, z_dim)`` and ``(B, embed_dim)``, of ``z_tgt`` ``(B, dim)``."""
        z_tgt = self._check_z_tgt(z_tgt, "BigGANTarget.split")
        z, h = z_tgt.split([self.z_dim, self.embed_dim], dim=1)
        return z, h

    def join(self, z: Tensor, h: Tensor) -> Tensor:
        """``z_tgt = [z̃, ĥ]``, ``(B, dim)``."""
        check_flat(z, "BigGANTarget.join: z", self.z_dim, "noise")
        check_flat(h, "BigGANTarget.join: h", self.embed_dim, "class embedding")
        if z.shape[0] != h.shape[0]:
            raise ValueError(f"BigGANTarget.join: z has {z.shape[0]} rows, h has {h.shape[0]}")
        return torch.cat([z, h], dim=1)

    def embed(self, labels: Tensor) -> Tensor:
        """Class embeddings ``h = W·c``, ``(B, embed_dim)``, of labels ``(B,)`` or class vectors ``(B, K)``."""
        return self.biggan.embed(labels)

    def dequantize(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The VAE's stochastic reconstruction ``ĥ`` of embeddings ``h``.

        Raises:
            ValueError: if no VAE was loaded.
        """
        if self.vae is None:
            raise ValueError(
                "BigGANTarget.dequantize: no dequantisation VAE; load one (from_pretrained(..., vae_path=...)) or "
                "train one with `net2net train configs/biggan/dequantization_vae.yaml`"
            )
        return self.vae.sample(h, generator)

    def decode(self, z_tgt: Tensor, truncation: float | None = None) -> Tensor:
        """Images in [-1, 1], ``(B, 3, H, W)``, of ``z_tgt = [z̃, ĥ]`` ``(B, dim)``.

        Raises:
            ValueError: if ``z_tgt`` does not have ``dim`` columns (the message gives both).
        """
        z, h = self.split(z_tgt)
        return self.biggan.generate_from_embedding(z, h, self.truncation if truncation is None else truncation)

    # -- training pairs -------------------------------------------------------------------------------------------
    def sample_labels(
        self, n: int, classes: Sequence[int] | Tensor | None = None, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` labels drawn uniformly from ``classes`` (default: all classes), ``(n,)`` long."""
        pool = torch.arange(self.num_classes) if classes is None else torch.as_tensor(classes).flatten().cpu()
        if pool.numel() == 0 or pool.is_floating_point() or int(pool.min()) < 0 or int(pool.max()) >= self.num_classes:
            raise ValueError(
                f"BigGANTarget: expected classes as integers in [0, {self.num_classes - 1}], received {classes!r}"
            )
        device = generator.device if generator is not None else None
        idx = torch.randint(pool.numel(), (n,), generator=generator, device=device).cpu()
        return pool.long()[idx]

    @torch.no_grad()
    def synthetic_pairs(
        self,
        n: int,
        classes: Sequence[int] | Tensor | None = None,
        truncation: float | None = None,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
        images_from: Literal["embedding", "dequantized"] = "embedding",
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Training pairs for a cINN into BigGAN's space (supplementary G.2).

        Draws labels ``c`` (uniform over ``classes``), noise ``z̃ = truncation · TN(0, I; [−2, 2])``, embeddings
        ``h = W·c`` and their dequantised versions ``ĥ``. Images are generated from ``(z̃, h)`` as in the original
        code (``images_from="embedding"``) or from ``(z̃, ĥ)`` (``"dequantized"``, then ``decode(z_tgt)``
        reproduces them). A source expert applied to the images gives the cINN's condition.

        Arguments:
            n: number of pairs.
            classes: the classes to draw from (default: all).
            truncation: in (0, 1]; default: the target's own (which :meth:`decode` uses).
            generator: for reproducible pairs (on the model's device).
            batch_size: images generated per forward pass.
            images_from: which class embedding the images are generated from.

        Returns:
            images ``(n, 3, H, W)`` in [-1, 1], ``z_tgt`` ``(n, dim)``, labels ``(n,)``; on the model's device.

        Raises:
            ValueError: without a VAE, or for classes out of range.
        """
        if images_from not in ("embedding", "dequantized"):
            raise ValueError(
                f"synthetic_pairs: expected images_from 'embedding' or 'dequantized', received {images_from!r}"
            )
        truncation = self.truncation if truncation is None else check_truncation(truncation, "synthetic_pairs")
        device = self.biggan.embeddings.weight.device
        labels = self.sample_labels(n, classes, generator)
        z = truncated_noise(n, self.z_dim, truncation, generator).to(self.biggan.embeddings.weight)
        h = self.embed(labels.to(device))
        h_hat = self.dequantize(h, generator)
        source = h if images_from == "embedding" else h_hat
        images = torch.empty(n, 3, self.image_size, self.image_size, device=device, dtype=z.dtype)
        for i in range(0, n, batch_size):
            images[i : i + batch_size] = self.biggan.generate_from_embedding(
                z[i : i + batch_size], source[i : i + batch_size], truncation
            )
        return images, self.join(z, h_hat), labels.to(device)

    # -- files ----------------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: PathLike,
        vae_path: PathLike | None = None,
        truncation: float = 1.0,
        map_location: str | torch.device = "cpu",
    ) -> BigGANTarget:
        """Load user-supplied weights from local paths.

        Arguments:
            path: BigGAN-deep weights as accepted by :meth:`BigGAN.from_pretrained` (a pytorch-pretrained-BigGAN
                directory with ``config.json`` + ``pytorch_model.bin`` or ``model.safetensors``).
            vae_path: dequantisation VAE weights (see :meth:`DequantizationVAE.from_file`); default:
                ``dequantization_vae.safetensors`` in the directory ``path`` if present, else no VAE.
            truncation: truncation used by :meth:`decode`.
            map_location: where to load the tensors.

        Raises:
            WeightsNotFoundError: if a path does not exist.
            ValueError: if a file does not fit its architecture (keys and shapes named).

        Example:
            >>> target = BigGANTarget.from_pretrained(
            ...     "~/weights/biggan-deep-128", vae_path="~/weights/vae.safetensors"
            ... )  # doctest: +SKIP
        """
        biggan = BigGAN.from_pretrained(path, map_location)
        p = Path(path).expanduser()
        if vae_path is None and p.is_dir() and (p / VAE_NAME).is_file():
            vae_path = p / VAE_NAME
        vae = DequantizationVAE.from_file(vae_path, map_location) if vae_path is not None else None
        return cls(biggan, vae, truncation)

    def save_pretrained(self, directory: PathLike, safe_serialization: bool = True) -> Path:
        """Write the generator (pytorch-pretrained-BigGAN layout) and, if present, the VAE as ``VAE_NAME``."""
        self.biggan.save_pretrained(directory, safe_serialization)
        if self.vae is not None:
            self.vae.save(Path(directory) / VAE_NAME)
        return Path(directory)
