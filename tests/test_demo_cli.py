"""The main job (``net2net demo``) on a tiny setting, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from net2net.apps.demo import digits_config, run_demo
from net2net.cli import main

TINY = ["model.params.flow_config.params.n_blocks=2", "model.params.flow_config.params.hidden_dim=32",
        "model.params.flow_config.params.embedding_dim=8"]


def test_demo_trains_writes_png_and_reuses_the_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "out"
    first = run_demo(out, steps=30, overrides=TINY, samples_per_class=4, eval_samples_per_class=10)
    assert first["trained_now"]
    run = Path(first["run_dir"])
    assert run.parent == tmp_path / "cache" / "runs" and run.name.startswith("digits-")  # under NET2NET_CACHE
    assert (run / "cinn.safetensors").is_file() and (run / "summary.json").is_file()  # train_from_config's run
    png = Image.open(out / "label_to_digits.png")
    # 10 rows (classes) x 4 samples of 8x8 pixels upscaled 4x with 2-pixel padding
    assert png.size == (4 * 34 + 2, 10 * 34 + 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["classifier_accuracy_samples"] <= 1.0
    assert metrics["classifier_accuracy_real_test"] > 0.9  # the judge itself is good
    assert len(metrics["classifier_accuracy_samples_per_class"]) == 10
    assert (out / "label_to_digits.safetensors").exists()
    assert not list(out.glob("*.tmp")) and not list(run.rglob("*.tmp"))  # atomic writes left nothing behind
    second = run_demo(out, steps=30, overrides=TINY, samples_per_class=4, eval_samples_per_class=10)
    assert not second["trained_now"] and second["run_dir"] == first["run_dir"]
    assert second["test_nats_per_dim"] == first["test_nats_per_dim"]
    assert run_demo(out, steps=31, overrides=TINY, samples_per_class=4, eval_samples_per_class=10)["trained_now"]
    assert [p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()] == ["runs"]  # nothing outside the root
    cfg = digits_config(seed=5)
    assert cfg["seed"] == 5 and cfg["data"]["params"]["train"]["params"]["seed"] == 5  # the split follows --seed
    with pytest.raises(ValueError, match="samples_per_class"):
        run_demo(out, samples_per_class=1)


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


def test_every_command_is_built_from_the_table_with_its_handler_and_help() -> None:
    import argparse

    from net2net import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert list(sub.choices) == list(cli._COMMANDS)  # one parser per table row, in the table's (--help) order
    assert {c.dest: c.help for c in sub._choices_actions} == {n: h for n, (_, h, _) in cli._COMMANDS.items()}
    for name, (func, _, description) in cli._COMMANDS.items():
        command = sub.choices[name]
        assert command.get_default("func") is func, name
        assert command.description == (cli._reproduce_description() if name == "reproduce" else description), name
        assert command.prog == f"{parser.prog} {name}"
    assert sub.choices["evaluate"].description is None  # a command without a description shows only its help
    assert cli._COMMANDS["demo"][0] is cli._demo and cli._COMMANDS["evaluate-autoencoder"][0] is cli._evaluate_autoencoder


def test_reproduce_help_and_the_serve_page_name_every_experiment_with_its_time(capsys) -> None:
    from net2net.reproduce import ABOUT, EXPERIMENTS
    from net2net.serve.discovery import TABS

    assert list(EXPERIMENTS) == list(ABOUT) and len(ABOUT) == 8
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name, (_, minutes) in ABOUT.items():
        assert f"{name}: " in text and f"~{minutes:g} min" in text, name
    for tab in ("exemplar", "diagnosis", "unpaired", "superres"):  # the page says how to make a missing tab's run
        assert TABS[tab][1] == f"net2net reproduce {tab} --quick  (about {ABOUT[tab][1]:g} min)"


def test_console_script_is_installed() -> None:
    out = subprocess.run([sys.executable, "-m", "net2net.cli", "demo", "--help"], capture_output=True, text=True, check=True)
    assert "text_to_image.png" in out.stdout and "digits" in out.stdout


def test_demo_threads_follow_the_load_unless_told(monkeypatch) -> None:
    import os

    import torch

    from net2net.training.threads import choose_threads

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        assert choose_threads() == 2  # idle: PyTorch's threads stay
        monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
        assert choose_threads() == 1  # busy: one thread
        torch.set_num_threads(2)
        assert choose_threads(2) == 2  # asked for: kept, busy or not
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert choose_threads() == 2  # the user's environment decides
        with pytest.raises(ValueError, match="threads must be a positive int, got 0"):
            choose_threads(0)
    finally:
        torch.set_num_threads(before)


def test_training_warns_on_a_busy_machine_without_switching(monkeypatch, caplog) -> None:
    import os

    import torch

    from net2net.training.threads import warn_if_busy

    before = torch.get_num_threads()
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        with caplog.at_level("WARNING", logger="net2net.training.threads"):
            warn_if_busy()
        assert caplog.records == []  # idle: nothing to say
        monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
        with caplog.at_level("WARNING", logger="net2net.training.threads"):
            warn_if_busy()
        assert "load average 6.0 on 2 cores) and PyTorch uses 2 threads" in caplog.text
        assert "--threads 1" in caplog.text and torch.get_num_threads() == 2  # said, not switched
    finally:
        torch.set_num_threads(before)
