"""The translation pipeline: latent cache, training from a config, export, inference (Eq. 6, 7), CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from net2net.apps.main_job import text2image_config
from net2net.apps.translate import Net2Net
from net2net.cli import main
from net2net.data import CaptionedDataset, Digits
from net2net.data.latent_cache import LatentDataset, encode_dataset
from net2net.experts.label import LabelEncoder
from net2net.experts.protocols import FrozenExpert
from net2net.experts.target import AutoencoderTarget, build_encoder_decoder
from net2net.flows import ConditionalINN, load_cinn
from net2net.training.run import train_from_config
from net2net.training.translation import TranslationDataModule

ROOT = Path(__file__).resolve().parents[1]


def _tiny_ae(seed: int = 0) -> AutoencoderTarget:
    torch.manual_seed(seed)
    enc, dec = build_encoder_decoder(28, in_channels=1, z_dim=8)
    return AutoencoderTarget(enc, dec, {"image_size": 28, "in_channels": 1, "z_dim": 8, "preset": "small"})


@pytest.fixture(scope="module")
def ae_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ae") / "ae.safetensors"
    _tiny_ae().save_safetensors(path)
    return path


class HashText(FrozenExpert):
    """A deterministic stand-in for a sentence encoder: each string -> a fixed pseudo-random unit vector."""

    dim = 5

    def encode(self, sentences: list[str]) -> Tensor:
        rows = []
        for s in sentences:
            g = torch.Generator().manual_seed(sum(ord(c) * (i + 1) for i, c in enumerate(s)))
            rows.append(torch.nn.functional.normalize(torch.randn(self.dim, generator=g), dim=0))
        return torch.stack(rows)

    def fingerprint(self) -> str:
        return "hash-text-v1"


# -- latent cache --------------------------------------------------------------------------------------------
def test_cache_stores_target_gaussian_and_source_codes(tmp_path: Path) -> None:
    ae = _tiny_ae()
    data = Digits(split="test", size=28)
    out = encode_dataset(data, LabelEncoder(10), ae, tmp_path / "c", source_key="label", batch_size=50,
                         shard_size=128, progress=False)  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["examples"] == len(data) and len(manifest["shards"]) == -(-len(data) // 128)
    ds = LatentDataset(out, sample_target=False)
    assert len(ds) == len(data) and ds.src_shape == (10,) and ds.tgt_dim == 8
    items = [data[i] for i in (0, 77, len(data) - 1)]
    mean, std = ae.encode_dist(torch.stack([it["image"] for it in items]))
    batch = ds[[0, 77, len(data) - 1]]
    torch.testing.assert_close(batch["z_tgt"], mean, rtol=1e-5, atol=1e-5)
    assert batch["z_src"].argmax(1).tolist() == [it["label"] for it in items]
    # sampling z_tgt: mean + std * eps, fresh at each access
    sampled = LatentDataset(out)
    a, b = sampled[[0, 1]]["z_tgt"], sampled[[0, 1]]["z_tgt"]
    assert not torch.allclose(a, b)
    z = torch.stack([sampled[0]["z_tgt"] for _ in range(400)])
    torch.testing.assert_close(z.mean(0), mean[0], atol=4 * float(std[0].max()) / 20 + 1e-4, rtol=0)
    torch.testing.assert_close(z.std(0), std[0], rtol=0.15, atol=1e-4)


def test_cache_caption_table_picks_the_examples_own_captions(tmp_path: Path) -> None:
    captions = {k: [f"class {k} phrasing {j}" for j in range(3)] for k in range(10)}
    data = CaptionedDataset(Digits(split="test", size=28), captions=captions)
    text = HashText()
    out = encode_dataset(data, text, _tiny_ae(), tmp_path / "c", source_key="captions", batch_size=100,
                         progress=False)  # fmt: skip
    ds = LatentDataset(out)
    assert ds.src_table is not None and ds.src_table.shape == (30, 5)  # 30 distinct captions, encoded once
    batch = ds[list(range(0, 300, 7))]
    labels = batch["label"]
    for z, label in zip(batch["z_src"], labels.tolist(), strict=True):
        own = text.encode(captions[label])
        assert torch.isclose(own, z[None]).all(1).any(), "a caption of another class was picked"


def test_stochastic_source_is_not_cached(tmp_path: Path) -> None:
    class Noisy(LabelEncoder):
        stochastic = True

    with pytest.raises(ValueError, match="stochastic"):
        encode_dataset(Digits(split="test"), Noisy(10), _tiny_ae(), tmp_path / "c", source_key="label", progress=False)
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        LatentDataset(tmp_path)


def _datamodule(ae_file: Path, cache: Path, **kw: object) -> TranslationDataModule:
    params = dict(
        source={"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 10}},
        target={"target": "net2net.experts.target.load_autoencoder_target", "params": {"path": str(ae_file)}},
        train={"target": "net2net.data.Digits", "params": {"split": "test", "size": 28}},
        batch_size=16, source_key="label", cache_dir=str(cache), progress=False,
    )  # fmt: skip
    params.update(kw)
    return TranslationDataModule(**params)  # type: ignore[arg-type]


def test_cache_key_follows_weights_and_data(tmp_path: Path, ae_file: Path) -> None:
    dm = _datamodule(ae_file, tmp_path / "cache")
    dm.prepare_data()
    path = dm.cache_path("train")
    stamp = (path / "manifest.json").stat().st_mtime_ns
    again = _datamodule(ae_file, tmp_path / "cache")
    again.prepare_data()  # a hit: nothing re-encoded
    assert again.cache_path("train") == path and (path / "manifest.json").stat().st_mtime_ns == stamp
    other_ae = tmp_path / "other.safetensors"
    _tiny_ae(seed=1).save_safetensors(other_ae)
    assert _datamodule(other_ae, tmp_path / "cache").cache_path("train") != path
    other_data = _datamodule(ae_file, tmp_path / "cache",
                             train={"target": "net2net.data.Digits", "params": {"split": "train", "size": 28}})  # fmt: skip
    assert other_data.cache_path("train") != path
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["z_src"].shape == (16, 10) and batch["z_tgt"].shape == (16, 8)


# -- training, export and inference ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, ae_file: Path) -> Path:
    root = tmp_path_factory.mktemp("run")
    cfg = {
        "model": {"target": "net2net.training.translator.CINNModule", "params": {
            "batch_size": 16,
            "flow_config": {"target": "net2net.flows.ConditionalINN",
                            "params": {"dim": 8, "cond_dim": 10, "n_blocks": 2, "hidden_dim": 16, "embedding_dim": 8}},
            "optim": {"max_lr": 1e-3, "warmup_steps": 2}}},
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "batch_size": 16, "source_key": "label", "cache_dir": str(root / "cache"), "progress": False,
            "source": {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 10}},
            "target": {"target": "net2net.experts.target.load_autoencoder_target", "params": {"path": str(ae_file)}},
            "train": {"target": "net2net.data.Digits", "params": {"split": "test", "size": 28}},
            "validation": {"target": "net2net.data.Digits", "params": {"split": "test", "size": 28}}}},
        "lightning": {"trainer": {"max_steps": 6, "limit_val_batches": 1, "val_check_interval": 3,
                                  "enable_progress_bar": False, "accelerator": "cpu"},
                      "callbacks": {"image_logger": {"params": {"every_n_steps": 3, "max_images": 16}},
                                    "checkpoint": {"params": {"every_n_train_steps": 3}}}},
    }  # fmt: skip
    (root / "cfg.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    train_from_config(root / "cfg.yaml", log_dir=root / "run")
    return root / "run"


def test_run_exports_cinn_and_image_grid(run_dir: Path) -> None:
    assert (run_dir / "cinn.safetensors").is_file()
    assert sorted(p.name for p in (run_dir / "images").glob("*translations.png"))
    tau = load_cinn(run_dir / "cinn.safetensors")
    assert all(bool(m.initialized) for m in tau.modules() if hasattr(m, "initialized"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["global_step"] == 6


def test_translate_residual_recombine_transfer(run_dir: Path) -> None:
    model = Net2Net.from_run(run_dir)
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([1, 7])
    images = model.translate(labels, n=3, generator=g)
    assert images.shape == (2, 3, 1, 28, 28) and images.abs().max() <= 1
    assert not torch.allclose(images[:, 0], images[:, 1])  # different v, different images

    y = torch.stack([Digits(split="test", size=28)[i]["image"] for i in range(2)])
    v = model.residual(y, labels)
    assert v.shape == (2, 8) and torch.isfinite(v).all()
    # recombining with y's own condition gives back y's reconstruction (τ is invertible)
    same = model.recombine(y, labels, x_y=labels)
    torch.testing.assert_close(same, model.decode(model.encode_target(y)), rtol=1e-4, atol=1e-4)
    moved = model.transfer(y, from_domain=labels, to_domain=3)
    assert moved.shape == y.shape and not torch.allclose(moved, same)
    with pytest.raises(ValueError, match="exemplars"):
        model.recombine(y, torch.tensor([1, 2, 3]), x_y=labels)


def test_cli_translate_and_encode(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["translate", str(run_dir), "--labels", "0", "5", "-n", "3", "--out", str(tmp_path / "t")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["shape"] == [2, 3, 1, 28, 28] and Path(out["png"]).is_file()
    assert main(["translate", str(run_dir), "--out", str(tmp_path / "t")]) == 2
    assert main(["encode", str(run_dir / "config.yaml")]) == 0
    assert "train:" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        Net2Net.from_run(tmp_path)


def test_main_job_trains_the_shipped_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`net2net demo` trains configs/translation/text2image.yaml as the package ships it, plus the CLI's options."""
    from net2net.apps.main_job import run_text2image
    from net2net.config import shipped_config

    shipped_file = ROOT / "configs" / "translation" / "text2image.yaml"  # the repository's path links to the package
    assert shipped_config("translation/text2image.yaml").resolve() == shipped_file.resolve()
    assert shipped_file.resolve().is_relative_to((ROOT / "src" / "net2net" / "configs").resolve())
    shipped = OmegaConf.to_container(OmegaConf.load(shipped_file))
    trained: list[tuple[dict, Path]] = []

    class Stop(Exception):
        pass

    def capture(cfg: dict, overrides: object = (), log_dir: Path | None = None, resume: bool = True) -> Path:
        assert log_dir is not None and not overrides
        trained.append((cfg, Path(log_dir)))
        raise Stop  # the config is what matters here, not the training

    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path))
    monkeypatch.setattr("net2net.training.run.train_from_config", capture)
    with pytest.raises(Stop):
        run_text2image(out_dir=tmp_path / "out")
    assert trained[0][0] == shipped  # exactly the file, nothing added or dropped
    assert trained[0][1].parent == tmp_path / "runs" and trained[0][1].name.startswith("text2image-")
    with pytest.raises(Stop):
        run_text2image(out_dir=tmp_path / "out", steps=50, seed=3, precision="bf16")
    expected = json.loads(json.dumps(shipped))
    expected["seed"] = 3
    expected["lightning"]["trainer"].update(max_steps=50, val_check_interval=50, precision="bf16-mixed")
    expected["lightning"]["callbacks"]["image_logger"]["params"]["every_n_steps"] = 50
    expected["lightning"]["callbacks"]["checkpoint"]["params"]["every_n_train_steps"] = 50
    expected["model"]["params"]["optim"].update(decay_steps=50, warmup_steps=12)  # the cosine ends with the run
    assert trained[1][0] == expected and trained[1][1] != trained[0][1]  # another config, another run
    assert text2image_config(steps=50, seed=3, precision="bf16") == expected
    with pytest.raises(ValueError, match="steps"):
        text2image_config(steps=0)


def test_net2net_rejects_wrong_condition() -> None:
    tau = ConditionalINN(dim=8, cond_dim=10, n_blocks=1, hidden_dim=8)
    model = Net2Net(LabelEncoder(10), _tiny_ae(), tau)
    with pytest.raises(ValueError):
        model.translate(torch.tensor([11]), n=2)
    assert isinstance(model.tau, nn.Module) and not model.tau.training


def test_generator_target_trains_on_synthetic_pairs(tmp_path: Path) -> None:
    # supplementary G.2: a generator without an encoder; pairs (Φ(G(z)), z) with the latent kept by the data
    from net2net.data import DCGANFaces, load_dcgan_face_generator

    class LowRes(FrozenExpert):
        def encode(self, x: Tensor) -> Tensor:
            return torch.nn.functional.avg_pool2d(x, 16).flatten(1)  # (B, 3, 64, 64) -> (B, 48)

    faces = DCGANFaces(n_images=32, size=64, chunk_size=32)
    out = encode_dataset(faces, LowRes(), load_dcgan_face_generator(), tmp_path / "c", target_key="z",
                         progress=False)  # fmt: skip
    ds = LatentDataset(out)
    batch = ds[[0, 5]]
    torch.testing.assert_close(batch["z_tgt"], torch.stack([faces[0]["z"], faces[5]["z"]]))
    assert batch["z_src"].shape == (2, 48)


def test_text2image_evaluation_and_grid() -> None:
    # the demo's evaluation on a tiny untrained translation with a stand-in text encoder: the numbers are
    # chance-level, but every held-out phrasing is evaluated and the bookkeeping adds up
    from net2net.apps.main_job import _labelled_grid, evaluate_text2image
    from net2net.data import FASHION_MNIST_CAPTIONS
    from net2net.experts.classifier import load_classifier
    from net2net.metrics import mean_pairwise_distance

    tau = ConditionalINN(dim=8, cond_dim=HashText.dim, n_blocks=1, hidden_dim=8)
    tau.eval()
    for m in tau.modules():  # ActNorm as identity: an untrained flow
        if hasattr(m, "initialized"):
            m.initialized.fill_(True)
    model = Net2Net(HashText(), _tiny_ae(), tau)
    out = evaluate_text2image(model, load_classifier("pretrained:fashion_mnist_classifier"), samples_per_caption=4)
    n_held = sum(len(p["held_out"]) for p in FASHION_MNIST_CAPTIONS.values())
    assert len(out["per_prompt"]) == n_held
    assert len(out["accuracy_per_class"]) == 10 and 0 <= out["held_out_accuracy"] <= 1
    accs = [p["accuracy"] for p in out["per_prompt"]]
    assert abs(sum(accs) / len(accs) - out["held_out_accuracy"]) < 1e-3  # same number of samples per phrasing
    first = [p["accuracy"] for p in out["per_prompt"] if p["set"] == "original"]
    assert len(first) == 20 and abs(sum(first) / 20 - out["held_out_accuracy_by_set"]["original"]) < 1e-3
    # the samples are those of `translate`, phrasing after phrasing from one generator per temperature: the first
    # two phrasings' numbers recomputed that way, and a temperature evaluated alone gives what it gave beside another
    classifier = load_classifier("pretrained:fashion_mnist_classifier")
    g = torch.Generator().manual_seed(0)
    for row in out["per_prompt"][:2]:
        images = model.translate([row["prompt"]], n=4, generator=g)[0]
        label = next(k for k, p in FASHION_MNIST_CAPTIONS.items() if row["prompt"] in p["held_out"])
        assert row["accuracy"] == round(float((classifier(images).argmax(1) == label).float().mean()), 4)
        assert row["diversity"] == round(float(mean_pairwise_distance(images[None])[0]), 4)
    alone = evaluate_text2image(model, classifier, samples_per_caption=4, temperatures=(0.7,))
    assert out["by_temperature"]["0.7"]["diversity_mean"] == alone["diversity_mean"]
    assert out["by_temperature"]["0.7"]["held_out_accuracy"] == alone["held_out_accuracy"]
    img = _labelled_grid(torch.zeros(3, 4, 1, 28, 28), ["a", "b", "c"], scale=2, label_width=100)
    assert img.size == (100 + 4 * 56 + 5 * 2, 3 * (56 + 4))


def test_atomic_safetensors_have_usual_permissions(tmp_path: Path) -> None:
    import os

    from net2net.io import atomic_save_safetensors

    umask = os.umask(0)
    os.umask(umask)
    path = atomic_save_safetensors({"x": torch.zeros(2)}, tmp_path / "x.safetensors")
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_main_job_rerun_reuses_the_evaluation_of_the_same_weights(tmp_path: Path) -> None:
    """The held-out evaluation is kept beside the run, keyed by the settings and the weights' digest."""
    from net2net.apps.main_job import cached_evaluation

    run = tmp_path / "run"
    run.mkdir()
    (run / "cinn.safetensors").write_bytes(b"weights 1")
    calls: list[int] = []

    def evaluate() -> dict:
        calls.append(1)
        return {"held_out_accuracy": 0.5 + len(calls) / 100}

    first = cached_evaluation(run, "samples100-seed2", evaluate)
    assert cached_evaluation(run, "samples100-seed2", evaluate) == first and len(calls) == 1  # reused
    assert cached_evaluation(run, "samples10-seed2", evaluate) != first and len(calls) == 2  # other settings
    (run / "cinn.safetensors").write_bytes(b"weights 2")  # retrained in place
    assert cached_evaluation(run, "samples100-seed2", evaluate)["held_out_accuracy"] == 0.53 and len(calls) == 3
    (run / "evaluation-samples100-seed2.json").write_text("{broken")  # a damaged file is evaluated again
    cached_evaluation(run, "samples100-seed2", evaluate)
    assert len(calls) == 4
