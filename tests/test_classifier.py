"""The Fashion-MNIST SmallResNet classifier: shapes, named features, training (through train_from_config),
save/load, errors."""

from __future__ import annotations

import json
import os
import signal

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch.utils.data import DataLoader, TensorDataset

from net2net.config import ConfigError, load_config
from net2net.experts import SmallResNet, load_classifier, read_classifier_metadata, save_classifier
from net2net.training.classifier_module import ClassifierModule, FashionMNISTClassification, augment_batch
from net2net.training.run import TrainingInterrupted, train_from_config

CONFIG = "configs/classifier/fashion_mnist_classifier.yaml"

TINY = {"widths": (8, 16, 32), "blocks_per_stage": 1}  # fast variant for tests


def test_shapes_and_features() -> None:
    net = SmallResNet().eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    feats = net.features(x)
    assert list(feats) == ["stem", "stage1", "stage2", "stage3", "pool", "fc"] == list(net.layer_names)
    shapes = {k: tuple(v.shape) for k, v in feats.items()}
    assert shapes == {
        "stem": (3, 32, 28, 28),
        "stage1": (3, 32, 28, 28),
        "stage2": (3, 64, 14, 14),
        "stage3": (3, 128, 7, 7),
        "pool": (3, 128),
        "fc": (3, 10),
    }
    with torch.no_grad():
        assert torch.allclose(net(x), feats["fc"], atol=1e-6)
    # only the requested layers, in network order
    assert list(net.features(x, ["stage2", "stem"])) == ["stem", "stage2"]
    assert isinstance(net.stem, torch.nn.Module) and isinstance(net.stage3, torch.nn.Module)
    assert isinstance(net.pool, torch.nn.Module) and isinstance(net.fc, torch.nn.Linear)


def test_other_configurations_and_validation() -> None:
    net = SmallResNet(in_channels=3, n_classes=5, widths=(8, 16), blocks_per_stage=1).eval()
    feats = net.features(torch.zeros(2, 3, 32, 32))
    assert list(feats) == ["stem", "stage1", "stage2", "pool", "fc"]
    assert feats["stage2"].shape == (2, 16, 16, 16) and feats["fc"].shape == (2, 5)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="unknown layer"):
        net.features(torch.zeros(2, 3, 32, 32), ["stage3"])
    with pytest.raises(ValueError, match="widths"):
        SmallResNet(widths=())
    with pytest.raises(ValueError, match="blocks_per_stage"):
        SmallResNet(blocks_per_stage=0)


def test_augment_batch() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 1, 28, 28, generator=g) * 2 - 1
    assert torch.equal(augment_batch(x, pad=0, flip=False), x)
    y = augment_batch(x, pad=2, flip=True, generator=g)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    # each output is a shifted (and maybe mirrored) copy: some pixel window of the padded input
    xp = F.pad(x, (2, 2, 2, 2), value=-1.0)
    for i in range(len(x)):
        found = any(
            torch.equal(y[i], cand[:, dy : dy + 28, dx : dx + 28])
            for cand in (xp[i], xp[i].flip(-1))
            for dy in range(5)
            for dx in range(5)
        )
        assert found
    assert not torch.equal(y, x)
    # all channels of an image move together
    rgb = augment_batch(x.expand(-1, 3, -1, -1), generator=g)
    assert torch.equal(rgb[:, 0], rgb[:, 1]) and torch.equal(rgb[:, 0], rgb[:, 2])
    with pytest.raises(ValueError, match="pad"):
        augment_batch(x, pad=-1)


@pytest.fixture(scope="module")
def fashion_512() -> tuple[torch.Tensor, torch.Tensor]:
    from net2net.data import FashionMNIST

    try:
        ds = FashionMNIST(split="train")
    except FileNotFoundError as e:
        pytest.skip(str(e))
    images = torch.from_numpy(ds.images[:512].astype("float32")) * (2 / 255) - 1
    return images[:, None], torch.from_numpy(ds.labels[:512].copy())


def test_training_steps_reduce_the_loss(fashion_512: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = fashion_512
    L.seed_everything(0, verbose=False)
    module = ClassifierModule(architecture=TINY, lr=0.2)

    def loss() -> float:
        module.model.eval()
        with torch.no_grad():
            return float(F.cross_entropy(module.model(x), y))

    module.model.train()  # fill the BatchNorm statistics once, so that eval-mode losses compare
    with torch.no_grad():
        module.model(x)
    before = loss()
    module.model.train()
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    trainer = L.Trainer(
        accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, loader)
    assert trainer.global_step == 24
    after = loss()
    assert after < before - 0.4, (before, after)  # 2.31 -> 1.60 when written
    assert "train/acc" in trainer.callback_metrics and "train/loss" in trainer.callback_metrics


def tiny_run(*extra: str) -> list[str]:
    """Overrides of the shipped config for a run of 2 steps of 64 on 128 images, tested on 64."""
    return [f"model.params.architecture.widths={list(TINY['widths'])}", "model.params.architecture.blocks_per_stage=1",
            "data.params.batch_size=64", "data.params.subset=128", "data.params.val_size=64",
            "data.params.test_subset=64", "lightning.trainer.max_epochs=1", *extra]  # fmt: skip


def test_train_recipe_end_to_end(fashion_512: tuple[torch.Tensor, torch.Tensor], tmp_path) -> None:
    """The shipped config through train_from_config on a few images: trains, tests, saves a loadable file with its
    metrics; a second call with more epochs resumes from the checkpoint."""
    run = train_from_config(CONFIG, tiny_run(), log_dir=tmp_path / "run")
    out = run / "classifier.safetensors"
    summary = json.loads((run / "summary.json").read_text())
    meta = read_classifier_metadata(out)
    assert summary["global_step"] == 2 and json.loads(meta["train_images"]) == 128
    assert json.loads(meta["test_images"]) == 64 and json.loads(meta["steps"]) == 2
    test_acc = json.loads(meta["test_acc"])
    assert 0.0 <= test_acc <= 1.0 and summary["seconds_per_step"] > 0
    assert 0.0 <= json.loads(meta["val_acc"]) <= 1.0 and meta["dataset"] == "fashion-mnist"
    expected = {"in_channels": 1, "n_classes": 10, "widths": list(TINY["widths"]), "blocks_per_stage": 1}
    assert load_classifier(out).architecture == expected
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "compute.json").is_file()
    # the exported test accuracy is that of the trained network on the data module's test split
    data = FashionMNISTClassification(batch_size=64, subset=128, val_size=64, test_subset=64)
    module = ClassifierModule(architecture=TINY)
    module.model.load_state_dict(load_classifier(out).state_dict())
    assert module.accuracy(data.test_dataloader()) == pytest.approx(test_acc)

    # stopped by SIGTERM after step 1 (as timeout, docker stop or SLURM do), the next call resumes from step 1
    stopped = tmp_path / "stopped"
    handler = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(TrainingInterrupted, match="at step 1"):
            train_from_config(CONFIG, tiny_run("lightning.callbacks.stop.target=test_security.SigtermAt",
                                               "lightning.callbacks.stop.params.step=1"), log_dir=stopped)  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert not (stopped / "classifier.safetensors").exists()
    train_from_config(CONFIG, tiny_run(), log_dir=stopped)
    summary = json.loads((stopped / "summary.json").read_text())
    assert summary["start_step"] == 1 and summary["global_step"] == 2 and summary["resumed_from"] is not None
    assert json.loads(read_classifier_metadata(stopped / "classifier.safetensors")["steps"]) == 2
    with pytest.raises(ConfigError, match="val_size"):
        train_from_config(CONFIG, tiny_run("data.params.val_size=-1"), log_dir=tmp_path / "bad")


def test_save_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    net = SmallResNet(**TINY)
    net.train()
    with torch.no_grad():  # move the BatchNorm buffers away from their defaults
        net(torch.randn(8, 1, 28, 28))
    net.eval()
    path = save_classifier(net, tmp_path / "sub" / "clf.safetensors", metadata={"test_acc": 0.5, "note": "x"})
    assert [p.name for p in path.parent.iterdir()] == ["clf.safetensors"]  # no temporary file left behind
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # permissions as for any new file

    loaded = load_classifier(path)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), net(x))
    assert loaded.architecture == net.architecture
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    loaded.train()  # frozen: stays in eval mode, e.g. inside a LightningModule's train()
    assert not loaded.training and not loaded.stage1[0].bn1.training
    meta = read_classifier_metadata(path)
    assert json.loads(meta["test_acc"]) == 0.5 and meta["note"] == "x"
    assert json.loads(meta["architecture"]) == net.architecture


def test_load_errors(tmp_path) -> None:
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(FileNotFoundError, match="net2net train configs/classifier/fashion_mnist_classifier.yaml"):
        load_classifier(missing)

    # weights of another architecture under this architecture's metadata
    other = SmallResNet(widths=(8, 16, 64), blocks_per_stage=1)
    tensors = {k: v.contiguous() for k, v in other.state_dict().items()}
    wrong = tmp_path / "wrong.safetensors"
    save_file(tensors, str(wrong), metadata={"format": "net2net.SmallResNet/1", "architecture": json.dumps(
        SmallResNet(**TINY).architecture)})  # fmt: skip
    expected = r"shape mismatch for .stage3\.0\.conv1\.weight.: expected \(32, 16, 3, 3\), received \(64, 16, 3, 3\)"
    with pytest.raises(ValueError, match=expected):
        load_classifier(wrong)
    # a different depth: missing keys are named
    deeper = SmallResNet(widths=(8, 16, 32), blocks_per_stage=2)
    path = save_classifier(SmallResNet(**TINY), tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match=r"missing key\(s\), e\.g\. .stage1\.1\."):
        load_classifier(path, architecture=deeper.architecture)
    # not a classifier file at all
    alien = tmp_path / "alien.safetensors"
    save_file({"w": torch.zeros(2)}, str(alien))
    with pytest.raises(ValueError, match="not a SmallResNet checkpoint"):
        load_classifier(alien)


def test_shipped_config_is_the_documented_recipe() -> None:
    """configs/classifier/fashion_mnist_classifier.yaml holds the settings of the shipped weights, and the pretrained table and
    the load error name it as the command that makes them."""
    from net2net.pretrained import PRETRAINED

    cfg = load_config(CONFIG)
    assert cfg.model.target == "net2net.training.classifier_module.ClassifierModule"
    assert list(cfg.model.params.architecture.widths) == [16, 32, 64] and cfg.model.params.lr == 0.1
    assert cfg.data.params.batch_size == 128 and cfg.data.params.val_size == 2000 and cfg.data.params.seed == 0
    assert cfg.lightning.trainer.max_epochs == 3 and cfg.seed == 0
    assert f"net2net train {CONFIG}" in PRETRAINED["fashion_mnist_classifier"][1]
