"""Loading a trained translation for inference needs neither Lightning nor the training stack (issue 13).

The run folders are written by hand (config.yaml + cinn.safetensors / translator.safetensors, as training writes
them), so that the child process that loads them has imported nothing but what inference needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from net2net.flows import ConditionalINN, save_cinn
from net2net.translators import build_translator, save_translator

# sympy: torch imports it for meta-device shape functions such as randperm's (1 s of net2net translate, issue 17)
HEAVY = ("lightning", "lightning.pytorch", "torchmetrics", "codecarbon", "matplotlib", "sympy")


def _label_run(run: Path, translator: str | None = None) -> Path:
    """A run of p(autoencoder code | one of 3 labels), as a CINNModule (or TranslatorModule) run leaves it."""
    run.mkdir(parents=True)
    model = ("net2net.training.translator.CINNModule" if translator is None
             else "net2net.training.translator.TranslatorModule")  # fmt: skip
    config = {
        "model": {"target": model, "params": {}},
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "source": {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}},
            "target": {"target": "net2net.experts.target.load_autoencoder_target",
                       "params": {"path": "pretrained:fashion_mnist_autoencoder"}},
            "train": {"target": "net2net.data.FashionMNIST"}, "source_key": "label"}},
    }  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    params = {"dim": 64, "cond_dim": 3, "hidden_dim": 16, "embedding_dim": 4, **({"n_blocks": 2} if translator is None else {})}
    z, c = torch.randn(32, 64), torch.eye(3)[torch.arange(32) % 3]  # (32, 64) codes, (32, 3) one-hot labels
    if translator is None:
        tau = ConditionalINN(**params)
        tau(z, c)  # a training-mode pass initialises ActNorm, as the first training step does
        save_cinn(tau, run / "cinn.safetensors")
    else:
        t = build_translator(translator, **params)
        t.loss(z, c)
        save_translator(t, run / "translator.safetensors")
    return run


CHILD = """
import json, sys
from pathlib import Path
import net2net.apps
from net2net import Net2Net
from net2net.cli import main
run, out, HEAVY = Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3])
model = Net2Net.from_run(run)
images = model.translate(__import__("torch").tensor([0, 2]), n=3)
assert main(["translate", str(run), "--labels", "0", "1", "-n", "2", "--out", str(out), "--threads", "1"]) == 0
print(json.dumps({"shape": list(images.shape), "loaded": [m for m in HEAVY if m in sys.modules],
                  "threads": __import__("torch").get_num_threads()}))
"""


@pytest.mark.parametrize("translator", [None, "mlp"])
def test_loading_a_run_and_translating_does_not_import_lightning(tmp_path: Path, translator: str | None) -> None:
    run = _label_run(tmp_path / "run", translator)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # PyTorch's default threads until --threads
    out = subprocess.run([sys.executable, "-c", CHILD, str(run), str(tmp_path / "out"), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["shape"] == [2, 3, 1, 28, 28]
    assert result["threads"] == 1  # --threads, chosen without importing the training stack
    assert result["loaded"] == [], f"inference imported {result['loaded']}"
    assert (tmp_path / "out" / "translations.png").is_file()


def test_import_net2net_apps_does_not_import_lightning() -> None:
    code = f"import sys, net2net.apps, net2net.apps.translate; print([m for m in {HEAVY!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[]"
