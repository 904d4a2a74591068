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
    last = diagnosis_config("fc", "mlp", s)["model"]["params"]["translator_params"]
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
        reproduce("nonexistent")


def test_compute_page_lists_the_runs_and_times(tmp_path: Path) -> None:
    from net2net.reproduce import write_compute_page

    runs = []
    for i, name in enumerate(["diagnosis-last-cinn-abc", "superres-lowres-ae-def"]):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        record = {"hours": 0.5 * (i + 1), "energy_kwh": 0.05 * (i + 1), "co2_kg": 0.02 * (i + 1), "cost": 0.015 * (i + 1),
                  "currency": "EUR", "hardware": "2 CPU cores", "measurement": "fallback 100 W"}  # fmt: skip
        (run / "compute.json").write_text(json.dumps(record))
        runs.append(run)
    runs.append(tmp_path / "runs" / "never-trained")  # no record: left out, not an error
    page = write_compute_page(tmp_path / "results", runs, {"diagnosis": 600.0, "superres": 300.0}, quick=True)
    text = page.read_text()
    assert "reproduce all --quick" in text and "| diagnosis | 10.0 |" in text and "| **total** | 15.0 |" in text
    assert "diagnosis-last-cinn-abc" in text and "superres-lowres-ae-def" in text and "never-trained" not in text
    assert "| **total** | | 1.5 | 0.15 |" in text  # hours and kWh summed over the two records
