"""PatchGAN discriminator of pix2pix (Isola et al. 2017), used for the autoencoder's GAN loss (Eq. 15)."""

from __future__ import annotations

from torch import Tensor, nn

from ..flows.checks import check_ints
from .encoder import check_image

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """pix2pix's ``NLayerDiscriminator``: a map of real/fake logits, one per overlapping patch.

    ``Conv4x4 s2, LReLU(0.2)``, then ``n_layers - 1 x [Conv4x4 s2, BN, LReLU]`` with doubling width (at
    most ``8 * ndf``), ``Conv4x4 s1, BN, LReLU``, ``Conv4x4 s1 -> 1``. As in pix2pix, ``n_layers`` counts
    all stride-2 convolutions, so ``n_layers=3`` is the 70x70 PatchGAN; use 2 for 28/32 px images.
    Weights are drawn from N(0, 0.02) (BN gains from N(1, 0.02)) as in pix2pix.

    Arguments:
        in_channels: image channels.
        ndf: width of the first layer.
        n_layers: number of stride-2 convolutions (at least 1).

    Example:
        >>> PatchDiscriminator(1, ndf=8, n_layers=2)(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 1, 5, 5])
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        check_ints({"in_channels": in_channels, "ndf": ndf, "n_layers": n_layers}, "PatchDiscriminator")
        self.in_channels = in_channels
        self.n_layers = n_layers
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.main = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def output_size(self, size: int) -> int:
        """Side of the logits map for an input side ``size``: ``floor(size / 2**n_layers) - 2``."""
        for _ in range(self.n_layers):
            size = size // 2  # conv 4x4, stride 2, padding 1
        return size - 2  # two conv 4x4, stride 1, padding 1

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, 1, h, w)`` of images ``(B, in_channels, H, W)``; larger means "real"."""
        check_image(x, "PatchDiscriminator", self.in_channels, None)
        if min(self.output_size(x.shape[2]), self.output_size(x.shape[3])) < 1:
            raise ValueError(
                f"PatchDiscriminator: images of size {x.shape[2]}x{x.shape[3]} are too small for n_layers="
                f"{self.n_layers}: each side must be at least {3 * 2**self.n_layers}; use fewer layers"
            )
        return self.main(x)
