"""The main job end to end (slow: loads Sentence-BERT and encodes the 60k Fashion-MNIST images once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from net2net.cli import main


@pytest.mark.slow
def test_demo_trains_writes_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    args = ["demo", "--steps", "30", "--out", str(out)]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())  # stdout also holds progress output
    assert metrics["trained_now"] and (out / "text_to_image.png").is_file()
    assert len(metrics["per_prompt"]) == 60 and 0 <= metrics["held_out_accuracy"] <= 1
    assert set(metrics["held_out_accuracy_by_set"]) == {"original", "added"}
    assert (out / "text_to_image.safetensors").is_file()
    assert main(args) == 0  # the second run reuses the trained cINN
    assert not json.loads((out / "metrics.json").read_text())["trained_now"]
