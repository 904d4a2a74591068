"""`net2net reproduce disentangle` (supplementary Sec. C, Fig. S1) on a tiny configuration, and its pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from net2net.config import instantiate_from_config
from net2net.experts.encoder_source import deformed_encoder
from net2net.reproduce.disentangle import (
    DisentangleSettings,
    _iou,
    _pairs,
    disentangle_config,
    run_disentangle,
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"flip": False, "tps_strength": 0.0, "crop_scale": (1.0, 1.0)}, "identity"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"tps_strength": -0.1}, "tps_strength"),
        ({"test_images": 5}, "test_images"),
        ({"samples": 1}, "samples"),
        ({"steps": 0}, "steps"),
    ],
)
def test_settings_reject_bad_values(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DisentangleSettings(**kwargs)

AE = "pretrained:fashion_mnist_autoencoder"


def test_source_is_deformed_and_encoded_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = DisentangleSettings(train_images=32, steps=2, batch_size=8, tps_strength=0.3, crop_scale=(0.5, 0.9))
    cfg = disentangle_config(settings)
    assert cfg["model"]["params"]["flow_config"]["params"]["cond_dim"] == 64
    dm = instantiate_from_config(cfg["data"])
    phi = dm.source
    assert dm.live and phi.stochastic and phi.tps_strength == 0.3 and phi.crop_scale == (0.5, 0.9)
    batch = next(iter(dm.train_dataloader()))
    a, b = dm.on_after_batch_transfer(dict(batch), 0), dm.on_after_batch_transfer(dict(batch), 0)
    assert a["z_src"].shape == a["z_tgt"].shape == (8, 64)
    assert not torch.allclose(a["z_src"], b["z_src"])  # a new deformation on every batch
    # the undeformed code differs from the deformed one: d really changes what Θ sees
    mean, _ = dm.target.encode_dist(batch["image"])
    assert not torch.allclose(a["z_src"], mean, atol=1e-3)
    # seeded sources repeat their deformations; the test-time source without d is Θ itself
    x = batch["image"]
    def seeded() -> torch.Tensor:
        return deformed_encoder(AE, tps_strength=0.3, crop_scale=(0.5, 1.0), seed=1).deform(x)

    assert torch.equal(seeded(), seeded())
    ident = deformed_encoder(AE, flip=False, tps_strength=0.0, crop_scale=(1.0, 1.0))
    assert torch.allclose(ident.encode(x), mean, atol=1e-5)


def test_pairs_and_iou() -> None:
    labels = torch.tensor([0, 0, 1, 1, 2, 0, 1])
    g = torch.Generator().manual_seed(0)
    i, j = _pairs(labels, same=True, g=g)
    assert set(i.tolist()) == {0, 1, 2, 3, 5, 6}  # class 2 has a single image: no same-class partner
    assert (labels[i] == labels[j]).all() and (i != j).all()
    i, j = _pairs(labels, same=False, g=g)
    assert len(i) == len(labels) and (labels[i] != labels[j]).all()
    a = -torch.ones(2, 1, 28, 28)
    b = a.clone()
    a[:, :, :14] = 1.0  # top half
    b[0, :, :14] = 1.0  # the same top half
    b[1, :, 14:] = 1.0  # the bottom half
    assert torch.allclose(_iou(a, b), torch.tensor([1.0, 0.0]))


def test_disentangle_tiny_run_writes_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = DisentangleSettings(train_images=256, steps=3, batch_size=16, test_images=60, samples=2)
    out = tmp_path / "results"
    summary = run_disentangle(out_dir=out, runs_dir=tmp_path / "runs", settings=settings)
    page = (out / "disentangle.md").read_text()
    rows = summary["outputs"]
    assert list(rows) == ["swap", "swap, Φ = Θ∘d at test", "random residual τ(ε | Θ(x_j))",
                          "copy of x_j (appearance)", "copy of y_i (shape)"]  # fmt: skip
    for name, r in rows.items():
        cell = name.replace("|", "\\|")  # escaped in the markdown table
        assert f"| {cell} |" in page
        for key in ("class_of_appearance", "class_of_shape", "iou_shape", "iou_appearance", "shape_closer"):
            assert 0 <= r[key] <= 1, (name, key)
    # the trivial outcomes pin the measures down: a copy of x_j has x_j's class, silhouette and brightness
    app, shape = rows["copy of x_j (appearance)"], rows["copy of y_i (shape)"]
    assert app["class_of_appearance"] > app["class_of_shape"] and shape["class_of_shape"] > shape["class_of_appearance"]
    assert app["iou_appearance"] > app["iou_shape"] and shape["shape_closer"] > app["shape_closer"]
    assert app["brightness_corr_appearance"] > 0.9 and shape["brightness_corr_shape"] > 0.9
    assert summary["diversity"] > 0 and 0 <= summary["probe_accuracy_v"] <= 1
    # the Fig. S1 grid: 9 x 9 cells of 28 px at scale 2 (shape column and appearance row included)
    with Image.open(out / "figures" / "disentangle_swap.png") as im:
        assert im.size[0] >= 9 * 56 and im.size[0] == im.size[1]
    for name in ("swap_tops", "deformations"):
        assert (out / "figures" / f"disentangle_{name}.png").is_file()
    saved = json.loads((out / "disentangle.json").read_text())
    assert saved["settings"]["steps"] == 3 and saved["train_seconds"]["cinn"] > 0
    # a second call reuses the trained run
    again = run_disentangle(out_dir=out, runs_dir=tmp_path / "runs", settings=settings)
    assert again["train_seconds"]["cinn"] == 0.0
