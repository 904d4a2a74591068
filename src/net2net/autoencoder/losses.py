"""The autoencoder objective of supplementary Eq. 14-18: VAE loss with learnable output variance + adaptive GAN loss."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .discriminator import PatchDiscriminator
from .encoder import DiagonalGaussian

__all__ = ["AutoencoderLoss", "hinge_d_loss", "vanilla_d_loss"]

DiscLoss = Literal["hinge", "vanilla"]


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Hinge discriminator loss ``(mean relu(1 - D(x)) + mean relu(1 + D(x_hat))) / 2``."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """Binary cross-entropy discriminator loss ``(mean -log σ(D(x)) + mean -log(1 - σ(D(x_hat)))) / 2``."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


class AutoencoderLoss(nn.Module):
    """Loss of g = Λ∘Θ (Eq. 14-18) for two optimizers, designed like taming-transformers' LPIPSWithDiscriminator.

    Generator step (``optimizer_idx=0``), per sample ``rec = perceptual_weight * P(x, x_hat) +
    pixel_weight * mean|x - x_hat|`` and, averaged over the batch,

        ``loss = [rec / γ + log γ] + kl_weight * KL + λ * L_GAN``,
        ``λ = disc_weight * ||∇_L nll|| / (||∇_L L_GAN|| + δ)``

    with γ = ``exp(log_gamma)`` learnable, ∇_L the gradient w.r.t. the decoder's last layer (Eq. 17; λ is
    detached and clamped to [0, 1e4]) and ``L_GAN = -mean D(x_hat)`` (hinge) or ``mean softplus(-D(x_hat))``
    (vanilla, non-saturating). Before ``disc_start`` steps the GAN term is exactly 0 and the discriminator
    is not run. Discriminator step (``optimizer_idx=1``): hinge or vanilla loss on detached inputs, times 0
    before ``disc_start``.

    Note on scale: the original code sums the whole per-pixel loss (log γ and the perceptual term
    included) over pixels, while here ``rec`` is a mean per sample, so the original ``kl_weight=1e-6``
    corresponds to ``1e-6 / (C * H * W)`` here (2.0e-11 at 128x128 RGB).

    Arguments:
        perceptual: module ``P(x, y) -> (B,)`` of distances between images in [-1, 1], or None for the pixel
            term alone. It is frozen (``requires_grad_(False)``) and kept in eval mode.
        discriminator: the discriminator; None builds ``PatchDiscriminator(disc_in_channels, disc_ndf, disc_n_layers)``.
        kl_weight: weight of the KL term.
        pixel_weight: weight of the L1 term in ``rec``.
        perceptual_weight: weight of the perceptual term in ``rec``.
        disc_weight: factor on the adaptive weight λ.
        disc_start: global step from which the GAN terms are switched on.
        disc_loss: ``"hinge"`` or ``"vanilla"``.
        log_gamma_init: initial ``log γ``.
        delta: δ of Eq. 17.
        disc_in_channels, disc_ndf, disc_n_layers: for the default discriminator.

    Example:
        >>> loss_fn = AutoencoderLoss(disc_in_channels=1, disc_n_layers=2, disc_ndf=8)
        >>> x = torch.rand(2, 1, 28, 28) * 2 - 1
        >>> q = DiagonalGaussian(torch.zeros(2, 4), torch.zeros(2, 4))
        >>> loss, log = loss_fn(x, x.clone().requires_grad_(), q, optimizer_idx=0, global_step=0)
    """

    def __init__(
        self,
        perceptual: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        kl_weight: float = 1e-4,
        pixel_weight: float = 1.0,
        perceptual_weight: float = 1.0,
        disc_weight: float = 1.0,
        disc_start: int = 0,
        disc_loss: DiscLoss = "hinge",
        log_gamma_init: float = 0.0,
        delta: float = 1e-4,
        disc_in_channels: int = 3,
        disc_ndf: int = 64,
        disc_n_layers: int = 3,
    ) -> None:
        super().__init__()
        if disc_loss not in ("hinge", "vanilla"):
            raise ValueError(f"AutoencoderLoss: disc_loss must be 'hinge' or 'vanilla', got {disc_loss!r}")
        if perceptual is not None and not isinstance(perceptual, nn.Module):
            raise TypeError(
                f"AutoencoderLoss: perceptual must be an nn.Module or None, got {type(perceptual).__name__}"
            )
        if min(kl_weight, pixel_weight, perceptual_weight, disc_weight, delta) < 0 or disc_start < 0:
            raise ValueError("AutoencoderLoss: weights, delta and disc_start must be non-negative")
        self.perceptual = perceptual.eval().requires_grad_(False) if perceptual is not None else None
        self.discriminator = (
            discriminator
            if discriminator is not None
            else PatchDiscriminator(disc_in_channels, ndf=disc_ndf, n_layers=disc_n_layers)
        )
        self.kl_weight = kl_weight
        self.pixel_weight = pixel_weight
        self.perceptual_weight = perceptual_weight
        self.disc_weight = disc_weight
        self.disc_start = disc_start
        self.disc_loss = disc_loss
        self.delta = delta
        self.log_gamma = nn.Parameter(torch.tensor(float(log_gamma_init)))

    def train(self, mode: bool = True) -> AutoencoderLoss:
        super().train(mode)
        if self.perceptual is not None:
            self.perceptual.eval()  # a frozen expert stays in eval mode
        return self

    # -- pieces -------------------------------------------------------------------------------------------
    def reconstruction(self, inputs: Tensor, reconstructions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample ``(rec, pixel, perceptual)``, each ``(B,)``; perceptual is zeros when there is none."""
        if inputs.shape != reconstructions.shape:
            raise ValueError(
                f"AutoencoderLoss: inputs {tuple(inputs.shape)} and reconstructions "
                f"{tuple(reconstructions.shape)} must have the same shape"
            )
        b = inputs.shape[0]
        pixel = (inputs - reconstructions).abs().flatten(1).mean(1)  # (B, C, H, W) -> (B,)
        if self.perceptual is None or self.perceptual_weight == 0:
            perceptual = torch.zeros_like(pixel)
        else:
            perceptual = self.perceptual(inputs.contiguous(), reconstructions.contiguous())
            if perceptual.numel() != b:
                raise ValueError(
                    f"AutoencoderLoss: perceptual(x, y) must return one distance per sample, shape ({b},), "
                    f"got {tuple(perceptual.shape)}"
                )
            perceptual = perceptual.reshape(b)  # e.g. (B, 1, 1, 1) -> (B,)
        rec = self.pixel_weight * pixel + self.perceptual_weight * perceptual
        return rec, pixel, perceptual

    def generator_adversarial_loss(self, logits_fake: Tensor) -> Tensor:
        """``L_GAN`` of the generator: ``-mean D`` (hinge) or ``mean softplus(-D)`` (vanilla, non-saturating)."""
        if self.disc_loss == "hinge":
            return -logits_fake.mean()
        return F.softplus(-logits_fake).mean()

    def discriminator_loss(self, logits_real: Tensor, logits_fake: Tensor) -> Tensor:
        """Hinge or vanilla discriminator loss on real and fake logits."""
        if self.disc_loss == "hinge":
            return hinge_d_loss(logits_real, logits_fake)
        return vanilla_d_loss(logits_real, logits_fake)

    def adaptive_weight(self, nll: Tensor, g_loss: Tensor, last_layer: Tensor) -> Tensor:
        """λ of Eq. 17: ``disc_weight * ||∇ nll|| / (||∇ g_loss|| + δ)`` w.r.t. ``last_layer``, detached."""
        if not last_layer.requires_grad:
            raise ValueError("AutoencoderLoss: last_layer must require grad to compute the adaptive weight")
        nll_grad = torch.autograd.grad(nll, last_layer, retain_graph=True)[0]
        g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
        weight = nll_grad.norm() / (g_grad.norm() + self.delta)
        return weight.clamp(0.0, 1e4).detach() * self.disc_weight

    def disc_active(self, global_step: int) -> bool:
        """Whether the GAN terms are on at ``global_step``."""
        return global_step >= self.disc_start

    # -- the two steps ------------------------------------------------------------------------------------
    def forward(
        self,
        inputs: Tensor,
        reconstructions: Tensor,
        posterior: DiagonalGaussian | None,
        optimizer_idx: int,
        global_step: int,
        last_layer: Tensor | None = None,
        split: str = "train",
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and detached scalars to log, for the autoencoder (``optimizer_idx=0``) or the discriminator (1).

        Arguments:
            inputs: images ``x`` in [-1, 1], ``(B, C, H, W)``.
            reconstructions: ``x_hat = Λ(z)`` with ``z`` sampled from ``posterior``.
            posterior: ``q(z | x)``; needed for ``optimizer_idx=0`` (None skips the KL term).
            optimizer_idx: 0 for Θ, Λ and γ; 1 for the discriminator.
            global_step: the training step, compared with ``disc_start``.
            last_layer: the decoder's last weight for λ (Eq. 17); None uses ``λ = disc_weight``. When gradients
                are disabled (validation), λ is 0.
            split: prefix of the logged keys.
        """
        if optimizer_idx == 0:
            return self._generator_step(inputs, reconstructions, posterior, global_step, last_layer, split)
        if optimizer_idx == 1:
            return self._discriminator_step(inputs, reconstructions, global_step, split)
        raise ValueError(
            f"AutoencoderLoss: optimizer_idx must be 0 (autoencoder) or 1 (discriminator), got {optimizer_idx}"
        )

    def _generator_step(
        self,
        inputs: Tensor,
        reconstructions: Tensor,
        posterior: DiagonalGaussian | None,
        global_step: int,
        last_layer: Tensor | None,
        split: str,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        rec, pixel, perceptual = self.reconstruction(inputs, reconstructions)
        nll = (rec / torch.exp(self.log_gamma) + self.log_gamma).mean()  # Eq. 18, mean over the batch
        kl = posterior.kl().mean() if posterior is not None else nll.new_zeros(())
        loss = nll + self.kl_weight * kl
        zero = nll.new_zeros(())
        g_loss, d_weight = zero, zero
        if self.disc_active(global_step):
            g_loss = self.generator_adversarial_loss(self.discriminator(reconstructions.contiguous()))
            if last_layer is None:
                d_weight = torch.full_like(zero, self.disc_weight)
            elif torch.is_grad_enabled():
                d_weight = self.adaptive_weight(nll, g_loss, last_layer)
            loss = loss + d_weight * g_loss
        log = {
            "total_loss": loss,
            "nll_loss": nll,
            "rec_loss": rec.mean(),
            "pixel_loss": pixel.mean(),
            "perceptual_loss": perceptual.mean(),
            "kl_loss": kl,
            "log_gamma": self.log_gamma,
            "g_loss": g_loss,
            "d_weight": d_weight,
            "disc_factor": torch.full_like(zero, float(self.disc_active(global_step))),
        }
        return loss, {f"{split}/{k}": v.detach().clone() for k, v in log.items()}

    def _discriminator_step(
        self, inputs: Tensor, reconstructions: Tensor, global_step: int, split: str
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits_real = self.discriminator(inputs.detach().contiguous())
        logits_fake = self.discriminator(reconstructions.detach().contiguous())
        factor = float(self.disc_active(global_step))
        loss = factor * self.discriminator_loss(logits_real, logits_fake)
        log = {
            "disc_loss": loss,
            "logits_real": logits_real.mean(),
            "logits_fake": logits_fake.mean(),
        }
        return loss, {f"{split}/{k}": v.detach().clone() for k, v in log.items()}
