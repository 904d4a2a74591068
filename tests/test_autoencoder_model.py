"""The target autoencoder g = Λ∘Θ of supplementary Sec. F: shapes, the Gaussian head, the loss of Eq. 14-18."""

from __future__ import annotations

import math
import time

import pytest
import torch
from torch import Tensor, nn

from net2net.autoencoder import (
    AutoencoderLoss,
    Decoder,
    DiagonalGaussian,
    Encoder,
    NonLocalBlock,
    PatchDiscriminator,
    build_autoencoder,
    decoder_layout,
    hinge_d_loss,
    vanilla_d_loss,
)


class TinyPerceptual(nn.Module):
    """Stand-in for the perceptual distance: squared distance of fixed random conv features, (B,)."""

    def __init__(self, channels: int, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=g) * 0.3)
            self.conv.bias.zero_()

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return (torch.relu(self.conv(x)) - torch.relu(self.conv(y))).square().mean(dim=(1, 2, 3))


def _images(b: int, c: int, s: int, seed: int = 0) -> Tensor:
    return torch.rand(b, c, s, s, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _tiny(c: int = 1, s: int = 28, z_dim: int = 8) -> tuple[Encoder, Decoder, PatchDiscriminator]:
    torch.manual_seed(0)
    enc = Encoder(s, c, z_dim, base_width=4)
    dec = Decoder(s, c, z_dim, ch=4, n_classes=10, h_dim=8, class_hidden_dim=16)
    disc = PatchDiscriminator(c, ndf=8, n_layers=2)
    return enc, dec, disc


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


# -- shapes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_small_preset_shapes(size: int, channels: int) -> None:
    torch.manual_seed(0)
    enc, dec = build_autoencoder(size, channels, z_dim=16, preset="small")
    q = enc(_images(2, channels, size))
    assert q.mean.shape == q.logvar.shape == q.std.shape == (2, 16)
    assert q.kl().shape == (2,)
    y = dec(q.sample())
    assert y.shape == (2, channels, size, size)
    assert torch.isfinite(y).all()
    disc = PatchDiscriminator(channels, ndf=8, n_layers=3 if size >= 64 else 2)
    logits = disc(y)
    side = disc.output_size(size)
    assert logits.shape == (2, 1, side, side) and side >= 1


def test_decoder_layout_and_paper_encoder_stages() -> None:
    assert decoder_layout(28) == (7, 2)
    assert decoder_layout(32) == (4, 3)
    assert decoder_layout(64) == (4, 4)
    assert decoder_layout(128) == (4, 5)
    assert decoder_layout(256) == (4, 6)
    # Tab. S2a with a narrow width: stem + maxpool to 32x32, then 32, 16, 8, 4 with 4x expansion.
    enc = Encoder(128, 3, z_dim=4, depths=(1, 1, 1, 1), base_width=4)
    shapes = []
    for stage in enc.stages:
        stage.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
    enc(_images(2, 3, 128))
    assert shapes == [(16, 32, 32), (32, 16, 16), (64, 8, 8), (128, 4, 4)]
    # Small images: stride-1 stem, no max-pool.
    enc = Encoder(28, 1, z_dim=4, base_width=4)
    assert enc.stem(torch.zeros(2, 1, 28, 28)).shape == (2, 4, 28, 28)


def test_decoder_widths_follow_biggan_at_128() -> None:
    dec = Decoder(128, 3, z_dim=16, ch=4, attn_resolution=64, n_classes=10)
    widths = [(b.conv1.in_channels, b.conv1.out_channels) for b in dec.blocks]
    assert widths == [(64, 64), (64, 32), (32, 16), (16, 8), (8, 4)]  # 16,16,8,4,2,1 x ch
    assert dec.attn_index == 3 and dec.attention is not None and dec.attention.channels == 8  # 64x64x2ch
    assert dec.fc.out_features == 4 * 4 * 16 * 4


def test_decoder_output_in_range() -> None:
    torch.manual_seed(0)
    dec = Decoder(32, 3, z_dim=8, ch=4, attn_resolution=16, n_classes=10)
    y = dec(100 * torch.randn(4, 8))  # large codes drive the output into saturation
    assert y.abs().max() <= 1.0
    assert y.min() < -0.9 and y.max() > 0.9


# -- the Gaussian head ------------------------------------------------------------------------------------


def test_kl_of_known_gaussian_matches_closed_form() -> None:
    # N(1, e) in one dimension: KL = (mu^2 + var - 1 - log var) / 2 = (e - 1) / 2
    q = DiagonalGaussian(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert q.kl().item() == pytest.approx((math.e - 1) / 2, rel=1e-6)
    # against torch.distributions, for the encoder's own output
    enc, _, _ = _tiny()
    enc.eval()
    with torch.no_grad():
        q = enc(_images(3, 1, 28))
        q = DiagonalGaussian(q.mean + 0.5, q.logvar - 0.7)  # away from the standard normal
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(q.mean, q.std), torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    torch.testing.assert_close(q.kl(), ref, rtol=1e-5, atol=1e-6)
    assert torch.equal(q.mode(), q.mean)
    torch.testing.assert_close(q.var, q.std.square())


def test_sampling_is_reparameterised_and_seeded() -> None:
    mean = torch.tensor([[0.5, -1.0, 2.0]], requires_grad=True)
    logvar = torch.tensor([[0.0, 1.0, -2.0]], requires_grad=True)
    q = DiagonalGaussian(mean, logvar)
    z = q.sample(torch.Generator().manual_seed(3))
    eps = torch.randn((1, 3), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, mean + torch.exp(0.5 * logvar) * eps)
    z.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones(1, 3))
    torch.testing.assert_close(logvar.grad, 0.5 * torch.exp(0.5 * logvar.detach()) * eps)
    # through the encoder: the head and the first convolution receive gradients
    enc, _, _ = _tiny()
    enc(_images(2, 1, 28)).sample().square().sum().backward()
    assert enc.head.weight.grad is not None and enc.head.weight.grad.abs().sum() > 0
    assert enc.stem[0].weight.grad is not None and enc.stem[0].weight.grad.abs().sum() > 0


def test_paper_encoder_is_resnet101() -> None:
    enc = Encoder(128, 3, z_dim=128, depths=(3, 4, 23, 3), base_width=64)
    # torchvision's resnet101 without its 1000-way fc has 42,500,160 parameters; + the Gaussian head
    assert _n_params(enc) == 42_500_160 + 2048 * 256 + 256
    assert enc.feature_dim == 2048


# -- building blocks --------------------------------------------------------------------------------------


def test_non_local_block_identity_at_init_and_matches_naive_attention() -> None:
    torch.manual_seed(0)
    block = NonLocalBlock(16)
    x = torch.randn(2, 16, 8, 6)
    y = block(x)
    assert y.shape == x.shape
    assert torch.equal(y, x)  # gamma = 0
    with torch.no_grad():
        block.gamma.fill_(0.7)
    y = block(x)
    q = block.theta(x).flatten(2)  # (B, 2, 48)
    k = nn.functional.max_pool2d(block.phi(x), 2).flatten(2)  # (B, 2, 12)
    v = nn.functional.max_pool2d(block.g(x), 2).flatten(2)  # (B, 8, 12)
    attn = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, 48, 12), unscaled as in BigGAN
    ref = x + 0.7 * block.o((v @ attn.transpose(1, 2)).view(2, 8, 8, 6))
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="even"):
        block(torch.randn(2, 16, 7, 7))


def test_discriminator_shape_and_init() -> None:
    torch.manual_seed(0)
    disc = PatchDiscriminator(3, ndf=16, n_layers=3)
    assert disc(torch.zeros(2, 3, 128, 128)).shape == (2, 1, 14, 14)  # 70x70 PatchGAN at 128 px
    weights = torch.cat([m.weight.flatten() for m in disc.modules() if isinstance(m, nn.Conv2d)])
    assert abs(weights.std().item() - 0.02) < 0.002
    with pytest.raises(ValueError, match="too small"):
        PatchDiscriminator(1, ndf=8, n_layers=3)(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="expected 3 channel"):
        disc(torch.zeros(2, 1, 64, 64))


def test_spectral_norm_and_group_norm_options() -> None:
    torch.manual_seed(0)
    dec = Decoder(32, 3, z_dim=8, ch=4, attn_resolution=16, n_classes=10, spectral_norm=True)
    y = dec(torch.randn(2, 8))
    (grad,) = torch.autograd.grad(y.square().mean(), dec.last_layer)
    assert grad.shape == dec.last_layer.shape and grad.abs().sum() > 0
    enc = Encoder(32, 3, z_dim=8, base_width=4, norm="group")
    assert isinstance(enc.stem[1], nn.GroupNorm)
    assert enc(_images(1, 3, 32)).mean.shape == (1, 8)


# -- the loss ---------------------------------------------------------------------------------------------


def _loss(disc: PatchDiscriminator, **kw) -> AutoencoderLoss:
    kw = {"perceptual": TinyPerceptual(1), "discriminator": disc, "kl_weight": 0.01, "perceptual_weight": 0.5} | kw
    return AutoencoderLoss(**kw)


def test_log_gamma_gets_gradient_and_is_optimal_at_mean_rec() -> None:
    enc, dec, disc = _tiny()
    loss_fn = _loss(disc, disc_start=10)
    x = _images(2, 1, 28)
    q = enc(x)
    loss, _ = loss_fn(x, dec(q.sample()), q, optimizer_idx=0, global_step=0)
    loss.backward()
    assert loss_fn.log_gamma.grad is not None and loss_fn.log_gamma.grad.abs() > 0
    # d/d log γ [rec / γ + log γ] = 1 - rec / γ: zero at γ = mean rec (Eq. 14)
    loss_fn.log_gamma.grad = None
    x_hat = dec(q.mean).detach()
    rec = loss_fn.reconstruction(x, x_hat)[0].mean().item()
    with torch.no_grad():
        loss_fn.log_gamma.fill_(math.log(rec))
    loss_fn(x, x_hat, None, 0, 0)[0].backward()
    assert abs(loss_fn.log_gamma.grad.item()) < 1e-5


def test_nll_matches_eq14_by_hand() -> None:
    enc, dec, disc = _tiny()
    loss_fn = _loss(disc, disc_start=10, pixel_weight=2.0, log_gamma_init=0.3)
    x = _images(2, 1, 28)
    q = enc(x)
    x_hat = dec(q.sample())
    loss, log = loss_fn(x, x_hat, q, optimizer_idx=0, global_step=9, split="val")
    rec = 0.5 * loss_fn.perceptual(x, x_hat) + 2.0 * (x - x_hat).abs().mean(dim=(1, 2, 3))
    nll = (rec / math.exp(0.3) + 0.3).mean()
    torch.testing.assert_close(log["val/nll_loss"], nll.detach())
    torch.testing.assert_close(log["val/kl_loss"], q.kl().mean().detach())
    torch.testing.assert_close(loss, nll + 0.01 * q.kl().mean())


def test_adaptive_weight_equals_gradient_ratio_by_hand() -> None:
    enc, dec, disc = _tiny()
    loss_fn = _loss(disc, disc_start=5, disc_weight=0.7)
    x = _images(2, 1, 28)
    q = enc(x)
    x_hat = dec(q.sample(torch.Generator().manual_seed(0)))
    loss, log = loss_fn(x, x_hat, q, optimizer_idx=0, global_step=5, last_layer=dec.last_layer)

    rec = 0.5 * loss_fn.perceptual(x, x_hat) + (x - x_hat).abs().mean(dim=(1, 2, 3))
    nll = (rec / torch.exp(loss_fn.log_gamma) + loss_fn.log_gamma).mean()
    g_loss = -disc(x_hat).mean()  # hinge generator loss
    (g_nll,) = torch.autograd.grad(nll, dec.last_layer, retain_graph=True)
    (g_gan,) = torch.autograd.grad(g_loss, dec.last_layer, retain_graph=True)
    lam = 0.7 * g_nll.norm() / (g_gan.norm() + 1e-4)
    torch.testing.assert_close(log["train/d_weight"], lam.detach())
    torch.testing.assert_close(log["train/g_loss"], g_loss.detach())
    torch.testing.assert_close(loss, nll + 0.01 * q.kl().mean() + lam * g_loss)
    # λ is a constant: the gradient at the last layer is ∇nll + λ ∇L_GAN (KL does not reach it)
    (g_total,) = torch.autograd.grad(loss, dec.last_layer)
    torch.testing.assert_close(g_total, g_nll + lam * g_gan, rtol=1e-5, atol=1e-7)


def test_adaptive_weight_without_last_layer_or_gradients() -> None:
    enc, dec, disc = _tiny()
    loss_fn = _loss(disc, disc_weight=0.3, disc_loss="vanilla")
    x = _images(2, 1, 28)
    q = enc(x)
    x_hat = dec(q.mean)
    _, log = loss_fn(x, x_hat, q, 0, global_step=0)
    assert log["train/d_weight"].item() == pytest.approx(0.3)
    g_loss = nn.functional.softplus(-disc(x_hat)).mean()  # non-saturating
    torch.testing.assert_close(log["train/g_loss"], g_loss.detach())
    with torch.no_grad():  # validation: λ = 0
        _, log = loss_fn(x, x_hat, q, 0, global_step=0, last_layer=dec.last_layer)
    assert log["train/d_weight"].item() == 0.0


def test_gan_term_is_zero_before_disc_start() -> None:
    enc, dec, disc = _tiny()
    loss_fn = _loss(disc, disc_start=100)
    x = _images(2, 1, 28)
    q = enc(x)
    x_hat = dec(q.mean)
    loss, log = loss_fn(x, x_hat, q, 0, global_step=99, last_layer=dec.last_layer)
    assert torch.equal(loss, log["train/nll_loss"] + 0.01 * log["train/kl_loss"])
    assert log["train/g_loss"].item() == 0.0 and log["train/disc_factor"].item() == 0.0
    loss.backward()
    assert all(p.grad is None for p in disc.parameters())  # the discriminator was not run
    d_loss, _ = loss_fn(x, x_hat, None, 1, global_step=99)
    assert d_loss.item() == 0.0
    d_loss.backward()  # still a graph, so a training loop may call backward
    d_loss, _ = loss_fn(x, x_hat, None, 1, global_step=100)
    assert d_loss.item() > 0


def test_discriminator_losses_on_known_logits() -> None:
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.5])
    # hinge: relu(1 - real) = [0, .5], relu(1 + fake) = [0, 1.5]
    assert hinge_d_loss(real, fake).item() == pytest.approx(0.5 * (0.25 + 0.75))
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    expected = 0.5 * ((sp(-2.0) + sp(-0.5)) / 2 + (sp(-2.0) + sp(0.5)) / 2)
    assert vanilla_d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    _, _, disc = _tiny()
    assert AutoencoderLoss(discriminator=disc, disc_loss="vanilla").discriminator_loss(real, fake).item() == (
        pytest.approx(expected, rel=1e-6)
    )
    assert AutoencoderLoss(discriminator=disc).discriminator_loss(real, fake).item() == pytest.approx(0.5)


def test_perceptual_is_frozen_and_optional() -> None:
    _, _, disc = _tiny()
    perceptual = TinyPerceptual(1)
    AutoencoderLoss(perceptual, disc).train()  # the loss in train mode keeps its perceptual net frozen
    assert not perceptual.training and not any(p.requires_grad for p in perceptual.parameters())
    x, y = _images(2, 1, 28, 0), _images(2, 1, 28, 1)
    rec, pixel, perc = AutoencoderLoss(None, disc).reconstruction(x, y)
    torch.testing.assert_close(rec, (x - y).abs().mean(dim=(1, 2, 3)))
    torch.testing.assert_close(pixel, rec)  # no perceptual term: rec is the pixel L1
    assert torch.equal(perc, torch.zeros(2))
    default = AutoencoderLoss(disc_in_channels=1, disc_ndf=8, disc_n_layers=2)
    assert isinstance(default.discriminator, PatchDiscriminator) and default.discriminator.in_channels == 1
    with pytest.raises(ValueError, match="one distance per sample"):
        AutoencoderLoss(_BadPerceptual(), disc).reconstruction(x, y)


class _BadPerceptual(nn.Module):
    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return (x - y).abs().mean(dim=1)  # (B, H, W): not one distance per sample


# -- errors -----------------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors() -> None:
    enc, dec, disc = _tiny()
    with pytest.raises(ValueError, match="expected 1 channel.*got 3"):
        enc(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match="expected images of size 28x28, got 32x32"):
        enc(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        enc(torch.zeros(1, 28, 28))
    with pytest.raises(TypeError, match="floating-point"):
        enc(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(TypeError, match="got ndarray"):
        enc(torch.zeros(2, 1, 28, 28).numpy())
    with pytest.raises(ValueError, match=r"expected latent codes of shape \(B, 8\), got \(2, 8, 1, 1\)"):
        dec(torch.zeros(2, 8, 1, 1))
    with pytest.raises(ValueError, match="4 \\* 2\\*\\*k or 7 \\* 2\\*\\*k"):
        Decoder(30)
    with pytest.raises(ValueError, match="attn_resolution must be None or one of"):
        Decoder(32, attn_resolution=32 * 2)
    with pytest.raises(ValueError, match="needs 4 positive channel_multipliers"):
        Decoder(32, channel_multipliers=(4, 2, 1))
    with pytest.raises(ValueError, match="no default channel_multipliers"):
        Decoder(56)
    with pytest.raises(ValueError, match="4 positive stage depths"):
        Encoder(32, depths=(1, 1, 1))
    with pytest.raises(ValueError, match="preset"):
        build_autoencoder(32, 3, preset="huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="disc_loss"):
        AutoencoderLoss(discriminator=disc, disc_loss="wgan")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="perceptual"):
        AutoencoderLoss(perceptual=lambda x, y: x, discriminator=disc)  # type: ignore[arg-type]
    loss_fn = AutoencoderLoss(discriminator=disc)
    x = torch.zeros(2, 1, 28, 28)
    with pytest.raises(ValueError, match="optimizer_idx"):
        loss_fn(x, x, None, optimizer_idx=2, global_step=0)
    with pytest.raises(ValueError, match="same shape"):
        loss_fn(x, torch.zeros(2, 1, 32, 32), None, optimizer_idx=0, global_step=0)
    with pytest.raises(ValueError, match="same shape"):
        DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 4))


# -- paper scale ------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_paper_preset_one_training_step() -> None:
    """Tab. S2 at 128 px: one generator and one discriminator step on a batch of 2."""
    torch.manual_seed(0)
    t0 = time.perf_counter()
    enc, dec = build_autoencoder(128, 3, z_dim=128, preset="paper")
    assert _n_params(enc) == 43_024_704
    print(f"paper encoder {_n_params(enc):,} parameters, decoder {_n_params(dec):,}")
    loss_fn = AutoencoderLoss(TinyPerceptual(3), PatchDiscriminator(3, n_layers=3), kl_weight=0.05, disc_start=0)
    opt_g = torch.optim.Adam([*enc.parameters(), *dec.parameters(), loss_fn.log_gamma], lr=1e-4)
    opt_d = torch.optim.Adam(loss_fn.discriminator.parameters(), lr=1e-4)
    x = _images(2, 3, 128)
    q = enc(x)
    x_hat = dec(q.sample())
    assert x_hat.shape == x.shape
    loss, log = loss_fn(x, x_hat, q, 0, global_step=0, last_layer=dec.last_layer)
    opt_g.zero_grad()
    loss.backward()
    opt_g.step()
    d_loss, _ = loss_fn(x, x_hat, None, 1, global_step=0)
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    assert torch.isfinite(loss) and torch.isfinite(d_loss) and log["train/d_weight"] > 0
    assert all(p.grad is not None for p in enc.parameters())
    print(f"paper preset: one training step in {time.perf_counter() - t0:.1f} s")


def test_sizes_are_checked_by_the_shared_int_check() -> None:
    from net2net.autoencoder.decoder import Decoder
    from net2net.autoencoder.discriminator import PatchDiscriminator
    from net2net.autoencoder.encoder import Encoder

    with pytest.raises(ValueError, match=r"^Encoder: z_dim must be a positive int, got 0$"):
        Encoder(28, in_channels=1, z_dim=0)
    with pytest.raises(ValueError, match=r"^Encoder: base_width must be a positive int, got 2.5$"):
        Encoder(28, in_channels=1, z_dim=4, base_width=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^Decoder: ch must be a positive int, got -1$"):
        Decoder(28, out_channels=1, z_dim=4, ch=-1)
    with pytest.raises(ValueError, match=r"^Decoder: n_classes must be a positive int, got True$"):
        Decoder(28, out_channels=1, z_dim=4, n_classes=True)
    with pytest.raises(ValueError, match=r"^PatchDiscriminator: n_layers must be a positive int, got 0$"):
        PatchDiscriminator(1, ndf=8, n_layers=0)
