"""`net2net reproduce unpaired` on a tiny configuration, with a tiny randomly initialised union autoencoder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from net2net.experts.target import AutoencoderTarget, architecture_config, build_encoder_decoder
from net2net.reproduce.unpaired import (
    DOMAINS,
    UNION_AUTOENCODER,
    UnpairedSettings,
    run_unpaired,
    train_image_classifier,
    unpaired_config,
)


@pytest.fixture()
def tiny_ae(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    arch = architecture_config({"image_size": 28, "in_channels": 1, "z_dim": 8, "preset": "small"})
    encoder, decoder = build_encoder_decoder(**arch)
    path = tmp_path / "union.safetensors"
    AutoencoderTarget(encoder, decoder, arch).save_safetensors(path)
    return path


def test_config_conditions_on_the_domain_label() -> None:
    s = UnpairedSettings(max_per_domain=100, steps=10)
    assert s.autoencoder == UNION_AUTOENCODER
    cfg = unpaired_config(s, dim=8)
    data = cfg["data"]["params"]
    assert data["source_key"] == "domain" and data["source"]["params"] == {"n_classes": 3}
    assert list(data["train"]["params"]["datasets"]) == [name for name, _, _ in DOMAINS]
    assert data["train"]["params"]["max_per_domain"] == 100
    flow = cfg["model"]["params"]["flow_config"]["params"]
    assert flow["dim"] == 8 and flow["cond_dim"] == 3
    assert cfg["lightning"]["trainer"]["max_steps"] == 10


@pytest.mark.parametrize("bad", [{"test_per_domain": 400}, {"test_per_domain": 8}, {"samples": 4}, {"steps": 0},
                                 {"classifier_steps": -1}])  # fmt: skip
def test_settings_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        UnpairedSettings(**bad)  # type: ignore[arg-type]


def test_image_classifier_learns_a_separable_problem() -> None:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(2).repeat(100)  # (200,)
    images = (labels.float() * 2 - 1).view(-1, 1, 1, 1) * 0.5 + 0.3 * torch.randn(200, 1, 28, 28, generator=g)
    net = train_image_classifier(images, labels, 2, steps=30)
    assert not net.training and float((net(images).argmax(1) == labels).float().mean()) > 0.95
    with pytest.raises(ValueError, match="expected images"):
        train_image_classifier(images[:, :, :14], labels, 2, steps=1)


def test_unpaired_tiny_run_writes_its_page(tmp_path: Path, tiny_ae: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = UnpairedSettings(autoencoder=str(tiny_ae), max_per_domain=48, steps=3, test_per_domain=16, samples=16,
                                classifier_steps=40)  # fmt: skip
    out = tmp_path / "results"
    summary = run_unpaired(out_dir=out, runs_dir=tmp_path / "runs", settings=settings)
    names = [name for name, _, _ in DOMAINS]
    assert [r["domain"] for r in summary["domains"]] == names and summary["code_dim"] == 8
    matrix = summary["transfer_accuracy"]
    for r in summary["domains"]:
        assert r["classifier_accuracy_real"] > 0.5  # chance is 1/3: the three domains look different
        assert r["diversity_samples"] > 0 and r["diversity_real"] > 0 and 0 <= r["likelihood_domain_accuracy"] <= 1
        # a -> a is the reconstruction: tau is invertible, so the diagonal repeats the reconstructions' accuracy
        assert abs(matrix[r["domain"]][r["domain"]] - r["classifier_accuracy_reconstructions"]) <= 1 / 16 + 1e-6
    assert all(0 <= matrix[a][b] <= 1 for a in names for b in names)
    assert set(summary["same_v_distance_ratio"]) == {"mnist|fashion_mnist", "mnist|digits", "fashion_mnist|digits"}
    assert all(x > 0 for x in summary["same_v_distance_ratio"].values())
    assert all(0 <= x <= 1 for x in summary["domain_probe_accuracy"].values())
    assert 0 <= summary["digits"]["same_v_agreement_chance"] <= 1

    page = (out / "unpaired.md").read_text()
    assert "| from \\ to | MNIST | Fashion-MNIST | 8x8 digits |" in page and "| Fashion-MNIST |" in page
    # figures: 3 domains x 4 inputs rows of (input + 3 transfers); 3 domains x 12 samples of the same v
    assert Image.open(out / "figures" / "unpaired_transfer.png").size == (4 * 58 + 2, 12 * 58 + 2)
    assert Image.open(out / "figures" / "unpaired_same_v.png").size == (12 * 58 + 2, 3 * 58 + 2)
    assert json.loads((out / "unpaired.json").read_text())["settings"]["steps"] == 3
    # a second call reuses the trained cINN
    again = run_unpaired(out_dir=out, runs_dir=tmp_path / "runs", settings=settings)
    assert again["train_seconds"]["cinn"] == 0.0 and again["transfer_accuracy"] == matrix
