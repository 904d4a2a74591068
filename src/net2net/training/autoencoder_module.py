"""LightningModule that trains the target autoencoder g = Λ∘Θ with the loss of supplementary Eq. 14-18.

Two optimisers, as in taming-transformers: Adam on the encoder, the decoder and the output log-variance
``log γ`` of the loss, and Adam on the PatchGAN discriminator. Lightning 2.x supports several optimisers
only with manual optimisation, so :meth:`AutoencoderModule.training_step` performs both updates itself.

Step counting: Lightning counts every ``LightningOptimizer.step()`` in ``trainer.global_step``, which would
make one batch count twice once the discriminator is on. Here only the autoencoder update is counted (the
discriminator update goes through ``trainer.strategy.optimizer_step``, which keeps the precision plugin),
so ``global_step``, ``max_steps``, ``disc_start`` and ``every_n_train_steps`` are all in *batches*, as in
the original (PyTorch Lightning 1.x) code.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn

from ..autoencoder import AutoencoderLoss, DiagonalGaussian
from ..config import get_obj_from_str, instantiate_from_config
from ..experts.target import build_encoder_decoder

__all__ = ["AutoencoderModule", "build_loss", "psnr"]

_PERCEPTUAL_PREFIX = "loss.perceptual."  # frozen ImageNet weights: rebuilt from the config, not checkpointed


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image PSNR in dB of images in [-1, 1] (peak 1 on the [0, 1] scale), ``(B,)``.

    Example:
        >>> x = torch.zeros(1, 1, 4, 4)
        >>> round(psnr(x, x + 0.2).item(), 2)  # mse on [0, 1] is 0.01
        20.0
    """
    mse = ((x - y) / 2).square().flatten(1).mean(1)  # [-1, 1] -> [0, 1] scale, (B, C, H, W) -> (B,)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def build_loss(
    loss_config: Mapping[str, Any] | None, in_channels: int, image_size: int | None, key: str = "model.params.loss_config"
) -> AutoencoderLoss:
    """The autoencoder loss (an ``AutoencoderLoss``, or a module with its interface) from its ``target``/``params``.

    Nested ``perceptual_config`` and ``discriminator_config`` blocks inside ``params`` are instantiated and
    passed as ``perceptual=`` and ``discriminator=``. Where the target accepts them and they are not given,
    ``disc_in_channels`` is set to the image channels and ``disc_n_layers`` to 2 below 64 px (3 from 64 px,
    the 70x70 PatchGAN). ``None`` gives ``AutoencoderLoss`` with those defaults and no perceptual term.
    """
    if loss_config is None:
        loss_config = {"target": "net2net.autoencoder.AutoencoderLoss"}
    if not isinstance(loss_config, Mapping):
        raise TypeError(f"{key}: expected a mapping with 'target' and 'params', got {type(loss_config).__name__}")
    cfg = dict(loss_config)
    params = dict(cfg.get("params") or {})
    perceptual_cfg = params.pop("perceptual_config", None)
    discriminator_cfg = params.pop("discriminator_config", None)
    if perceptual_cfg is not None:
        params["perceptual"] = instantiate_from_config(perceptual_cfg, key=f"{key}.params.perceptual_config")
    if discriminator_cfg is not None:
        params["discriminator"] = instantiate_from_config(discriminator_cfg, key=f"{key}.params.discriminator_config")
    try:
        target_cls = get_obj_from_str(str(cfg.get("target")))
        accepted: Mapping[str, inspect.Parameter] = inspect.signature(target_cls).parameters
    except (ValueError, TypeError):
        accepted = {}  # instantiate_from_config below reports the bad target with the key
    if "discriminator" not in params:
        if "disc_in_channels" in accepted:
            params.setdefault("disc_in_channels", in_channels)
        if "disc_n_layers" in accepted and image_size is not None:
            params.setdefault("disc_n_layers", 2 if image_size < 64 else 3)
    cfg["params"] = params
    return instantiate_from_config(cfg, key=key)


class AutoencoderModule(L.LightningModule):
    """Train Θ (encoder), Λ (decoder), γ and the discriminator on batches ``{"image": (B, C, H, W) in [-1, 1]}``.

    Logged scalars: ``train/*`` from the loss every step (``total_loss``, ``nll_loss``, ``rec_loss``, ``kl_loss``,
    ``log_gamma``, ``g_loss``, ``d_weight``, ``disc_loss``, ...), and per validation run ``val/*`` of the same
    loss on the posterior mean reconstruction plus ``val/l1`` (mean absolute error in [-1, 1] units) and
    ``val/psnr`` (dB, peak 1 on the [0, 1] scale).

    Arguments:
        image_size: side of the square images (needed for the presets).
        in_channels: image channels.
        z_dim: latent dimension.
        preset: ``"small"`` or ``"paper"`` (:func:`net2net.autoencoder.build_autoencoder`).
        encoder_config: optional ``target``/``params`` block replacing the preset's encoder.
        decoder_config: optional ``target``/``params`` block replacing the preset's decoder.
        loss_config: ``target``/``params`` block of the loss (see :func:`build_loss`); its ``params`` may hold a
            nested ``perceptual_config`` block (e.g. :class:`net2net.autoencoder.perceptual.PerceptualDistance`).
        learning_rate: Adam learning rate of both optimisers (absolute, not scaled by the batch size).
        betas: Adam betas, (0.5, 0.9) as in taming-transformers.
        image_key: key of the images in a batch.
        channels_last: keep convolution weights and images in the channels-last memory format (NHWC). On CPUs
            (oneDNN) this made a training step of the small preset about 1.7x faster, and the perceptual
            network's forward and backward about 1.5x faster; saved weights are the same tensors either way.

    Example:
        >>> m = AutoencoderModule(image_size=28, in_channels=1, z_dim=8)
        >>> q = m.encode(torch.zeros(2, 1, 28, 28))
        >>> m.decode(q.sample()).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        image_size: int | None = None,
        in_channels: int = 3,
        z_dim: int = 128,
        preset: str = "small",
        encoder_config: Mapping[str, Any] | None = None,
        decoder_config: Mapping[str, Any] | None = None,
        loss_config: Mapping[str, Any] | None = None,
        learning_rate: float = 2e-4,
        betas: Sequence[float] = (0.5, 0.9),
        image_key: str = "image",
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if not (isinstance(learning_rate, (int, float)) and learning_rate > 0 and math.isfinite(learning_rate)):
            raise ValueError(f"model.params.learning_rate: expected a positive number, got {learning_rate!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"model.params.betas: expected two numbers in [0, 1), got {list(betas)!r}")
        self.save_hyperparameters()
        self.automatic_optimization = False  # two optimisers: Lightning 2.x requires manual optimisation
        self.encoder, self.decoder = build_encoder_decoder(
            image_size, in_channels, z_dim, preset, encoder_config, decoder_config, key="model.params"
        )
        self.loss = build_loss(loss_config, in_channels, image_size)
        if not isinstance(getattr(self.loss, "discriminator", None), nn.Module):
            raise ValueError("model.params.loss_config: the loss must have a .discriminator module")
        self.learning_rate = float(learning_rate)
        self.betas = (float(betas[0]), float(betas[1]))
        self.image_key = image_key
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        if channels_last:
            self.to(memory_format=torch.channels_last)  # only 4-d parameters and buffers change layout

    # -- the autoencoder ------------------------------------------------------------------------------------
    def encode(self, x: Tensor) -> DiagonalGaussian:
        """The posterior ``q(z | x)`` of images ``x`` in [-1, 1]."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Images in [-1, 1] from codes ``z`` of shape ``(B, z_dim)``."""
        return self.decoder(z)

    def forward(self, x: Tensor, sample_posterior: bool = True) -> tuple[Tensor, DiagonalGaussian]:
        """``(reconstruction, posterior)``; the code is sampled, or the posterior mean with ``sample_posterior=False``."""
        posterior = self.encode(x)
        z = posterior.sample() if sample_posterior else posterior.mode()
        return self.decode(z), posterior

    def get_input(self, batch: Mapping[str, Tensor] | Tensor) -> Tensor:
        """The image tensor of a batch (a dict with ``image_key``, or a bare tensor)."""
        x = batch[self.image_key] if isinstance(batch, Mapping) else batch
        if not isinstance(x, Tensor) or x.dim() != 4:
            raise ValueError(
                f"AutoencoderModule: expected batch[{self.image_key!r}] to be images (B, C, H, W), got "
                f"{tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
            )
        return x.float().contiguous(memory_format=self.memory_format)

    # -- training -------------------------------------------------------------------------------------------
    def _ae_parameters(self) -> list[nn.Parameter]:
        """Encoder, decoder and the loss's own trainable parameters (``log γ``), not the discriminator's."""
        loss_params = [
            p for n, p in self.loss.named_parameters() if not n.startswith("discriminator.") and p.requires_grad
        ]
        return [*self.encoder.parameters(), *self.decoder.parameters(), *loss_params]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        opt_ae = torch.optim.Adam(self._ae_parameters(), lr=self.learning_rate, betas=self.betas)
        opt_disc = torch.optim.Adam(self.loss.discriminator.parameters(), lr=self.learning_rate, betas=self.betas)
        return [opt_ae, opt_disc]

    def training_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x = self.get_input(batch)
        opt_ae, opt_disc = self.optimizers()  # type: ignore[attr-defined]  # a list of two; typed as one or a list
        step = self.global_step

        # autoencoder (Θ, Λ, γ): Eq. 14 + λ Eq. 15, λ adaptive (Eq. 17)
        xrec, posterior = self(x)
        ae_loss, log = self.loss(x, xrec, posterior, 0, step, last_layer=self.decoder.last_layer, split="train")
        if not torch.isfinite(ae_loss):
            raise FloatingPointError(f"step {step}: the autoencoder loss is not finite ({ae_loss.item()})")
        opt_ae.zero_grad(set_to_none=True)
        self.manual_backward(ae_loss)
        opt_ae.step()  # counted: global_step += 1

        # discriminator, once switched on (before disc_start its loss is exactly 0: skip the work)
        if self.loss.disc_active(step):
            d_loss, log_d = self.loss(x, xrec.detach(), None, 1, step, split="train")
            opt_disc.zero_grad(set_to_none=True)  # also drops the generator pass's gradients on D
            self.manual_backward(d_loss)
            # not counted in global_step (see the module docstring); keeps the precision plugin's handling
            self.trainer.strategy.optimizer_step(opt_disc.optimizer, closure=_no_closure)
            log.update(log_d)

        self.log("train/rec_loss", log.pop("train/rec_loss"), prog_bar=True, batch_size=x.shape[0])
        self.log_dict(log, prog_bar=False, on_step=True, on_epoch=False, batch_size=x.shape[0])

    def validation_step(self, batch: Mapping[str, Tensor], batch_idx: int) -> None:
        x = self.get_input(batch)
        xrec, posterior = self(x, sample_posterior=False)
        step = self.global_step
        _, log = self.loss(x, xrec, posterior, 0, step, last_layer=self.decoder.last_layer, split="val")
        if self.loss.disc_active(step):
            _, log_d = self.loss(x, xrec, None, 1, step, split="val")
            log.update(log_d)
        log["val/l1"] = (x - xrec).abs().mean()
        log["val/psnr"] = psnr(x, xrec).mean()
        rec = log.pop("val/rec_loss")
        self.log("val/rec_loss", rec, prog_bar=True, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        self.log_dict(log, on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)

    # -- images ---------------------------------------------------------------------------------------------
    @torch.no_grad()
    def log_images(
        self, batch: Mapping[str, Tensor], max_images: int = 8, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """``inputs``, ``reconstructions`` (posterior mean) and ``samples`` (``z ~ N(0, I)``), each ``(N, C, H, W)``.

        ``generator`` (a CPU generator) draws the prior codes, so a fixed seed gives the same codes at every step.
        """
        x = self.get_input(batch)[:max_images].to(self.device)
        xrec, _ = self(x, sample_posterior=False)
        z_dim = self.decoder.z_dim if hasattr(self.decoder, "z_dim") else self.encoder(x).mean.shape[1]
        z = torch.randn(x.shape[0], z_dim, generator=generator).to(self.device, x.dtype)
        return {"inputs": x, "reconstructions": xrec, "samples": self.decode(z)}

    # -- checkpoints ----------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Leave the frozen perceptual network out of checkpoints (19 MB for EfficientNet-Lite0): it is rebuilt
        from its pretrained weights when the module is constructed."""
        state = checkpoint.get("state_dict", {})
        for k in [k for k in state if k.startswith(_PERCEPTUAL_PREFIX)]:
            del state[k]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Put the perceptual network's current (pretrained) weights back, so that strict loading succeeds."""
        state = checkpoint.get("state_dict")
        if state is None:
            return
        for k, v in self.state_dict().items():
            if k.startswith(_PERCEPTUAL_PREFIX) and k not in state:
                state[k] = v


def _no_closure() -> None:
    return None
