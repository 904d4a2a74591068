"""The frozen autoencoder's fast inference layout (channels_last) changes neither its results nor its identity."""

from __future__ import annotations

import copy
from typing import ClassVar

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
    layouts: list[bool] = []  # the decoder's first block gets its input in the weights' layout (no per-conv copies)
    target.decoder.blocks[0].register_forward_pre_hook(
        lambda _m, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    with torch.no_grad():
        mean, std = target.encode_dist(y)
        q = ref_enc(y)
        images = target.decode(z)
        ref_images = ref_dec(z)
    assert torch.allclose(mean, q.mean, atol=1e-5) and torch.allclose(std, q.std, atol=1e-5)
    assert images.is_contiguous() and torch.allclose(images, ref_images, atol=1e-5)
    assert layouts == [True]
    # the same weights in the plain layout have the same fingerprint (latent-cache key) and export
    plain = AutoencoderTarget(copy.deepcopy(ref_enc), copy.deepcopy(ref_dec)).to(memory_format=torch.contiguous_format)
    assert expert_fingerprint(plain) == expert_fingerprint(target)
    saved = load_file(target.save_safetensors(tmp_path / "ae.safetensors"))
    assert saved.keys() == plain.state_dict().keys()
    assert all(torch.equal(saved[k], v) for k, v in plain.state_dict().items())


def test_encoder_folds_batchnorm_for_inference_only() -> None:
    """Eval mode without autograd runs the BatchNorm-folded copy: same output, unchanged state dict, rebuilt when the
    weights change; training mode and autograd keep the layers (and their gradients)."""
    torch.manual_seed(0)
    enc, _ = build_encoder_decoder(28, in_channels=1, z_dim=8)
    with torch.no_grad():  # statistics and gains away from their initial values, so that folding has work to do
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1, 0.2)
                m.bias.normal_(0, 0.2)
    enc = enc.eval().to(memory_format=torch.channels_last)
    keys = list(enc.state_dict())
    y = (torch.rand(16, 1, 28, 28) * 2 - 1).contiguous(memory_format=torch.channels_last)

    def layers(x: torch.Tensor) -> torch.Tensor:
        return enc.stages(enc.stem(x)).mean(dim=(2, 3))

    with torch.inference_mode():
        folded, reference = enc.features(y), layers(y)
    assert enc._folded and torch.allclose(folded, reference, atol=1e-5, rtol=1e-4)
    assert not torch.equal(folded, reference)  # it did run the folded copy (float rounding differs)
    assert list(enc.state_dict()) == keys  # the copy is not a submodule
    conv = enc.folded()[1][0][0].conv1  # stages, first stage, first bottleneck
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and not conv.weight.requires_grad
    with torch.no_grad():
        enc.stem[1].running_mean.add_(0.5)  # any change of a parameter or buffer rebuilds the folded copy
        assert torch.allclose(enc.features(y), layers(y), atol=1e-5, rtol=1e-4)
    assert enc.folded()[1][0][0].conv1 is not conv
    out = enc.features(y)  # autograd on: the layers, whose parameters get gradients
    out.sum().backward()
    with torch.no_grad():
        assert enc.stem[0].weight.grad is not None and torch.allclose(out, layers(y), atol=1e-5, rtol=1e-4)


def test_encoding_loop_indexes_every_items_captions(tmp_path) -> None:
    """The cache's src_index rows give back each item's own captions (rows are built once per caption tuple)."""
    from net2net.data.latent_cache import LatentDataset, encode_dataset

    class Items(torch.utils.data.Dataset):
        caps: ClassVar[dict[int, tuple[str, ...]]] = {0: ("a", "b", "c"), 1: ("d",), 2: ("b", "e")}

        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> dict:
            return {"image": torch.full((1, 4, 4), float(i)), "captions": self.caps[i % 3], "label": i % 3}

    class Source:
        def encode(self, x: list[str]) -> torch.Tensor:
            return torch.tensor([[float(ord(s[0]))] for s in x])  # (B, 1): the caption's first letter

    class Target:
        def encode_dist(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return y.flatten(1)[:, :2], torch.ones(len(y), 2)

    out = encode_dataset(Items(), Source(), Target(), tmp_path / "cache", source_key="captions", batch_size=4,
                         progress=False)  # fmt: skip
    ds = LatentDataset(out)
    table = ds.src_table[:, 0]  # (distinct captions,)
    index = ds.tensors["src_index"]  # (10, 3), -1 pads
    for i in range(10):
        row = [int(j) for j in index[i] if j >= 0]
        assert [chr(int(table[j])) for j in row] == list(Items.caps[i % 3])
    assert ds.manifest["captions"] == ["a", "b", "c", "d", "e"]  # first-seen order
