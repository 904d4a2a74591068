"""The main job end to end (slow: loads Sentence-BERT and encodes the 60k Fashion-MNIST images once)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from net2net.cli import main


@pytest.mark.slow
def test_demo_trains_writes_and_reuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    args = ["demo", "--steps", "30", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["trained_now"] and Path(first["png"]).is_file()
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert len(metrics["per_prompt"]) == 20 and 0 <= metrics["held_out_accuracy"] <= 1
    assert (tmp_path / "out" / "text_to_image.safetensors").is_file()
    assert main(args) == 0  # the second run reuses the trained cINN
    assert not json.loads(capsys.readouterr().out)["trained_now"]
