"""`net2net reproduce inpaint` on a tiny configuration, and its masked ImageNet source expert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from net2net.experts.protocols import expert_fingerprint
from net2net.reproduce.inpaint import InpaintSettings, MaskedImageExpert, apply_mask, inpaint_config, run_inpaint


def test_masked_expert_sees_only_the_visible_part() -> None:
    expert = MaskedImageExpert((7, 7, 14, 14), "_blocks.10", resize=56)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    inside, outside = x.clone(), x.clone()
    inside[..., 10:18, 10:18] = -x[..., 10:18, 10:18]  # changed only under the mask
    outside[..., :5, :] = -x[..., :5, :]  # changed only where the expert looks
    z = expert.encode(x)
    assert z.shape == (2, 112, 4, 4)
    assert torch.equal(z, expert.encode(inside))
    assert not torch.allclose(z, expert.encode(outside))
    assert torch.equal(apply_mask(x, (7, 7, 14, 14))[..., 7:21, 7:21], torch.zeros(2, 1, 14, 14))
    # the box is part of the cache key
    assert expert_fingerprint(expert) != expert_fingerprint(MaskedImageExpert((14, 0, 14, 28), "_blocks.10", 56))


def test_inpaint_settings_and_configs() -> None:
    s = InpaintSettings(train_images=100, steps=10, layers=("_blocks.10", "pool"))
    spatial = inpaint_config("_blocks.10", s)["model"]["params"]["flow_config"]["params"]
    pooled = inpaint_config("pool", s)["model"]["params"]["flow_config"]["params"]
    assert spatial["cond_shape"] == [112, 4, 4] and pooled["cond_dim"] == 1280
    for bad in ({"box": (20, 20, 14, 14)}, {"box": (0, 0, 28, 28)}, {"samples": 1}, {"layers": ()}):
        with pytest.raises(ValueError):
            InpaintSettings(**bad)  # type: ignore[arg-type]


def test_inpaint_tiny_run_writes_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = InpaintSettings(train_images=64, steps=3, test_images=24, samples=3, layers=("_blocks.10",))
    summary = run_inpaint(out_dir=tmp_path / "results", settings=settings)
    rows = {(r["method"], r["layer"]): r for r in summary["rows"]}
    masked = rows[("masked input (grey box)", None)]
    mean_fill = rows[("box filled with the training mean image", None)]
    # the baselines that copy the visible part are exact outside the box and wrong inside it
    for r in (masked, mean_fill):
        assert r["rms_outside"] == 0 and r["psnr_outside"] is None and r["rms_inside"] > 0
    for layer in settings.layers:
        sample, mean = rows[("cINN sample", layer)], rows[("cINN mean of 3 samples", layer)]
        assert sample["diversity_inside"] > 0 and sample["diversity_outside"] > 0
        assert sample["rms_inside"] > 0 and sample["rms_outside"] > 0 and 0 <= sample["accuracy"] <= 1
        assert mean["rms_inside"] <= sample["rms_inside"] + 1e-6  # averaging samples cannot raise the error
    page = (tmp_path / "results" / "inpaint.md").read_text()
    assert "| cINN sample | `_blocks.10` (112x4x4) |" in page and "| autoencoder of the masked input | — |" in page
    assert (tmp_path / "results" / "figures" / "inpaint_blocks10.png").is_file()
    assert json.loads((tmp_path / "results" / "inpaint.json").read_text())["settings"]["steps"] == 3
    # a second call reuses the trained run
    again = run_inpaint(out_dir=tmp_path / "results", settings=settings)
    assert set(again["train_seconds"].values()) == {0.0}
