"""`net2net reproduce` on tiny configurations: every experiment trains, evaluates and writes its page."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from net2net.reproduce import reproduce
from net2net.reproduce.diagnosis import LAYERS, DiagnosisSettings, diagnosis_config, run_diagnosis


def test_diagnosis_configs_fit_the_layers() -> None:
    s = DiagnosisSettings(train_images=100, steps=10)
    early = diagnosis_config("stage1", "cinn", s)["model"]["params"]["flow_config"]["params"]
    last = diagnosis_config("fc", "mlp", s)["model"]["params"]["translator_config"]["params"]
    assert early["cond_shape"] == [16, 28, 28] and last["cond_dim"] == 10
    with pytest.raises(ValueError, match="kind"):
        diagnosis_config("fc", "gan", s)


def test_diagnosis_tiny_run_writes_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = DiagnosisSettings(train_images=256, steps=3, test_images=48, samples=2, prior_steps=5)
    summary = run_diagnosis(out_dir=tmp_path / "results", settings=settings)
    page = (tmp_path / "results" / "diagnosis.md").read_text()
    assert [r["layer"] for r in summary["layers"]] == list(LAYERS)
    for r in summary["layers"]:
        assert r["cinn_diversity"] > 0 and r["cinn_fid"] >= 0 and r["mlp_fid"] >= 0
        assert 0 <= r["cinn_accuracy"] <= 1 and f"| {r['layer']} ({r['module']})" in page
    for name in LAYERS:
        assert (tmp_path / "results" / "figures" / f"diagnosis_{name}.png").is_file()
    assert json.loads((tmp_path / "results" / "diagnosis.json").read_text())["settings"]["steps"] == 3
    # a second call reuses the six trained runs
    again = run_diagnosis(out_dir=tmp_path / "results", settings=settings)
    assert set(again["train_seconds"].values()) == {0.0}


def test_reproduce_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown experiment"):
        reproduce("superres")
