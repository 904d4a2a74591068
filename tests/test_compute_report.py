"""ComputeTracker (time, energy, CO₂ and cost of training runs with codecarbon, offline) and `net2net report`."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import lightning as L
import pytest
import torch
import yaml

from net2net.cli import main
from net2net.training import compute
from net2net.training.compute import ComputeTracker, compute_table
from net2net.training.run import ConfigError, train_from_config

FALLBACK_W = 50.0


class InterruptAt(L.Callback):
    """Raise KeyboardInterrupt (as Ctrl-C does) after global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step >= self.step:
            raise KeyboardInterrupt


def _config() -> dict[str, Any]:
    flow = {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "hidden_depth": 1, "embedding_dim": 4,
            "embedder_hidden_dim": 8, "embedder_depth": 1}  # fmt: skip
    pairs = {"target": "ddp_helpers.LinearGaussianPairs", "params": {"n": 32, "dim": 4, "cond_dim": 3}}
    return {
        "model": {
            "target": "net2net.training.translator.CINNModule",
            "params": {
                "flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow},
                "optim": {"warmup_steps": 1},
                "batch_size": 8,
            },
        },
        "data": {"target": "net2net.training.datamodule.DataModule", "params": {"batch_size": 8, "train": pairs}},
        "lightning": {
            "trainer": {
                "max_steps": 2,
                "accelerator": "cpu",
                "enable_progress_bar": False,
                "enable_model_summary": False,
                "num_sanity_val_steps": 0,
                "log_every_n_steps": 1,
            },
            "callbacks": {
                "image_logger": None,
                "checkpoint": {"params": {"every_n_train_steps": 2}},
                "compute": {"params": {"fallback_power_w": FALLBACK_W, "force_fallback": True, "price_per_kwh": 0.5}},
            },
        },
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Three calls on one folder, from the folder (a stray emissions.csv would land there): 2 steps; resume to 4;
    resume towards 6, interrupted by Ctrl-C after step 5."""
    root = tmp_path_factory.mktemp("compute")
    cfg = root / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config()), encoding="utf-8")
    log_dir = root / "tiny"
    records = []
    cwd, sigint = os.getcwd(), signal.getsignal(signal.SIGINT)
    os.chdir(root)
    try:
        train_from_config([cfg], log_dir=log_dir)
        records.append(json.loads((log_dir / "compute.json").read_text()))
        train_from_config([cfg], ["lightning.trainer.max_steps=4"], log_dir=log_dir)
        records.append(json.loads((log_dir / "compute.json").read_text()))
        interrupt = ["lightning.trainer.max_steps=6", "lightning.callbacks.stop.target=test_compute_report.InterruptAt",
                     "lightning.callbacks.stop.params.step=5"]  # fmt: skip
        with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C: on_exception hooks, then exit(1)
            train_from_config([cfg], interrupt, log_dir=log_dir)
        records.append(json.loads((log_dir / "compute.json").read_text()))
        ckpt_step = torch.load(log_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    finally:
        os.chdir(cwd)
        signal.signal(signal.SIGINT, sigint)  # Lightning ignores SIGINT after a KeyboardInterrupt
    return {"root": root, "dir": log_dir, "records": records, "ckpt_step": ckpt_step}


def test_run_writes_compute_json_with_the_forced_fallback(run: dict[str, Any]) -> None:
    import codecarbon

    r = run["records"][0]
    assert r["wall_seconds"] > 0 and r["hours"] == pytest.approx(r["wall_seconds"] / 3600)
    assert r["measurement"] == "estimated from 50 W" and r["power_meters"] == []
    assert r["energy_kwh"] == pytest.approx(FALLBACK_W * r["wall_seconds"] / 3.6e6) and r["energy_kwh"] > 0
    assert r["codecarbon_energy_kwh"] > 0  # codecarbon's own estimate, kept for comparison
    assert r["country"] == "DEU" and r["country_name"] == "Germany"
    assert 0.1 < r["carbon_intensity_kg_per_kwh"] < 1.0
    assert r["co2_kg"] == pytest.approx(r["energy_kwh"] * r["carbon_intensity_kg_per_kwh"])
    assert r["cost"] == pytest.approx(0.5 * r["energy_kwh"]) and r["currency"] == "EUR" and r["price_per_kwh"] == 0.5
    assert (r["steps"], r["global_step"], r["calls"], r["interrupted"]) == (2, 2, 1, None)
    assert r["devices"] == "1 × cpu" and "threads" in r["hardware"]
    assert r["codecarbon_version"] == codecarbon.__version__ and r["experiment"] == "tiny"
    # offline and quiet on disk: no emissions.csv in the working directory or the run folder
    assert not list(run["root"].rglob("emissions*.csv"))


def test_resume_and_interruption_accumulate(run: dict[str, Any]) -> None:
    first, second, third = run["records"]
    assert (second["steps"], second["global_step"], second["calls"]) == (4, 4, 2)
    assert second["wall_seconds"] > first["wall_seconds"]
    assert second["energy_kwh"] == pytest.approx(FALLBACK_W * second["wall_seconds"] / 3.6e6)
    assert second["co2_kg"] > first["co2_kg"] and second["cost"] > first["cost"]
    assert second["measurement"] == first["measurement"] and second["hardware"] == first["hardware"]
    # Ctrl-C after step 5: the record is still written, with the interruption named
    assert (third["steps"], third["global_step"], third["calls"]) == (5, 5, 3)
    assert third["interrupted"] == "KeyboardInterrupt" and third["wall_seconds"] > second["wall_seconds"]
    assert run["ckpt_step"] == 5  # last.ckpt saved on Ctrl-C (the periodic one holds step 4): nothing is lost


def test_report_cli_prints_the_table(run: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["report", "--root", str(run["root"])]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "| experiment | hardware | hours | energy (kWh) | CO₂ (kg) | cost (EUR) | measurement |"
    assert out[2].startswith("| tiny | ") and out[2].endswith("| estimated from 50 W |")
    assert out[-1].startswith("| **total** |") and len(out) == 4
    assert main(["report", str(run["dir"])]) == 0 and capsys.readouterr().out.strip().splitlines()[2] == out[2]
    assert main(["report", "--root", str(tmp_path)]) == 1  # no compute.json there
    assert "no compute.json" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2


def _record(tmp_path: Path, name: str, **fields: Any) -> Path:
    record = {"hardware": "CPU (2 threads)", "hours": 1.5, "energy_kwh": 2.0, "co2_kg": 0.8, "cost": 0.6,
              "currency": "EUR", "measurement": "meter", **fields}  # fmt: skip
    (tmp_path / name).mkdir(parents=True)
    (tmp_path / name / "compute.json").write_text(json.dumps(record), encoding="utf-8")
    return tmp_path / name


def test_compute_table_sums_and_mixed_currencies(tmp_path: Path) -> None:
    a, b = _record(tmp_path, "a"), _record(tmp_path, "b", hours=2500.2, energy_kwh=1234.4, cost=370.3)
    lines = compute_table([a, b]).splitlines()
    assert lines[2] == "| a | CPU (2 threads) | 1.5 | 2 | 0.8 | 0.6 | meter |"
    assert lines[3] == "| b | CPU (2 threads) | 2,500 | 1,234 | 0.8 | 370 | meter |"
    assert lines[4] == "| **total** | | 2,502 | 1,236 | 1.6 | 371 | |"
    c = _record(tmp_path, "c", currency="USD")
    mixed = compute_table([a, c]).splitlines()
    assert "| cost |" in mixed[0] and mixed[3].endswith("| 0.6 USD | meter |") and "| – |" in mixed[-1]
    with pytest.raises(FileNotFoundError, match="compute.json"):
        compute_table([tmp_path / "none"])


def _fake_trainer(root: Path, step: int = 0) -> SimpleNamespace:
    return SimpleNamespace(is_global_zero=True, global_step=step, default_root_dir=str(root), num_nodes=1,
                           num_devices=1, strategy=SimpleNamespace(root_device=torch.device("cpu")))  # fmt: skip


def test_meter_path_and_forced_fallback_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a meter is readable (faked here: this machine has neither RAPL nor NVML) energy is codecarbon's;
    force_fallback still uses the fallback power. No socket is opened."""

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(compute, "power_meters", lambda: ["RAPL"])
    for force, folder in ((False, "meter"), (True, "forced")):
        tracker = ComputeTracker(country_iso_code="fra", fallback_power_w=80, force_fallback=force)
        trainer = _fake_trainer(tmp_path / folder)
        tracker.on_train_start(trainer, None)  # type: ignore[arg-type]
        trainer.global_step = 3
        tracker.on_train_end(trainer, None)  # type: ignore[arg-type]
        tracker.teardown(trainer, None, "fit")  # type: ignore[arg-type]  # no second write
        r = json.loads((tmp_path / folder / "compute.json").read_text())
        assert r["country"] == "FRA" and r["steps"] == 3 and r["calls"] == 1
        if force:
            assert r["measurement"] == "estimated from 80 W" and r["power_meters"] == []
            assert r["energy_kwh"] == pytest.approx(80 * r["wall_seconds"] / 3.6e6)
        else:
            assert r["measurement"] == "meter" and r["power_meters"] == ["RAPL"]
            assert r["energy_kwh"] == r["codecarbon_energy_kwh"] > 0


def test_unforced_tracker_uses_a_meter_only_where_one_is_readable(tmp_path: Path) -> None:
    """This machine (a VM without RAPL files and without GPU) has none: the explicit fallback is used."""
    meters = compute.power_meters()
    tracker = ComputeTracker()
    trainer = _fake_trainer(tmp_path)
    tracker.on_train_start(trainer, None)  # type: ignore[arg-type]
    tracker.on_exception(trainer, None, RuntimeError("boom"))  # type: ignore[arg-type]
    r = json.loads((tmp_path / "compute.json").read_text())
    assert r["power_meters"] == meters and r["interrupted"] == "RuntimeError"
    assert r["measurement"] == ("meter" if meters else "estimated from 100 W")


def test_bad_input_is_a_clear_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"price_per_kwh must be a finite number >= 0, got -0.1"):
        ComputeTracker(price_per_kwh=-0.1)
    with pytest.raises(ValueError, match=r"alpha-3 code \(three letters, e.g. 'DEU' for Germany\), got 'DE'"):
        ComputeTracker(country_iso_code="DE")
    with pytest.raises(ValueError, match=r"'XYZ' is not in codecarbon's energy-mix data"):
        ComputeTracker(country_iso_code="XYZ")
    with pytest.raises(ValueError, match="fallback_power_w must be a positive number"):
        ComputeTracker(fallback_power_w=0)
    # through a config: a ConfigError (a ValueError) naming the key, before any training
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config()), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"lightning\.callbacks\.compute: .*price_per_kwh"):
        train_from_config([cfg], ["lightning.callbacks.compute.params.price_per_kwh=-1"], log_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "compute.json").exists()


def test_import_net2net_does_not_import_codecarbon() -> None:
    code = "import sys, net2net, net2net.cli; assert 'codecarbon' not in sys.modules, 'codecarbon imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
