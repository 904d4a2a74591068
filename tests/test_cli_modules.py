"""The user's own modules on the command line: ``--import MODULE`` before the config is read (train, encode,
translate, sample, score), and ``--trust MODULE`` for run folders whose experts live in the user's modules
(translate, sample, score)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from omegaconf import OmegaConf
from test_security import _cli, _config, _run_folder

RESOLVER_MODULE = '''from omegaconf import OmegaConf

OmegaConf.register_resolver("twice_q", lambda x: 2 * int(x), replace=True)
'''
EXPERT_MODULE = '''from net2net.experts.label import LabelEncoder


def three():
    return LabelEncoder(3)
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path`` as the working folder, not on ``sys.path`` (the CLI adds it), and the modules written there
    forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in ("my_resolvers_q", "my_experts_s"):
        sys.modules.pop(name, None)
    OmegaConf.clear_resolver("twice_q")


def test_import_runs_the_users_module_before_the_config_is_read(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "my_resolvers_q.py").write_text(RESOLVER_MODULE)
    cfg = _config(steps=1, every=1)
    cfg["lightning"]["trainer"]["max_steps"] = "${twice_q:1}"  # a resolver the user's module registers
    (workdir / "mine.yaml").write_text(yaml.safe_dump(cfg))

    code, err = _cli(capsys, "train", "mine.yaml", "--log-dir", "run")
    assert code == 2 and len(err) == 1 and "twice_q" in err[0]  # without --import: the resolver is unknown
    code, err = _cli(capsys, "train", "mine.yaml", "--log-dir", "run", "--import", "my_resolvers_q")
    assert code == 0, err
    assert json.loads((workdir / "run" / "summary.json").read_text())["global_step"] == 2

    code, err = _cli(capsys, "train", "mine.yaml", "--import", "no_such_module_q", "--import", "my_resolvers_q")
    assert code == 2 and err == ["net2net train: error: --import no_such_module_q: ModuleNotFoundError: No module "
                                 "named 'no_such_module_q'"]  # fmt: skip
    (workdir / "broken_q.py").write_text("raise RuntimeError('the module itself fails')\n")
    code, err = _cli(capsys, "encode", "mine.yaml", "--import", "broken_q")
    assert code == 2 and err == ["net2net encode: error: --import broken_q: RuntimeError: the module itself fails"]


def test_sample_score_and_translate_load_runs_with_the_users_experts(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "my_experts_s.py").write_text(EXPERT_MODULE)
    run = str(_run_folder(workdir, {"target": "my_experts_s.three"}))  # source: labels 0..2 by the user's module
    np.save(workdir / "labels.npy", np.array([0, 1, 2, 1, 0]))
    rng = np.random.default_rng(0)
    np.save(workdir / "images.npy", rng.uniform(-1, 1, (5, 1, 28, 28)).astype(np.float32))
    sample = ["sample", run, "--source", "labels.npy", "-n", "2", "--out", "s.npy"]
    score = ["score", run, "--source", "labels.npy", "--target", "images.npy", "--out", "p.npy"]
    translate = ["translate", run, "--labels", "1", "-n", "2", "--out", "t"]

    for argv in (sample, score, translate, [*sample, "--import", "my_experts_s"]):  # importing is not trusting
        code, err = _cli(capsys, *argv)
        assert code == 2 and len(err) == 1 and "my_experts_s.three" in err[0] and "trust" in err[0], (argv, err)
        assert not any((workdir / name).exists() for name in ("s.npy", "p.npy", "t"))

    assert _cli(capsys, *sample, "--trust", "my_experts_s")[0] == 0
    assert np.load(workdir / "s.npy").shape == (5, 2, 64)
    assert _cli(capsys, *score, "--trust-config")[0] == 0
    scores = np.load(workdir / "p.npy")
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert _cli(capsys, *translate, "--trust", "my_experts_s")[0] == 0
    assert (workdir / "t" / "translations.png").is_file()
