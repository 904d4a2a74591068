"""What net2net trusts (weights files: nothing; run folders: only net2net unless told), and how it answers bad input:
malicious files, typos in configs, SIGTERM, damaged checkpoints and caches, concurrent runs, CLI errors."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from net2net.apps.translate import Net2Net
from net2net.cli import CLIError, main
from net2net.config import UntrustedTargetError, get_obj_from_str, instantiate_from_config, trusted_modules
from net2net.data.latent_cache import LatentDataset, encode_dataset, verify_cache
from net2net.experts.label import LabelEncoder
from net2net.flows import ConditionalINN, load_cinn, save_cinn
from net2net.io import read_safetensors_metadata
from net2net.training.run import ConfigError, RunLockedError, TrainingInterrupted, train_from_config

TINY = {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "embedding_dim": 4}


# -- weights files hold numbers, never code --------------------------------------------------------------------
def _with_metadata(src: Path, dst: Path, **meta: str) -> Path:
    save_file(load_file(str(src)), str(dst), metadata={**read_safetensors_metadata(src), **meta})
    return dst


def test_load_cinn_never_runs_what_a_file_names(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    good = save_cinn(ConditionalINN(**TINY), tmp_path / "good.safetensors")
    evil_v1 = _with_metadata(good, tmp_path / "v1.safetensors", format="net2net.ConditionalINN/1", flow_config=json.dumps(
        {"target": "os.system", "params": {"command": f"touch {marker}"}}))  # fmt: skip
    with pytest.raises(ValueError, match="may only describe net2net.flows.ConditionalINN"):
        load_cinn(evil_v1)
    evil_field = _with_metadata(good, tmp_path / "f.safetensors", config=json.dumps({**TINY, "target": "os.system"}))
    with pytest.raises(ValueError, match="unknown cINN field 'target'"):
        load_cinn(evil_field)
    evil_value = _with_metadata(good, tmp_path / "v.safetensors", config=json.dumps({**TINY, "alpha": {"target": "x"}}))
    with pytest.raises(ValueError, match="must be a finite number"):
        load_cinn(evil_value)
    for bad in ({**TINY, "alpha": float("nan")}, {**TINY, "hidden_dim": 10**12}, {**TINY, "n_blocks": 10**9}):
        with pytest.raises(ValueError, match="finite number|does not fit"):  # nothing huge is allocated
            load_cinn(_with_metadata(good, tmp_path / "b.safetensors", config=json.dumps(bad)))
    assert not marker.exists()
    # an old (format 1) file of the real class still loads
    old = _with_metadata(good, tmp_path / "old.safetensors", format="net2net.ConditionalINN/1",
                         flow_config=json.dumps({"target": "net2net.flows.ConditionalINN", "params": TINY}))  # fmt: skip
    assert load_cinn(old).config == load_cinn(good).config == ConditionalINN(**TINY).config


def test_corrupt_weights_files_name_the_file(tmp_path: Path) -> None:
    good = save_cinn(ConditionalINN(**TINY), tmp_path / "cinn.safetensors")
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"cut\.safetensors: cannot read the cINN weights: .*truncated or corrupt"):
        load_cinn(tmp_path / "cut.safetensors")
    from net2net.experts.classifier import load_classifier

    with pytest.raises(ValueError, match=r"cut\.safetensors: cannot read the classifier weights"):
        load_classifier(tmp_path / "cut.safetensors")


# -- a run folder's config imports only net2net unless trusted ---------------------------------------------------
def _run_folder(root: Path, source: dict[str, Any], cond_dim: int = 3) -> Path:
    """A finished-looking run folder: config.yaml naming the experts, and an (untrained) cinn.safetensors."""
    run = root / "run"
    run.mkdir()
    cfg = {"data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
        "source": source,
        "target": {"target": "net2net.experts.target.load_autoencoder_target",
                   "params": {"path": "pretrained:fashion_mnist_autoencoder"}},
        "train": {"target": "net2net.data.Digits"}}}}  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    tau = ConditionalINN(dim=64, cond_dim=cond_dim, n_blocks=1, hidden_dim=8, embedding_dim=4)
    tau(torch.randn(16, 64), torch.randn(16, cond_dim))  # a training-mode pass initialises ActNorm
    save_cinn(tau, run / "cinn.safetensors")
    return run


def test_run_folder_config_imports_nothing_outside_net2net(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "pwned"
    for i, evil in enumerate(({"target": "os.system", "params": {"command": f"touch {marker}"}},
                 {"target": "net2net.config.os.system", "params": {"command": f"touch {marker}"}},  # via an attribute
                 {"target": "net2net.config.get_obj_from_str", "params": {"name": "os.system"}},
                 {"target": "net2net.experts.blackbox.BlackBoxExpert", "params": {  # a nested block
                     "fn": {"target": "subprocess.getoutput", "params": {"cmd": f"touch {marker}"}}}})):  # fmt: skip
        root = tmp_path / f"case{i}"
        root.mkdir()
        run = _run_folder(root, evil)
        with pytest.raises(UntrustedTargetError, match="refusing"):
            Net2Net.from_run(run)
        assert main(["translate", str(run), "--labels", "1", "--out", str(root / "out")]) == 2
        assert not marker.exists()

    # the user's own module: refused until trusted by name
    (tmp_path / "my_experts_q.py").write_text(
        "from net2net.experts.label import LabelEncoder\n\ndef three():\n    return LabelEncoder(3)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "mine"
    root.mkdir()
    run = _run_folder(root, {"target": "my_experts_q.three"})
    with pytest.raises(UntrustedTargetError, match="my_experts_q.three"):
        Net2Net.from_run(run)
    assert isinstance(Net2Net.from_run(run, trust=["my_experts_q"]).source, LabelEncoder)
    assert isinstance(Net2Net.from_run(run, trust_config=True).source, LabelEncoder)
    with trusted_modules(["my_experts_q"]):
        assert callable(get_obj_from_str("my_experts_q.three"))
    assert get_obj_from_str("os.path.join") is os.path.join  # a config the user passes: anything


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh())


def test_nested_blocks_are_instantiated_for_typed_parameters() -> None:
    expert = instantiate_from_config({"target": "net2net.experts.layer.LayerExpert",
                                      "params": {"model": {"target": "test_security.tiny_net"}, "layer": "0"}})  # fmt: skip
    assert expert.encode(torch.randn(2, 3)).shape == (2, 5)
    # parameters declared as mappings keep the block (the callee instantiates it itself)
    data = instantiate_from_config({"target": "net2net.data.captions.CaptionedDataset", "params": {
        "dataset": {"target": "net2net.data.Digits", "params": {"split": "test"}}}})  # fmt: skip
    assert len(data) > 0
    from net2net.config import _admits_mapping

    for text, admits in (("Dataset | Mapping[str, Any]", True), ("Callable[[np.ndarray], Any]", False),
                         ("typing.Optional[typing.Mapping[str, typing.Any]]", True), ("nn.Module", False),
                         ("Optional[nn.Module]", False), ("str | os.PathLike | nn.Module", False)):  # fmt: skip
        assert _admits_mapping(text) is admits, text


# -- configs: typos and bad values are errors before any work ---------------------------------------------------
def _config(steps: int = 4, every: int = 2) -> dict[str, Any]:
    flow = {**TINY, "hidden_depth": 1, "embedder_hidden_dim": 8, "embedder_depth": 1}
    pairs = {"target": "ddp_helpers.LinearGaussianPairs", "params": {"n": 32, "dim": 4, "cond_dim": 3}}
    return {
        "model": {"target": "net2net.training.translator.CINNModule", "params": {
            "flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow},
            "optim": {"warmup_steps": 1}, "batch_size": 8}},
        "data": {"target": "net2net.training.datamodule.DataModule", "params": {"batch_size": 8, "train": pairs}},
        "lightning": {
            "trainer": {"max_steps": steps, "accelerator": "cpu", "enable_model_summary": False,
                        "num_sanity_val_steps": 0, "log_every_n_steps": 1},
            "callbacks": {"image_logger": None, "compute": None, "checkpoint": {"params": {"every_n_train_steps": every}},
                          "progress": {"target": "net2net.training.run.ProgressLog", "params": {"every_seconds": 1e-6}}},
        },
    }  # fmt: skip


def _refused(tmp_path: Path, overrides: list[str], message: str) -> None:
    """Training the tiny config with ``overrides`` fails with a ConfigError matching ``message`` before any step."""
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config()))
    with pytest.raises(ConfigError, match=message):
        train_from_config([cfg], overrides, log_dir=tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


# (override with a misspelt key, what the message names as unknown, the key it suggests)
TYPOS = [("lightnin.trainer.max_steps=5", r"lightnin: unknown top-level key", "lightning"),
         ("modle.params.x=1", r"modle: unknown top-level key", "model"),
         ("model.parms.x=1", r"model: unknown key\(s\) 'parms'", "params"),
         ("lightning.trainer.max_step=5", r"lightning.trainer.max_step: .*", "max_steps"),
         ("lightning.callback.x=1", r"lightning.callback: unknown key", "callbacks"),
         ("model.params.flow_config.params.n_blcks=2", r"'n_blcks'", "n_blocks")]  # fmt: skip


@pytest.mark.parametrize(("override", "unknown", "suggestion"), TYPOS)
def test_config_typos_are_refused_with_a_suggestion(tmp_path: Path, override: str, unknown: str,
                                                     suggestion: str) -> None:  # fmt: skip
    _refused(tmp_path, [override], rf"{unknown} \(did you mean '{suggestion}'\?\)")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["lightning.trainer.max_steps=2.5"], r"lightning.trainer.max_steps: expected an int >= 1 .*got 2.5"),
        (["lightning.trainer.max_steps=-5"], r"lightning.trainer.max_steps: expected an int"),
        (["model.params.optim.max_lr='0.001'"], r"optim.max_lr: expected a finite number >= 0, got '0.001'"),
        (["data.params.batch_size=-1"], r"data.params: batch sizes must be positive, got -1"),
        (["model.params.batch_size=-1"], r"model.params.batch_size: expected a positive int"),
        (["seed=true"], r"seed: expected an int"),
    ],
)
def test_config_bad_values_are_refused(tmp_path: Path, overrides: list[str], message: str) -> None:
    _refused(tmp_path, overrides, message)


def test_flow_dim_must_match_the_target_expert(tmp_path: Path) -> None:
    run = _run_folder(tmp_path, {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}})
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["data"]["params"].update(source_key="label", cache_dir=str(tmp_path / "cache"), progress=False)
    cfg["model"] = _config()["model"]  # dim 4, the autoencoder's codes have 64
    (tmp_path / "dim.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"model.params.flow_config.params.dim: 4, but the target expert's codes "
                                          r"have 64 dimensions"):  # fmt: skip
        train_from_config([tmp_path / "dim.yaml"], log_dir=tmp_path / "run2")
    assert not (tmp_path / "cache").exists()  # nothing was encoded


# -- checkpoints: atomic, verified, SIGTERM, lock ----------------------------------------------------------------
class SigtermAt(L.Callback):
    """Send this process SIGTERM (as `timeout`, `docker stop` or SLURM do) after global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_sigterm_saves_and_resumes_and_damaged_checkpoints_are_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="net2net.training.run")
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config(steps=8, every=2)))
    log_dir = tmp_path / "run"
    handler = signal.getsignal(signal.SIGTERM)
    try:
        code = main(["train", str(cfg), "--log-dir", str(log_dir), "--threads", "1",
                     "lightning.callbacks.stop.target=test_security.SigtermAt", "lightning.callbacks.stop.params.step=3"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 143 and err[-1].startswith("net2net train: stopped by SIGTERM at step 3; saved")
    ckpts = log_dir / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 3
    assert not list(ckpts.glob(".*.tmp"))  # no temporary files left
    assert any("step 3/8" in r.getMessage() and "steps/s" in r.getMessage() for r in caplog.records)  # progress lines

    # a truncated last.ckpt: resume from the intact step=000002.ckpt beside it, with a warning
    data = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 3])
    with pytest.warns(RuntimeWarning, match=r"last.ckpt: unreadable.*resuming from .*step=000002.ckpt \(step 2\)"):
        train_from_config([cfg], log_dir=log_dir)
    summary = json.loads((log_dir / "summary.json").read_text())
    assert summary["start_step"] == 2 and summary["global_step"] == 8
    assert summary["mean_step_seconds"] > 0 and summary["median_step_seconds"] > 0

    # a second call while the folder is in use
    import fcntl

    with open(log_dir / ".lock", "r+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242 on elsewhere since now\n")
        held.flush()
        with pytest.raises(RunLockedError, match="in use by pid 4242 on elsewhere"):
            train_from_config([cfg], ["lightning.trainer.max_steps=10"], log_dir=log_dir)
    assert json.loads((log_dir / "summary.json").read_text())["global_step"] == 8
    assert TrainingInterrupted.__mro__[1] is RuntimeError


class _FailsToPickle:
    def __reduce__(self) -> Any:
        raise OSError(28, "No space left on device")  # what a full disk does in the middle of a write


def test_checkpoint_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from net2net.training.run import AtomicCheckpointIO

    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))  # not used: the temporary file lies beside the target
    io = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "step=000002.ckpt"
    io.save_checkpoint({"global_step": 2, "w": torch.ones(3)}, path)
    with pytest.raises(OSError, match="No space left"):
        io.save_checkpoint({"global_step": 4, "w": torch.zeros(10_000), "x": _FailsToPickle()}, path)
    assert torch.load(path, weights_only=True)["global_step"] == 2  # the old checkpoint, intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["step=000002.ckpt"]  # no partial or temporary file


# -- the latent cache: shards verified, damaged ones re-encoded -------------------------------------------------
class CodeTarget(torch.nn.Module):
    """The identity on flat codes, as a target expert (encode and decode)."""

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        return z.float()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z


class Codes(torch.utils.data.Dataset):
    """Labels and flat target codes: a cache without a target encoder."""

    def __init__(self, n: int = 40) -> None:
        g = torch.Generator().manual_seed(0)
        self.codes, self.labels = torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"label": int(self.labels[i]), "z": self.codes[i]}


def _cache(path: Path) -> Path:
    return encode_dataset(Codes(), LabelEncoder(3), None, path, source_key="label", target_key="z", shard_size=16,
                          progress=False)  # fmt: skip


def test_damaged_cache_shard_is_detected_and_reencoded(tmp_path: Path) -> None:
    path = _cache(tmp_path / "cache")
    assert verify_cache(path) == [] and len(LatentDataset(path)) == 40
    shard = path / "shard_00001.safetensors"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # one flipped byte in the tensor data: the safetensors header still parses
    shard.write_bytes(bytes(data))
    assert "SHA-256 differs" in verify_cache(path)[0]
    with pytest.raises(ValueError, match=r"shard_00001.safetensors: its SHA-256 differs.*net2net encode"):
        LatentDataset(path)
    shard.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match=r"shard_00001.safetensors: 100 bytes, the manifest says"):
        LatentDataset(path)
    # TranslationDataModule.prepare_data re-encodes a damaged cache instead of reporting a hit
    from net2net.training.translation import TranslationDataModule

    dm = TranslationDataModule(source={"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}},
                               target={"target": "test_security.CodeTarget"},
                               train={"target": "test_security.Codes"}, source_key="label", target_key="z",
                               cache_dir=str(tmp_path / "dm"), progress=False)  # fmt: skip
    dm.prepare_data()
    cached = dm.cache_path("train")
    (cached / "shard_00000.safetensors").write_bytes(b"garbage")
    dm.prepare_data()
    assert verify_cache(cached) == [] and len(LatentDataset(cached)) == 40


# -- the CLI: one line on stderr, exit status 2 -----------------------------------------------------------------
@pytest.fixture(scope="module")
def label_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_folder(tmp_path_factory.mktemp("labels"),
                       {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}})  # fmt: skip


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def test_cli_translate_answers_bad_input_in_one_line(
    label_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out")
    (tmp_path / "a_file").write_text("x")
    cases = [
        (["translate", str(tmp_path / "missing"), "--labels", "1"], "no such folder"),
        (["translate", str(tmp_path), "--labels", "1"], "is not a training run folder"),
        (["translate", str(label_run), "--out", out], "give --text SENTENCE ..., --labels INT ... or --images"),
        (["translate", str(label_run), "--labels", "1", "-n", "0", "--out", out], "-n must be a positive integer"),
        (["translate", str(label_run), "--labels", "1", "--temperature", "-1", "--out", out], "finite number >= 0"),
        (["translate", str(label_run), "--labels", "1", "--temperature", "inf", "--out", out], "finite number >= 0"),
        (["translate", str(label_run), "--labels", "1", "--out", str(tmp_path / "a_file")], "is not a folder"),
        (["translate", str(label_run), "--text", "a coat", "--out", out], "reads class labels (0..2): use --labels"),
        (["translate", str(label_run), "--labels", "7", "--out", out], "--labels must lie in 0..2"),
        (["translate", str(label_run), "--labels", "1", "-n", "100000000", "--out", out], "GiB are available: use -n"),
    ]
    for argv, message in cases:
        code, err = _cli(capsys, *argv)
        assert code == 2 and len(err) == 1 and err[0].startswith("net2net translate: error: "), (argv, err)
        assert message in err[0], (argv, err)
    assert not Path(out).exists()  # nothing written
    code, err = _cli(capsys, "translate", str(label_run), "--labels", "0", "2", "-n", "3", "--out", out)
    assert code == 0 and (Path(out) / "translations.png").is_file()
    with pytest.raises(CLIError, match="no such folder"):  # --debug: the exception (traceback) instead of the line
        main(["--debug", "translate", str(tmp_path / "missing"), "--labels", "1"])


def test_cli_translate_on_an_image_source_and_train_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_folder(tmp_path, {"target": "net2net.experts.layer.classifier_expert",
                                 "params": {"path_or_model": "pretrained:fashion_mnist_classifier", "layer": "stage2"}})
    code, err = _cli(capsys, "translate", str(run), "--labels", "1", "--out", str(tmp_path / "o"))
    assert code == 2 and len(err) == 1 and "reads images" in err[0] and "give --images FILE.npy" in err[0]
    images = np.linspace(-1, 1, 3 * 28 * 28, dtype=np.float32).reshape(3, 28, 28)  # (N, H, W): gray images
    np.save(tmp_path / "images.npy", images)
    (tmp_path / "logits").mkdir()
    run = _run_folder(tmp_path / "logits", {"target": "net2net.experts.layer.classifier_expert", "params": {
        "path_or_model": "pretrained:fashion_mnist_classifier", "layer": "fc"}}, cond_dim=10)  # fmt: skip
    code, err = _cli(capsys, "translate", str(run), "--images", str(tmp_path / "images.npy"), "-n", "2",
                     "--out", str(tmp_path / "o"))  # fmt: skip
    assert code == 0 and (tmp_path / "o" / "translations.png").is_file()
    np.save(tmp_path / "big.npy", images * 3)
    np.save(tmp_path / "nan.npy", np.where(np.arange(3)[:, None, None] == 1, np.nan, images))
    np.save(tmp_path / "ints.npy", np.zeros((2, 28, 28), dtype=np.int64))
    np.save(tmp_path / "flat.npy", np.zeros((2, 5), dtype=np.float32))
    for file, message in (("big.npy", "values must lie in [-1, 1]"), ("nan.npy", "NaN or inf in image(s) [1]"),
                          ("ints.npy", "expected floats in [-1, 1], got dtype int64"), ("x.png", "expected a .npy"),
                          ("flat.npy", "or (N, H, W) with 1 <= N <= 256, got shape (2, 5)"),
                          ("none.npy", "no such file")):  # fmt: skip
        code, err = _cli(capsys, "translate", str(run), "--images", str(tmp_path / file), "--out", str(tmp_path / "o"))
        assert code == 2 and len(err) == 1 and message in err[0], (file, err)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(_config()))
    code, err = _cli(capsys, "train", str(cfg), "modle.params.x=1", "--log-dir", str(tmp_path / "r"))
    assert code == 2 and err == ["net2net train: error: config error: modle: unknown top-level key (did you mean "
                                 "'model'?); a training config holds model, data, lightning, seed"]  # fmt: skip
    code, err = _cli(capsys, "train", str(cfg), "--threads", "0")
    assert code == 2 and err == ["net2net train: error: --threads must be a positive integer, got 0"]


def test_user_modules_in_the_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_pairs_q.py").write_text("from ddp_helpers import LinearGaussianPairs as Pairs\n")
    cfg = _config(steps=1, every=1)
    cfg["data"]["params"]["train"]["target"] = "my_pairs_q.Pairs"
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["train", "mine.yaml", "--log-dir", "run"]) == 0
    assert (tmp_path / "run" / "cinn.safetensors").is_file()
