"""The frozen autoencoder's fast inference layout (channels_last) changes neither its results nor its identity."""

from __future__ import annotations

import copy

import torch
from safetensors.torch import load_file

from net2net.experts.protocols import expert_fingerprint
from net2net.experts.target import AutoencoderTarget, build_encoder_decoder


def test_channels_last_target_matches_the_plain_layout(tmp_path) -> None:
    torch.manual_seed(0)
    enc, dec = build_encoder_decoder(28, in_channels=1, z_dim=8)
    ref_enc, ref_dec = copy.deepcopy(enc).eval(), copy.deepcopy(dec).eval()
    target = AutoencoderTarget(enc, dec)
    conv = next(m for m in target.encoder.modules()
                if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1 and m.kernel_size[0] > 1)  # fmt: skip
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.is_contiguous()
    y = torch.rand(16, 1, 28, 28) * 2 - 1
    z = torch.randn(16, 8)
    with torch.no_grad():
        mean, std = target.encode_dist(y)
        q = ref_enc(y)
        images = target.decode(z)
        ref_images = ref_dec(z)
    assert torch.allclose(mean, q.mean, atol=1e-5) and torch.allclose(std, q.std, atol=1e-5)
    assert images.is_contiguous() and torch.allclose(images, ref_images, atol=1e-5)
    # the same weights in the plain layout have the same fingerprint (latent-cache key) and export
    plain = AutoencoderTarget(copy.deepcopy(ref_enc), copy.deepcopy(ref_dec)).to(memory_format=torch.contiguous_format)
    assert expert_fingerprint(plain) == expert_fingerprint(target)
    saved = load_file(target.save_safetensors(tmp_path / "ae.safetensors"))
    assert saved.keys() == plain.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in plain.state_dict().items())
