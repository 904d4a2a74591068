"""The main job (``net2net demo``) on a tiny setting, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

from net2net.apps.demo import DemoSettings, run_demo
from net2net.cli import main


def test_demo_trains_writes_png_and_reuses_weights(tmp_path) -> None:
    s = DemoSettings(steps=30, n_blocks=2, hidden_dim=32, embedding_dim=8, samples_per_class=4, eval_samples_per_class=10)
    out, cache = tmp_path / "out", tmp_path / "cache"
    first = run_demo(out, cache, s)
    assert first["trained_now"]
    png = Image.open(out / "label_to_digits.png")
    # 10 rows (classes) x 4 samples of 8x8 pixels upscaled 4x with 2-pixel padding
    assert png.size == (4 * 34 + 2, 10 * 34 + 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["classifier_accuracy_samples"] <= 1.0
    assert metrics["classifier_accuracy_real_test"] > 0.9  # the judge itself is good
    assert len(metrics["classifier_accuracy_samples_per_class"]) == 10
    assert (out / "label_to_digits.safetensors").exists()
    assert not list(out.glob("*.tmp")) and not list(cache.glob("*.tmp"))  # atomic writes left nothing behind
    second = run_demo(out, cache, s)
    assert not second["trained_now"]
    assert second["test_nats_per_dim"] == first["test_nats_per_dim"]


def test_cli_help_and_bad_arguments(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "demo" in capsys.readouterr().out
    assert main(["demo", "--steps", "0"]) == 2
    assert "--steps must be a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["nonsense"])
    assert e.value.code == 2


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "net2net.cli", "demo", "--help"], capture_output=True, text=True, check=True)
    assert "text_to_image.png" in out.stdout and "digits" in out.stdout
