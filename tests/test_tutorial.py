"""docs/your_own_models.md runs as written: its Python blocks in order as one script, its ``# file:`` blocks
written to files, in a temporary folder, with fewer training steps (the replacements below must all apply)."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import warnings
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "your_own_models.md"
TINY = {  # text of the tutorial -> the test's smaller sizes
    "FitSettings(steps=1500,": "FitSettings(steps=200, batch_size=64, embedding_dim=16, val_every=50, max_lr=3e-3,",
    "for step in range(2000):": "for step in range(300):",
    "trainer: {max_steps: 2000, val_check_interval: 500,": (
        "trainer: {max_steps: 200, val_check_interval: 100, enable_progress_bar: false,"
    ),
}


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```(\w+)\n(.*?)```", text, flags=re.S)]


def test_tutorial_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = DOC.read_text(encoding="utf-8")
    for old, new in TINY.items():
        assert text.count(old) == 1, f"the tutorial no longer contains {old!r} once: update TINY"
        text = text.replace(old, new)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    namespace: dict = {"__name__": "__tutorial__"}
    out = io.StringIO()
    ran = 0
    try:
        for lang, code in _blocks(text):
            first = code.splitlines()[0]
            if first.startswith("# file: "):
                (tmp_path / first.removeprefix("# file: ").strip()).write_text(code, encoding="utf-8")
            elif lang == "python":
                with warnings.catch_warnings(), contextlib.redirect_stdout(out):
                    warnings.simplefilter("ignore")
                    exec(compile(code, f"{DOC.name} block {ran}", "exec"), namespace)
                ran += 1
    finally:
        sys.modules.pop("my_models", None)
    assert ran == 4, f"expected 4 Python blocks to run, ran {ran}"
    printed = out.getvalue()
    # story 1: the translation learned that a left half says something about its right half
    assert "log p: true pairs" in printed
    assert namespace["scores"].mean() > namespace["mismatched"].mean() + 1.0
    # story 2: samples from the translation of the user's classifier layer are recognised as the input's digit
    match = re.search(r"classified as their input's digit: (\d+)%", printed)
    assert match and int(match.group(1)) >= 40, printed  # chance: 10 %
    assert namespace["samples"].shape == (100, 8, 1, 8, 8)
    assert namespace["swapped"].shape == (4, 1, 8, 8) and namespace["log_p"].shape == (100,)
