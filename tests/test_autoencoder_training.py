"""Training the autoencoder g from configs: outputs, resuming, the target expert, CLI errors, the shipped configs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import save_file

from net2net.cli import main
from net2net.config import instantiate_from_config, load_config
from net2net.experts.target import EXPORT_FORMAT, AutoencoderTarget, load_autoencoder_target
from net2net.training.callbacks import ImageLogger
from net2net.training.datamodule import DataModule, concat_domains
from net2net.training.run import train_from_config

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs" / "autoencoder"

# A tiny autoencoder (explicit encoder/decoder blocks, not a preset) on the 8x8 digits upsampled to 28 px.
TINY = """
model:
  target: net2net.training.autoencoder_module.AutoencoderModule
  params:
    image_size: 28
    in_channels: 1
    z_dim: 8
    encoder_config:
      target: net2net.autoencoder.Encoder
      params: {image_size: 28, in_channels: 1, z_dim: 8, base_width: 4}
    decoder_config:
      target: net2net.autoencoder.Decoder
      params: {image_size: 28, out_channels: 1, z_dim: 8, ch: 4, n_classes: 10, h_dim: 8, class_hidden_dim: 16}
    learning_rate: 1.0e-3
    loss_config:
      target: net2net.autoencoder.AutoencoderLoss
      params: {kl_weight: 1.0e-4, disc_start: 2, disc_ndf: 8}
data:
  target: net2net.training.datamodule.DataModule
  params:
    batch_size: 4
    train: {target: net2net.data.Digits, params: {split: train, size: 28}}
    validation: {target: net2net.data.Digits, params: {split: test, size: 28}}
lightning:
  trainer:
    max_steps: 3
    val_check_interval: 3
    check_val_every_n_epoch: null
    limit_val_batches: 1
    num_sanity_val_steps: 0
    log_every_n_steps: 1
    enable_progress_bar: false
    enable_model_summary: false
  callbacks:
    image_logger: {params: {every_n_steps: 2, max_images: 4, log_first_step: false}}
    checkpoint: {params: {every_n_train_steps: 2}}
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _ckpt_step(path: Path) -> int:
    return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])


def _safetensors_state(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not iterable)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Three calls on one log folder: train 3 steps; call again at max_steps=3 with another seed (nothing to train:
    the weights must come from last.ckpt); continue to max_steps=4."""
    root = tmp_path_factory.mktemp("ae_run")
    cfg = _write(root / "tiny.yaml", TINY)
    log_dir = root / "run"
    t0 = time.perf_counter()
    assert train_from_config([cfg], log_dir=log_dir) == log_dir
    first = {
        "files": sorted(str(p.relative_to(log_dir)) for p in log_dir.rglob("*") if p.is_file()),
        "summary": json.loads((log_dir / "summary.json").read_text()),
        "ckpt_step": _ckpt_step(log_dir / "checkpoints" / "last.ckpt"),
        "export": _safetensors_state(log_dir / "autoencoder.safetensors"),
        "metrics": (log_dir / "logs" / "version_0" / "metrics.csv").read_text(),
    }
    train_from_config([cfg], ["seed=1"], log_dir=log_dir)
    again = {
        "summary": json.loads((log_dir / "summary.json").read_text()),
        "export": _safetensors_state(log_dir / "autoencoder.safetensors"),
    }
    train_from_config([cfg], ["lightning.trainer.max_steps=4"], log_dir=log_dir)
    return {"dir": log_dir, "config": cfg, "first": first, "again": again, "seconds": time.perf_counter() - t0}


def test_first_run_writes_checkpoint_config_images_and_export(run: dict) -> None:
    first, log_dir = run["first"], run["dir"]
    files = set(first["files"])
    for name in ("config.yaml", "checkpoints/last.ckpt", "autoencoder.safetensors", "summary.json"):
        assert name in files, sorted(files)
    for kind in ("inputs", "reconstructions", "samples"):
        assert f"images/step_000002_{kind}.png" in files
    assert first["ckpt_step"] == 3  # last.ckpt holds the final step, not only the periodic one (2)
    assert first["summary"]["global_step"] == 3 and first["summary"]["start_step"] == 0
    # the merged config, with the overrides of the latest call
    saved = OmegaConf.load(log_dir / "config.yaml")
    assert saved.model.params.z_dim == 8 and saved.lightning.trainer.max_steps == 4
    # validation ran and logged reconstruction metrics; the discriminator switched on at disc_start=2
    header = first["metrics"].splitlines()[0].split(",")
    for key in ("val/l1", "val/psnr", "train/rec_loss", "train/kl_loss", "train/disc_loss", "train/d_weight"):
        assert key in header
    # the export holds encoder + decoder only, with the architecture as JSON metadata
    with safe_open(str(log_dir / "autoencoder.safetensors"), framework="pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["format"] == EXPORT_FORMAT
    assert json.loads(meta["config"])["z_dim"] == 8
    assert keys and all(k.startswith(("encoder.", "decoder.")) for k in keys)


def test_resume_restores_weights_and_continues_the_step_count(run: dict) -> None:
    log_dir = run["dir"]
    # max_steps already reached, other seed: nothing is trained, and the re-export equals the first run's weights
    assert run["again"]["summary"]["resumed_from"] is not None
    assert run["again"]["summary"]["steps"] == 0
    for k, v in run["first"]["export"].items():
        assert torch.equal(v, run["again"]["export"][k]), k
    # continuing: global_step goes 3 -> 4, not 0 -> 4
    summary = json.loads((log_dir / "summary.json").read_text())
    assert (summary["start_step"], summary["global_step"], summary["steps"]) == (3, 4, 1)
    assert summary["precision"] == "32-true"  # what the trainer ran, recorded (precision: auto decides per machine)
    ckpt = torch.load(log_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    assert len(ckpt["optimizer_states"]) == 2  # autoencoder (with log γ) and discriminator
    assert not any(k.startswith("loss.perceptual.") for k in ckpt["state_dict"])
    steps = [line.split(",")[1] for line in (log_dir / "logs" / "version_2" / "metrics.csv").read_text().splitlines()[1:]]
    assert steps and min(int(s) for s in steps) >= 3


def test_target_from_checkpoint_and_safetensors_agree(run: dict) -> None:
    log_dir = run["dir"]
    a = AutoencoderTarget.from_checkpoint(log_dir / "checkpoints" / "last.ckpt")
    b = load_autoencoder_target(log_dir / "autoencoder.safetensors")
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a.decode(z), b.decode(z))
    y = torch.rand(3, 1, 28, 28) * 2 - 1
    mean, std = b.encode_dist(y)
    assert mean.shape == std.shape == (3, 8) and (std > 0).all()
    assert torch.equal(b.mean_std(y)[0], mean)
    assert b.encode(y, generator=torch.Generator().manual_seed(1)).shape == (3, 8)
    for target in (a, b):
        target.train()
        assert not target.training and not any(m.training for m in target.modules())
        assert not any(p.requires_grad for p in target.parameters())
    with pytest.raises(ValueError, match="28x28"):
        b.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="channel"):
        b.encode(torch.zeros(2, 3, 28, 28))


def test_target_rejects_other_architectures_and_missing_files(run: dict, tmp_path: Path) -> None:
    ckpt_path = run["dir"] / "checkpoints" / "last.ckpt"
    with pytest.raises(FileNotFoundError, match="nope.ckpt"):
        AutoencoderTarget.from_checkpoint(tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError):
        AutoencoderTarget.from_safetensors(tmp_path / "nope.safetensors")
    # the configuration says z_dim 16 but the weights are for z_dim 8: key and both shapes are named
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    hp["z_dim"] = hp["encoder_config"]["params"]["z_dim"] = hp["decoder_config"]["params"]["z_dim"] = 16
    torch.save(ckpt, tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match=r"shape mismatch for 'encoder\.head\.weight': expected \(32, .*received \(16,"):
        AutoencoderTarget.from_checkpoint(tmp_path / "other.ckpt")
    with pytest.raises(ValueError, match="z_dim: expected 64, received 8"):
        AutoencoderTarget.from_checkpoint(ckpt_path, expected={"z_dim": 64})
    # a checkpoint of something else
    torch.save({"state_dict": {}, "hyper_parameters": {"flow_config": {}}}, tmp_path / "cinn.ckpt")
    with pytest.raises(ValueError, match="not an AutoencoderModule checkpoint"):
        AutoencoderTarget.from_checkpoint(tmp_path / "cinn.ckpt")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(ValueError, match="not an autoencoder export"):
        AutoencoderTarget.from_safetensors(tmp_path / "plain.safetensors")


def test_cli_train_reports_config_errors_with_the_key(run: dict, tmp_path: Path, capsys) -> None:
    bad = _write(tmp_path / "bad.yaml", TINY.replace("net2net.training.autoencoder_module.AutoencoderModule", "net2net.nope.Model"))
    assert main(["train", str(bad), "--log-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model: unknown target 'net2net.nope.Model'" in err and "Traceback" not in err
    assert main(["train", str(run["config"]), "--log-dir", str(tmp_path / "out"), "model.params.bogus=1"]) == 2
    err = capsys.readouterr().err
    assert "model: invalid params" in err and "'bogus'" in err
    args = ["lightning.trainer.max_stepz=1", "--log-dir", str(tmp_path / "out")]
    assert main(["train", str(run["config"]), *args]) == 2
    assert "lightning.trainer.max_stepz: unknown Trainer argument (did you mean 'max_steps'?)" in capsys.readouterr().err
    args = ["lightning.callbacks.image_logger.params.every_n_step=5", "--log-dir", str(tmp_path / "out")]
    assert main(["train", str(run["config"]), *args]) == 2
    assert "lightning.callbacks.image_logger" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_datamodule_concat_domains_and_image_logger_arguments() -> None:
    blocks = {
        "a": {"target": "net2net.data.Digits", "params": {"split": "test", "size": 16}},
        "b": {"target": "net2net.data.Digits", "params": {"split": "test", "size": 16, "seed": 1}},
    }
    ds = concat_domains(blocks, max_per_domain=10)
    assert len(ds) == 20 and ds.domains == ["a", "b"] and ds[15]["domain"] == 1
    dm = DataModule(4, train={"target": "net2net.training.datamodule.concat_domains", "params": {"datasets": blocks}})
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 1, 16, 16) and batch["domain"].shape == (4,)
    assert dm.val_dataloader is None  # Lightning then skips validation
    with pytest.raises(ValueError, match="positive"):
        ImageLogger(every_n_steps=0)


def _config_paths() -> list[Path]:
    return sorted(CONFIG_DIR.glob("*.yaml"))


def test_the_expected_configs_exist() -> None:
    names = {p.stem for p in _config_paths()}
    assert {"fashion_mnist", "fashion_mnist_32", "digits_union", "dcgan_faces_64", "paper_128"} <= names


@pytest.mark.parametrize("path", _config_paths(), ids=lambda p: p.stem)
def test_config_instantiates_model_and_data(path: Path) -> None:
    """Every shipped config builds its model and its datasets, and they agree on the image shape.

    paper_128 is checked with the small preset here (the paper preset has 125M parameters, see the slow test
    below) and its data needs an image folder: without one the error names the key to set."""
    paper = path.stem == "paper_128"
    cfg = load_config(path, ["model.params.preset=small"] if paper else [])
    for block in ("model", "data", "lightning"):
        assert block in cfg, f"{path.name}: no {block!r} block"
    assert cfg.lightning.trainer.max_steps > 0
    model = instantiate_from_config(cfg.model, key="model")
    p = cfg.model.params
    x = torch.zeros(2, p.in_channels, p.image_size, p.image_size)
    with torch.no_grad():
        assert model.eval().decode(model.encode(x).mean).shape == x.shape
    if paper:
        with pytest.raises(ValueError, match=r"data.*train\.params\.root"):
            instantiate_from_config(cfg.data, key="data")
        return
    data = instantiate_from_config(cfg.data, key="data")
    data.setup("fit")
    assert data.batch_size == cfg.data.params.batch_size
    for split in ("train", "validation"):
        assert data.datasets[split][0]["image"].shape == x.shape[1:], (path.name, split)


@pytest.mark.slow
def test_paper_128_config_builds_the_paper_model() -> None:
    cfg = load_config(CONFIG_DIR / "paper_128.yaml")
    model = instantiate_from_config(cfg.model, key="model")
    n_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("encoder.", "decoder.")))
    assert 100e6 < n_params < 150e6
    assert model.encoder.depths == (3, 4, 23, 3)


def test_architecture_defaults_are_the_builders_and_the_modules() -> None:
    import inspect

    from net2net.experts.target import ARCH_KEYS, architecture_config, build_encoder_decoder
    from net2net.training.autoencoder_module import AutoencoderModule

    expected = {"image_size": None, "in_channels": 3, "z_dim": 128, "preset": "small", "encoder_config": None,
                "decoder_config": None}  # fmt: skip
    assert architecture_config({}) == expected and list(architecture_config({})) == list(ARCH_KEYS)
    assert architecture_config({"z_dim": 8, "lr": 1.0}) == {**expected, "z_dim": 8}
    builder = inspect.signature(build_encoder_decoder).parameters
    module = inspect.signature(AutoencoderModule.__init__).parameters
    assert {k: builder[k].default for k in ARCH_KEYS} == expected == {k: module[k].default for k in ARCH_KEYS}
