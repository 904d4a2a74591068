"""The target autoencoder g = Λ∘Θ of supplementary Sec. F: ResNet encoder, BigGAN decoder, PatchGAN, loss.

``build_autoencoder`` gives the two presets: ``"small"`` (28/32/64 px, trains on a CPU in minutes) and
``"paper"`` (ResNet-101 encoder and BigGAN decoder with ch = 96, Tab. S2, 128 px).
"""

from __future__ import annotations

from typing import Literal

from .decoder import ConditionalBatchNorm2d, Decoder, NonLocalBlock, UpBlock, decoder_layout
from .discriminator import PatchDiscriminator
from .encoder import Bottleneck, DiagonalGaussian, Encoder
from .losses import AutoencoderLoss, hinge_d_loss, vanilla_d_loss

__all__ = [
    "AutoencoderLoss",
    "Bottleneck",
    "ConditionalBatchNorm2d",
    "Decoder",
    "DiagonalGaussian",
    "Encoder",
    "NonLocalBlock",
    "PatchDiscriminator",
    "UpBlock",
    "build_autoencoder",
    "decoder_layout",
    "hinge_d_loss",
    "vanilla_d_loss",
]

Preset = Literal["small", "paper"]


def build_autoencoder(
    image_size: int, in_channels: int = 3, z_dim: int = 128, preset: Preset = "small"
) -> tuple[Encoder, Decoder]:
    """Encoder Θ and decoder Λ with the widths of a preset.

    - ``"small"``: encoder depths (1, 1, 1, 1), base width 16; decoder ch = 32, 100 pseudo classes,
      attention at 16 px (14 px for 28 px images). About 0.5M + 0.5M parameters at 28 px, 0.5M + 0.8M at 32 px.
    - ``"paper"`` (Tab. S2): ResNet-101 (depths (3, 4, 23, 3), base width 64); BigGAN decoder with ch = 96,
      1000 pseudo classes, spectral norm, attention at 64 px (at ``image_size / 2`` below 128 px).

    Arguments:
        image_size: side of the square images (28, 32, 64, 128, 256; see :func:`decoder_layout`).
        in_channels: image channels (decoder output channels too).
        z_dim: latent dimension.
        preset: ``"small"`` or ``"paper"``.

    Example:
        >>> enc, dec = build_autoencoder(28, in_channels=1, z_dim=16)
        >>> dec(enc(torch.zeros(2, 1, 28, 28)).sample()).shape
        torch.Size([2, 1, 28, 28])
    """
    start, n_up = decoder_layout(image_size)
    resolutions = [start * 2 ** (i + 1) for i in range(n_up)]  # outputs of the decoder's up-blocks
    if preset == "small":
        attn = next((r for r in (16, 14) if r in resolutions), None)
        encoder = Encoder(image_size, in_channels, z_dim, depths=(1, 1, 1, 1), base_width=16)
        decoder = Decoder(image_size, in_channels, z_dim, ch=32, attn_resolution=attn, n_classes=100)
    elif preset == "paper":
        attn = next((r for r in (64, image_size // 2) if r in resolutions and r < image_size), None)
        encoder = Encoder(image_size, in_channels, z_dim, depths=(3, 4, 23, 3), base_width=64)
        decoder = Decoder(
            image_size, in_channels, z_dim, ch=96, attn_resolution=attn, n_classes=1000, h_dim=128, spectral_norm=True
        )
    else:
        raise ValueError(f"build_autoencoder: preset must be 'small' or 'paper', got {preset!r}")
    return encoder, decoder
