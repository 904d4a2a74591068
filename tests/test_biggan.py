"""BigGAN target expert and the dequantisation VAE (Tab. S4), on tiny randomly initialised models."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from net2net.experts.biggan import (
    CONFIG_NAME,
    SAFE_WEIGHTS_NAME,
    VAE_NAME,
    WEIGHTS_NAME,
    BigGAN,
    BigGANBatchNorm,
    BigGANConfig,
    BigGANTarget,
    DequantizationVAE,
    SNConv2d,
    SNLinear,
    WeightsNotFoundError,
    truncated_noise,
)
from net2net.training.run import train_from_config

Z, E, K = 12, 6, 5  # noise dim, embedding dim, classes of the tiny model


def tiny_config(**overrides) -> BigGANConfig:
    """32 px, 4 blocks (3 upsampling), self-attention before block 2, 6 truncation statistics."""
    values = dict(
        output_dim=32, z_dim=Z, class_embed_dim=E, channel_width=4, num_classes=K,
        layers=[(False, 4, 4), (True, 4, 2), (True, 2, 1), (True, 1, 1)], attention_layer_position=2, n_stats=6,
    )  # fmt: skip
    values.update(overrides)
    return BigGANConfig(**values)


def tiny_biggan(seed: int = 0, **overrides) -> BigGAN:
    """A tiny BigGAN with non-trivial buffers: random batch statistics and an active attention layer."""
    torch.manual_seed(seed)
    g = BigGAN(tiny_config(**overrides)).eval()
    with torch.no_grad():
        for name, buf in g.named_buffers():
            if name.endswith("running_means"):
                buf.normal_(0.0, 0.1)
            elif name.endswith("running_vars"):
                buf.uniform_(0.5, 1.5)
        for name, p in g.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.5)
    return g


def tiny_vae(seed: int = 0) -> DequantizationVAE:
    torch.manual_seed(seed)
    return DequantizationVAE(in_dim=E, z_dim=E, hidden_dim=32).eval()


def tiny_target(seed: int = 0, truncation: float = 0.6) -> BigGANTarget:
    return BigGANTarget(tiny_biggan(seed), tiny_vae(seed), truncation=truncation)


# -- the generator ------------------------------------------------------------------------------------------------


def test_generator_shapes_range_and_class_inputs() -> None:
    g = tiny_biggan()
    z = truncated_noise(4, Z, 0.5, torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 4, 2])
    with torch.no_grad():
        x = g(z, labels, 0.5)
        x_onehot = g(z, nn.functional.one_hot(labels, K).float(), 0.5)
        x_embed = g(z, g.embed(labels), 0.5)
        x_other = g(z, torch.tensor([3, 3, 3, 3]), 0.5)
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.01
    assert torch.allclose(x, x_onehot, atol=1e-6) and torch.allclose(x, x_embed, atol=1e-6)
    assert not torch.allclose(x, x_other)  # the class matters
    assert torch.equal(g.class_embeddings()[labels], g.embed(labels))
    with pytest.raises(ValueError, match=r"labels in \[0, 4\]"):
        g(z, torch.tensor([0, 1, 5, 2]), 0.5)
    with pytest.raises(ValueError, match=r"\(B, 12\).*received shape \(4, 11\)"):
        g(z[:, :11], labels, 0.5)
    with pytest.raises(ValueError, match=r"\(B, 5\) or class embeddings \(B, 6\), received shape \(4, 7\)"):
        g(z, torch.zeros(4, 7), 0.5)
    ambiguous = tiny_biggan(class_embed_dim=K)
    with pytest.raises(ValueError, match="ambiguous"):
        ambiguous(z, torch.zeros(4, K), 0.5)


def test_truncation_statistics_and_noise() -> None:
    bn = BigGANBatchNorm(3, condition_dim=None, n_stats=6)  # statistics at truncation 0, 0.2, ..., 1
    with torch.no_grad():
        bn.running_means.copy_(torch.arange(6.0)[:, None].expand(6, 3))
        bn.running_vars.copy_(1 + torch.arange(6.0)[:, None].expand(6, 3))
    mean, var = bn.statistics(0.4)
    assert torch.equal(mean, torch.full((3,), 2.0)) and torch.equal(var, torch.full((3,), 3.0))
    mean, var = bn.statistics(0.5)  # halfway between the sets for 0.4 and 0.6
    assert torch.allclose(mean, torch.full((3,), 2.5)) and torch.allclose(var, torch.full((3,), 3.5))
    mean, _ = bn.statistics(1.0)
    assert torch.equal(mean, torch.full((3,), 5.0))
    x = torch.randn(2, 3, 4, 4)
    assert torch.allclose(bn(x, 0.2), (x - 1) / torch.sqrt(torch.tensor(2.0 + 1e-4)), atol=1e-6)

    g = tiny_biggan()
    z, labels = torch.randn(2, Z), torch.tensor([0, 1])
    with torch.no_grad():
        assert not torch.allclose(g(z, labels, 0.4), g(z, labels, 1.0))
    for bad in (0.0, 1.5, -0.2, True, "0.5"):
        with pytest.raises(ValueError, match=r"truncation in \(0, 1\]"):
            g(z, labels, bad)  # type: ignore[arg-type]

    gen = torch.Generator().manual_seed(0)
    noise = truncated_noise(2000, 8, truncation=0.5, generator=gen)
    assert noise.shape == (2000, 8) and noise.abs().max() <= 1.0  # 0.5 · [-2, 2]
    assert 0.35 < float(noise.std()) < 0.45  # std of TN(0, 1; [-2, 2]) is 0.88, times 0.5


def test_spectral_norm_layers_match_torch() -> None:
    torch.manual_seed(0)
    ref = nn.utils.spectral_norm(nn.Linear(6, 4), eps=1e-4)
    ref(torch.randn(2, 6))  # one power iteration in training mode
    ref.eval()
    layer = SNLinear(6, 4)
    layer.load_state_dict(ref.state_dict(), strict=True)  # same names: weight_orig, weight_u, weight_v, bias
    x = torch.randn(3, 6)
    assert torch.allclose(layer(x), ref(x), atol=1e-6)
    ref_conv = nn.utils.spectral_norm(nn.Conv2d(3, 5, 3, padding=1), eps=1e-4)
    ref_conv(torch.randn(1, 3, 4, 4))
    ref_conv.eval()
    conv = SNConv2d(3, 5, 3, padding=1)
    conv.load_state_dict(ref_conv.state_dict(), strict=True)
    y = torch.randn(2, 3, 6, 6)
    assert torch.allclose(conv(y), ref_conv(y), atol=1e-5)
    assert abs(float(torch.linalg.matrix_norm(SNLinear(20, 30).weight.detach(), 2)) - 1) < 0.05


def test_reference_layout_names_and_config_fields() -> None:
    cfg = BigGANConfig.deep(128, channel_width=4)  # the released layout, narrow
    state = BigGAN(cfg).state_dict()
    per_block = 4 * (2 + 3 + 3) + 4 * 4  # 4 conditional BNs (stats, scale, offset), 4 convs (orig, u, v, bias)
    assert len(state) == 10 * per_block + 13 + 4 + 1 + 4 + 4  # blocks, attention, gen_z, W, final BN, to-RGB
    for key, shape in {
        "embeddings.weight": (128, 1000),
        "generator.gen_z.weight_orig": (4 * 4 * 16 * 4, 256),
        "generator.gen_z.weight_u": (4 * 4 * 16 * 4,),
        "generator.layers.0.bn_0.running_means": (51, 64),
        "generator.layers.0.bn_0.scale.weight_orig": (64, 256),
        "generator.layers.0.conv_1.weight_orig": (16, 16, 3, 3),
        "generator.layers.8.snconv1x1_theta.weight_orig": (1, 8, 1, 1),
        "generator.layers.8.gamma": (1,),
        "generator.layers.10.conv_3.bias": (4,),
        "generator.bn.running_vars": (51, 4),
        "generator.bn.weight": (4,),
        "generator.conv_to_rgb.weight_orig": (4, 4, 3, 3),
    }.items():
        assert tuple(state[key].shape) == shape, key
    reference_fields = {
        "output_dim", "z_dim", "class_embed_dim", "channel_width", "num_classes", "layers",
        "attention_layer_position", "eps", "n_stats",
    }  # fmt: skip
    assert set(cfg.to_dict()) == reference_fields
    assert BigGANConfig.deep(512).layers[-1] == (True, 1, 1) and BigGANConfig().output_dim == 128


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="upsample 4x4 to 32x32, but output_dim is 64"):
        tiny_config(output_dim=64)
    with pytest.raises(ValueError, match=r"layers\[2\]: expected input width 2"):
        tiny_config(layers=[(False, 4, 4), (True, 4, 2), (True, 4, 1), (True, 1, 1)])
    with pytest.raises(ValueError, match="multiple of 8 channels"):
        tiny_config(attention_layer_position=3)
    with pytest.raises(ValueError, match="channel_width"):
        tiny_config(channel_width=2)
    with pytest.raises(ValueError, match=r"resolution in \[128, 256, 512\]"):
        BigGANConfig.deep(64)  # type: ignore[arg-type]
    with pytest.warns(UserWarning, match="unknown BigGAN config field"):
        cfg = BigGANConfig.from_dict({**tiny_config().to_dict(), "comment": "x"})
    assert cfg == tiny_config()


# -- files ----------------------------------------------------------------------------------------------------------


def test_round_trip_reference_layout(tmp_path) -> None:
    g = tiny_biggan(seed=3)
    weights = g.save_pretrained(tmp_path / "biggan")
    assert weights == tmp_path / "biggan" / WEIGHTS_NAME
    config = json.loads((tmp_path / "biggan" / CONFIG_NAME).read_text())
    assert config["layers"][1] == [True, 4, 2] and config["z_dim"] == Z
    z, labels = torch.randn(3, Z), torch.tensor([0, 2, 4])
    for path in (tmp_path / "biggan", weights):  # the directory, or the weights file with config.json beside it
        loaded = BigGAN.from_pretrained(path)
        assert loaded.config == g.config
        with torch.no_grad():
            assert torch.equal(loaded(z, labels, 0.8), g(z, labels, 0.8))
    # a file written in the legacy (pre-zip) format of the released weights also loads with weights_only
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    g.config.to_json_file(legacy / CONFIG_NAME)
    torch.save(g.state_dict(), legacy / WEIGHTS_NAME, _use_new_zipfile_serialization=False)
    with torch.no_grad():
        assert torch.equal(BigGAN.from_pretrained(legacy)(z, labels, 0.8), g(z, labels, 0.8))


def test_round_trip_safetensors(tmp_path) -> None:
    g = tiny_biggan(seed=4)
    weights = g.save_pretrained(tmp_path, safe_serialization=True)
    assert weights.name == SAFE_WEIGHTS_NAME and not (tmp_path / WEIGHTS_NAME).exists()
    loaded = BigGAN.from_pretrained(tmp_path)
    state, loaded_state = g.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys() and all(torch.equal(state[k], loaded_state[k]) for k in state)


def test_wrong_architecture_and_unreadable_files(tmp_path) -> None:
    g = tiny_biggan()
    g.save_pretrained(tmp_path / "a")
    tiny_config(channel_width=8).to_json_file(tmp_path / "a" / CONFIG_NAME)  # weights of width 4, config of 8
    with pytest.raises(ValueError, match=r"do not fit.*shape mismatch for 'generator.gen_z.weight_orig'"):
        BigGAN.from_pretrained(tmp_path / "a")

    state = g.state_dict()
    del state["generator.layers.2.gamma"]
    state["generator.extra.weight"] = torch.zeros(1)
    (tmp_path / "b").mkdir()
    g.config.to_json_file(tmp_path / "b" / CONFIG_NAME)
    save_file(dict(state), str(tmp_path / "b" / SAFE_WEIGHTS_NAME))
    with pytest.raises(ValueError, match=r"1 missing key.*'generator.layers.2.gamma'.*1 unexpected key"):
        BigGAN.from_pretrained(tmp_path / "b")

    (tmp_path / "c").mkdir()
    g.config.to_json_file(tmp_path / "c" / CONFIG_NAME)
    torch.save({"weight": Fraction(1, 2)}, tmp_path / "c" / WEIGHTS_NAME)  # not loadable with weights_only
    with pytest.raises(ValueError, match="weights_only=True"):
        BigGAN.from_pretrained(tmp_path / "c")


def test_missing_paths(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist") as info:
        BigGAN.from_pretrained(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, WeightsNotFoundError)
    with pytest.raises(ValueError, match=f"expected {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME}"):
        BigGAN.from_pretrained(tmp_path)  # an empty directory
    g = tiny_biggan()
    g.save_pretrained(tmp_path / "g")
    (tmp_path / "g" / CONFIG_NAME).unlink()
    with pytest.raises(ValueError, match="BigGAN config not found"):
        BigGAN.from_pretrained(tmp_path / "g")
    g.save_pretrained(tmp_path / "g")
    with pytest.raises(FileNotFoundError, match="DequantizationVAE weights not found"):
        BigGANTarget.from_pretrained(tmp_path / "g", vae_path=tmp_path / "vae.safetensors")


# -- the dequantisation VAE ---------------------------------------------------------------------------------------


def test_vae_shapes_and_kl() -> None:
    vae = tiny_vae()
    h = torch.randn(7, E)
    q = vae.encode(h)
    assert q.mean.shape == q.std.shape == (7, E)
    kl = q.kl()
    assert kl.shape == (7,) and bool((kl >= 0).all())
    gen = torch.Generator().manual_seed(0)
    h_hat = vae.sample(h, gen)
    assert h_hat.shape == (7, E) and not torch.allclose(h_hat, vae.reconstruct(h))  # stochastic
    assert torch.equal(vae.sample(h, torch.Generator().manual_seed(0)), h_hat)
    loss, parts = vae.loss(h)
    assert loss.dim() == 0 and parts["kl"] >= 0 and parts["rec"] >= 0
    with pytest.raises(ValueError, match=r"\(B, 6\).*received shape \(7, 5\)"):
        vae.sample(torch.randn(7, 5))
    # the paper's size: 128 -> 4096 wide, 3 hidden layers in the encoder and each head, 4 in the decoder
    paper = DequantizationVAE.__init__.__defaults__
    assert paper == (128, 128, 4096, 3)
    assert [type(m).__name__ for m in tiny_vae().decoder.main][::2] == ["Linear"] * 5


def test_vae_training_reduces_reconstruction_error(tmp_path) -> None:
    """The VAE trains through train_from_config (configs/biggan/dequantization_vae.yaml) on a BigGAN's class
    embeddings and exports a file that BigGANTarget.from_pretrained loads beside the generator, frozen."""
    torch.manual_seed(0)
    embeddings = torch.randn(K, E)
    biggan = tiny_biggan()
    with torch.no_grad():
        biggan.embeddings.weight.copy_(embeddings.t())  # (E, K): the rows of W^T are the class embeddings
    biggan.save_pretrained(tmp_path / "biggan")
    torch.manual_seed(0)  # the run seeds with 0 and builds the VAE first: the same initial weights
    untrained = DequantizationVAE(in_dim=E, z_dim=E, hidden_dim=32)
    with torch.no_grad():
        before = float((untrained.reconstruct(embeddings) - embeddings).square().sum(1).mean())
    overrides = [
        f"model.params.vae_config={{in_dim: {E}, z_dim: {E}, hidden_dim: 32, hidden_layers: 3}}",
        "model.params.lr=1e-2", "model.params.kl_weight=0.01", "model.params.accuracy_samples=20",
        f"data.params.biggan={tmp_path / 'biggan'}", "data.params.batch_size=16", "lightning.trainer.max_steps=100",
        "lightning.trainer.log_every_n_steps=1", "lightning.trainer.accelerator=cpu",
    ]  # fmt: skip
    run = train_from_config("configs/biggan/dequantization_vae.yaml", overrides, log_dir=tmp_path / "run")
    vae = DequantizationVAE.from_file(run / VAE_NAME)
    with torch.no_grad():
        after = float((vae.reconstruct(embeddings) - embeddings).square().sum(1).mean())
    rows = (run / "logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    rec = [float(r.split(",")[header.index("train/rec")]) for r in rows[1:] if r.split(",")[header.index("train/rec")]]
    assert len(rec) == 100 and not vae.training
    assert after < 0.2 * before, (before, after)
    assert sum(rec[-10:]) < sum(rec[:10])
    assert vae.class_accuracy(embeddings, 20, torch.Generator().manual_seed(1)) > 0.8
    from net2net.io import read_safetensors_metadata

    assert float(read_safetensors_metadata(run / VAE_NAME)["class_accuracy"]) > 0.8
    # the trained VAE inside a target (found beside the generator's files) is frozen
    (tmp_path / "biggan" / VAE_NAME).write_bytes((run / VAE_NAME).read_bytes())
    target = BigGANTarget.from_pretrained(tmp_path / "biggan")
    assert target.vae is not None and not any(p.requires_grad for p in target.parameters())
    assert torch.equal(target.vae.reconstruct(embeddings), vae.reconstruct(embeddings))


def test_vae_files(tmp_path) -> None:
    vae = tiny_vae(seed=5)
    h = torch.randn(4, E)
    loaded = DequantizationVAE.from_file(vae.save(tmp_path / "vae.safetensors"))
    assert loaded.config == vae.config and torch.equal(loaded.reconstruct(h), vae.reconstruct(h))
    # a plain torch state dict (the original code's layout), architecture read off the shapes
    torch.save({"state_dict": vae.state_dict()}, tmp_path / "vae.ckpt")
    loaded = DequantizationVAE.from_file(tmp_path / "vae.ckpt")
    assert loaded.config == {"in_dim": E, "z_dim": E, "hidden_dim": 32, "hidden_layers": 3}
    assert torch.equal(loaded.reconstruct(h), vae.reconstruct(h))
    torch.save(tiny_biggan().state_dict(), tmp_path / "not_a_vae.pt")
    with pytest.raises(ValueError, match="does not hold DequantizationVAE weights"):
        DequantizationVAE.from_file(tmp_path / "not_a_vae.pt")
    state = vae.state_dict()
    state["decoder.main.8.weight"] = torch.zeros(E, 31)
    save_file(dict(state), str(tmp_path / "bad.safetensors"))
    with pytest.raises(ValueError, match=r"shape mismatch for 'decoder.main.8.weight': expected \(6, 32\)"):
        DequantizationVAE.from_file(tmp_path / "bad.safetensors")


# -- the target expert --------------------------------------------------------------------------------------------


def test_target_is_frozen_and_has_no_encoder() -> None:
    target = tiny_target()
    assert not target.training and not any(p.requires_grad for p in target.parameters())
    target.train()
    assert not any(m.training for m in target.modules())
    assert not hasattr(target, "encode")
    with pytest.raises(AttributeError, match="a GAN has no encoder"):
        target.encode(torch.zeros(1, 3, 32, 32))
    z_tgt = torch.randn(2, Z + E, requires_grad=True)
    target.decode(z_tgt).sum().backward()  # gradients reach the input, not the weights
    assert z_tgt.grad is not None and z_tgt.grad.abs().sum() > 0
    assert all(p.grad is None for p in target.parameters())
    with pytest.raises(ValueError, match="the VAE takes 6-d embeddings but the BigGAN's class embedding has 7"):
        BigGANTarget(tiny_biggan(class_embed_dim=7), tiny_vae())


def test_decode_split_join_and_bad_dimensions() -> None:
    target = tiny_target()
    assert (target.dim, target.z_dim, target.embed_dim, target.image_size) == (Z + E, Z, E, 32)
    z_tgt = torch.randn(3, Z + E)
    z, h = target.split(z_tgt)
    assert z.shape == (3, Z) and h.shape == (3, E) and torch.equal(target.join(z, h), z_tgt)
    with torch.no_grad():
        images = target.decode(z_tgt)
        assert torch.equal(images, target.biggan.generate_from_embedding(z, h, target.truncation))
        assert not torch.equal(images, target.decode(z_tgt, truncation=1.0))
    assert images.shape == (3, 3, 32, 32) and images.abs().max() <= 1
    with pytest.raises(ValueError, match=r"expected shape \(B, 18\) \(z_tgt = \[z̃ \(12\), ĥ \(6\)\]\), received shape \(3, 19\)"):
        target.decode(torch.randn(3, Z + E + 1))
    with pytest.raises(ValueError, match=r"received shape \(3, 18, 1, 1\)"):
        target.split(z_tgt[:, :, None, None])
    with pytest.raises(TypeError, match="received ndarray"):
        target.decode(z_tgt.numpy())  # type: ignore[arg-type]


def test_synthetic_pairs() -> None:
    target = tiny_target(truncation=0.6)
    images, z_tgt, labels = target.synthetic_pairs(10, classes=[1, 3], generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 3, 32, 32) and z_tgt.shape == (10, Z + E) and labels.shape == (10,)
    assert set(labels.tolist()) <= {1, 3} and labels.dtype == torch.long
    assert images.abs().max() <= 1
    z, h_hat = target.split(z_tgt)
    assert z.abs().max() <= 2 * 0.6 + 1e-6
    h = target.embed(labels)
    assert not torch.allclose(h_hat, h)  # dequantised
    with torch.no_grad():  # images come from the exact class embedding, as in the original code
        assert torch.allclose(images, target.biggan.generate_from_embedding(z, h, 0.6), atol=1e-6)

    # determinism from a seed, batching does not change the result
    again = target.synthetic_pairs(10, classes=[1, 3], generator=torch.Generator().manual_seed(0), batch_size=3)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(again, (images, z_tgt, labels), strict=True))
    other = target.synthetic_pairs(10, classes=[1, 3], generator=torch.Generator().manual_seed(1))
    assert not torch.equal(other[1], z_tgt)
    assert torch.equal(tiny_biggan(seed=0).state_dict()["embeddings.weight"], target.biggan.embeddings.weight)

    images, z_tgt, _ = target.synthetic_pairs(4, truncation=0.4, images_from="dequantized")
    with torch.no_grad():
        assert torch.allclose(images, target.decode(z_tgt, truncation=0.4), atol=1e-6)
    with pytest.raises(ValueError, match=r"classes as integers in \[0, 4\]"):
        target.synthetic_pairs(2, classes=[7])
    with pytest.raises(ValueError, match="no dequantisation VAE"):
        BigGANTarget(tiny_biggan()).synthetic_pairs(2)


def test_target_round_trip(tmp_path) -> None:
    target = tiny_target(seed=2)
    target.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {CONFIG_NAME, SAFE_WEIGHTS_NAME, VAE_NAME}
    loaded = BigGANTarget.from_pretrained(tmp_path, truncation=0.6)  # finds the VAE beside the generator
    assert loaded.vae is not None and not loaded.training
    z_tgt = torch.randn(2, Z + E)
    h = torch.randn(3, E)
    with torch.no_grad():
        assert torch.equal(loaded.decode(z_tgt), target.decode(z_tgt))
        assert torch.equal(loaded.vae.reconstruct(h), target.vae.reconstruct(h))
    without = BigGANTarget.from_pretrained(tmp_path / SAFE_WEIGHTS_NAME)
    assert without.vae is None and without.truncation == 1.0
