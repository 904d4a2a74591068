"""`net2net reproduce superres` (stochastic super-resolution, Fig. 4) on a tiny configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from net2net.experts.encoder_source import resize_images
from net2net.experts.resize import Downsample
from net2net.reproduce.superres import FULL, SuperresSettings, face_config, low_res_autoencoder_config, run_superres

ROOT = Path(__file__).resolve().parents[1]


def test_the_yaml_is_the_full_low_res_autoencoder_config() -> None:
    shipped = OmegaConf.to_container(OmegaConf.load(ROOT / "configs" / "autoencoder" / "fashion_mnist_14.yaml"))
    assert shipped == low_res_autoencoder_config(FULL)


def test_settings_and_configs() -> None:
    with pytest.raises(ValueError, match="samples"):
        SuperresSettings(samples=1)
    with pytest.raises(ValueError, match="steps"):
        SuperresSettings(steps=0)
    small = SuperresSettings(train_images=100, face_train=64, face_test=16)
    data = low_res_autoencoder_config(small)["data"]["params"]["train"]
    assert data["target"] == "net2net.data.Subset" and data["params"]["n"] == 100
    flow = face_config(small)["model"]["params"]["flow_config"]["params"]
    assert flow["dim"] == 100 and flow["cond_shape"] == [3, 16, 16]


def test_downsample_expert() -> None:
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    low = Downsample(16).encode(x)
    assert low.shape == (2, 3, 16, 16) and torch.equal(low, resize_images(x, 16))
    assert torch.equal(Downsample(16, flatten=True).encode(x), low.flatten(1))
    with pytest.raises(ValueError, match="size"):
        Downsample(0)


def test_superres_tiny_run_writes_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = SuperresSettings(ae_steps=3, train_images=256, steps=3, test_images=48, face_train=128, face_steps=3,
                                face_test=16, samples=2)  # fmt: skip
    summary = run_superres(out_dir=tmp_path / "results", settings=settings)
    page = (tmp_path / "results" / "superres.md").read_text()
    fm, faces = summary["fashion_mnist"]["methods"], summary["faces"]["methods"]
    for methods in (fm, faces):
        for name, m in methods.items():
            assert f"| {name} |" in page
            assert m["consistency_psnr"] > 0 and m["consistency_rms"] >= 0
            # the deterministic baselines have no diversity, the samplers have some
            assert (m["diversity"] > 0) == name.startswith(("cINN", "random z"))
    for m in fm.values():
        assert 0 <= m["accuracy"] <= 1 and m["fid"] >= 0
    # upsampling then downsampling nearly gives the input back: the consistency metric compares the right pairs
    assert faces["bilinear upsampling"]["consistency_psnr"] > 25
    assert fm["bicubic upsampling"]["consistency_psnr"] > 25
    # the shipped classifier (91 %) on the original test images: labels and images are paired
    assert summary["fashion_mnist"]["reference"]["accuracy_real"] > 0.75
    for name, side in (("fashion_mnist", 28 * 2), ("faces", 64)):
        with Image.open(tmp_path / "results" / "figures" / f"superres_{name}.png") as im:
            # 8 rows: input, upsampling, the samples (at most 6), original; 2 px padding
            assert im.size == ((3 + settings.samples) * (side + 2) + 2, 8 * (side + 2) + 2)
    assert json.loads((tmp_path / "results" / "superres.json").read_text())["settings"]["face_steps"] == 3
    # a second call reuses the three trained runs
    again = run_superres(out_dir=tmp_path / "results", settings=settings)
    assert set(again["train_seconds"].values()) == {0.0}
