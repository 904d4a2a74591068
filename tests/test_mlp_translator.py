"""The MLP translator baseline (Sec. E / Tab. S4): shapes, learning a linear map, export, errors, Lightning.

Its files and its LightningModule are those of every translator (``save_translator``/``load_translator``,
``TranslatorModule(translator="mlp")``); the files and config blocks of the former ``net2net.training.mlp`` still load.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from net2net.config import instantiate_from_config
from net2net.flows import ConditionalINN, save_cinn
from net2net.synthetic import LinearGaussian
from net2net.training.translator import TranslatorModule
from net2net.translators import MLP_FORMAT_V1, TRANSLATOR_FORMAT, load_translator, save_translator
from net2net.translators.mlp import MLPTranslator

TINY = {"hidden_dim": 32, "embedding_dim": 8, "embedder_hidden_dim": 16, "embedder_depth": 1}


def _conv_translator() -> MLPTranslator:
    """A translator with a convolutional embedder, its ActNorm initialised by one training-mode pass."""
    torch.manual_seed(0)
    f = MLPTranslator(5, cond_shape=(2, 8, 8), hidden_dim=16, depth=1, embedding_dim=8)
    f(torch.randn(4, 2, 8, 8))
    return f.eval()


def test_shape_contract_matches_cinn_sample() -> None:
    torch.manual_seed(0)
    f = MLPTranslator(6, cond_dim=3, depth=2, **TINY).eval()
    tau = ConditionalINN(6, 3, n_blocks=1, hidden_dim=16, embedding_dim=8)
    c = torch.randn(4, 3)
    tau(torch.randn(4, 6), c)  # initialise ActNorm
    samples = f.sample(c, n_samples=5)
    assert samples.shape == tau.sample(c, n_samples=5).shape == (4, 5, 6)
    assert f(c).shape == (4, 6)
    torch.testing.assert_close(samples, f(c)[:, None].expand(4, 5, 6))  # all n samples equal, = forward
    cold = f.sample(c, 5, temperature=0.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cold, samples)  # deterministic: temperature and generator have no effect
    samples[0, 0, 0] = 1e3  # samples own their memory
    assert f.sample(c, 5)[0, 1, 0] != 1e3
    assert f.embed(c).shape == (4, 8)
    # a spatial condition goes through the convolutional embedder
    g = _conv_translator()
    assert g.sample(torch.randn(3, 2, 8, 8), n_samples=2).shape == (3, 2, 5)
    assert type(g.embedder).__name__ == "ConvEmbedder" and type(f.embedder).__name__ == "DenseEmbedder"


def test_learns_a_linear_map() -> None:
    """z_tgt = A z_src + b + small noise: held-out MSE far below the variance, near the noise floor."""
    torch.manual_seed(0)
    problem = LinearGaussian(6, 4, seed=0, noise_scale=0.1)
    z, c = problem.sample(4000, torch.Generator().manual_seed(1))
    z_test, c_test = problem.sample(2000, torch.Generator().manual_seed(2))
    f = MLPTranslator(6, cond_dim=4, hidden_dim=64, depth=1, embedding_dim=16, embedder_hidden_dim=64, embedder_depth=1)
    opt = torch.optim.Adam(f.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)
    for step in range(400):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * (0.1 if step >= 300 else 1.0)
        idx = torch.randint(len(z), (128,), generator=g)
        loss = torch.nn.functional.mse_loss(f(c[idx]), z[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = torch.nn.functional.mse_loss(f(c_test), z_test).item()
    variance = z_test.var(0).mean().item()
    noise_floor = float((problem.L @ problem.L.T).diagonal().mean())  # MSE of the true conditional mean
    assert mse < 0.05 * variance, (mse, variance)
    assert mse < 1.5 * noise_floor, (mse, noise_floor)


@pytest.mark.parametrize("spatial", [False, True])
def test_save_load_round_trip(tmp_path: Path, spatial: bool) -> None:
    torch.manual_seed(0)
    f = _conv_translator() if spatial else MLPTranslator(6, cond_dim=3, **TINY).eval()
    path = save_translator(f, tmp_path / "translator.safetensors", metadata={"global_step": "7"})
    legacy = tmp_path / "mlp.safetensors"  # a file of the former save_mlp
    legacy_config = {"target": "net2net.training.mlp.MLPTranslator", "params": f.params}
    save_file(f.state_dict(), str(legacy), metadata={"format": MLP_FORMAT_V1, "config": json.dumps(legacy_config)})
    for file in (path, legacy):
        g = load_translator(file)
        assert isinstance(g, MLPTranslator) and not g.training
        assert g.config == f.config
        for (name, a), b in zip(f.state_dict().items(), g.state_dict().values(), strict=True):
            assert torch.equal(a, b), name
        c = torch.randn(3, *f.cond_shape)
        assert torch.equal(f(c), g(c))
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    assert meta["format"] == TRANSLATOR_FORMAT and meta["kind"] == "mlp" and meta["global_step"] == "7"


def test_load_rejects_foreign_or_broken_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_translator(tmp_path / "missing.safetensors")
    tau = ConditionalINN(4, 3, n_blocks=1, hidden_dim=8, embedding_dim=4)
    cinn_file = save_cinn(tau, tmp_path / "c.safetensors")
    assert load_translator(cinn_file).kind == "cinn"  # a cINN file is a translator file of kind cinn
    f = MLPTranslator(6, cond_dim=3, **TINY)
    good = save_translator(f, tmp_path / "translator.safetensors")
    with safe_open(str(good), framework="pt") as handle:
        meta = handle.metadata()
    other = {**meta, "format": "net2net.Autoencoder/1"}
    save_file(load_file(str(good)), str(tmp_path / "other.safetensors"), metadata=other)
    with pytest.raises(ValueError, match="expected 'net2net.Translator/1'"):
        load_translator(tmp_path / "other.safetensors")
    wrong_size = {**meta, "params": meta["params"].replace('"dim": 6', '"dim": 5')}
    save_file(load_file(str(good)), str(tmp_path / "bad.safetensors"), metadata=wrong_size)
    with pytest.raises(ValueError, match="do not fit"):
        load_translator(tmp_path / "bad.safetensors")
    legacy = {"format": MLP_FORMAT_V1, "config": json.dumps({"target": "os.system", "params": f.params})}
    save_file(load_file(str(good)), str(tmp_path / "foreign.safetensors"), metadata=legacy)
    with pytest.raises(ValueError, match="config target 'os.system'"):
        load_translator(tmp_path / "foreign.safetensors")
    with pytest.raises(TypeError, match="expected a Translator"):
        save_translator(tau, tmp_path / "x.safetensors")  # type: ignore[arg-type]


def test_bad_input_errors() -> None:
    with pytest.raises(ValueError, match="exactly one of cond_dim"):
        MLPTranslator(4)
    with pytest.raises(ValueError, match="exactly one of cond_dim"):
        MLPTranslator(4, cond_dim=3, cond_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="dim must be a positive int"):
        MLPTranslator(0, cond_dim=3)
    with pytest.raises(ValueError, match="depth must be a positive int"):
        MLPTranslator(4, cond_dim=3, depth=0)
    f = MLPTranslator(4, cond_dim=3, **TINY)
    with pytest.raises(ValueError, match=r"z_src: expected shape \(B, 3\), got \(2, 5\)"):
        f(torch.randn(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        f(torch.tensor([[0.0, float("nan"), 1.0]]))
    with pytest.raises(TypeError, match="dtype"):
        f(torch.randn(2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="floating-point"):
        f(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="n_samples"):
        f.sample(torch.randn(2, 3), n_samples=0)
    with pytest.raises(ValueError, match="temperature"):
        f.sample(torch.randn(2, 3), temperature=-1.0)
    with pytest.raises(ValueError, match=r"optim: unknown keys \['lr'\]"):
        _module(lr=1.0)
    with pytest.raises(TypeError, match="expected a block building"):
        TranslatorModule.from_translator_config({"target": "torch.nn.Linear",
                                                 "params": {"in_features": 3, "out_features": 4}})  # fmt: skip
    module = _module()
    with pytest.raises(ValueError, match=r"z_tgt: expected shape \(B, 4\)"):
        module.training_step({"z_src": torch.randn(8, 3), "z_tgt": torch.randn(8, 5)}, 0)
    with pytest.raises(ValueError, match="batch sizes differ"):
        module.training_step({"z_src": torch.randn(8, 3), "z_tgt": torch.randn(7, 4)}, 0)


# -- Lightning -------------------------------------------------------------------------------------------


class _Pairs(Dataset):
    """Linear-Gaussian pairs as TranslationDataModule yields them: dict items with z_src and z_tgt."""

    def __init__(self, n: int, seed: int) -> None:
        self.z_tgt, self.z_src = LinearGaussian(4, 3, seed=0).sample(n, torch.Generator().manual_seed(seed))

    def __len__(self) -> int:
        return len(self.z_src)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"z_src": self.z_src[i], "z_tgt": self.z_tgt[i]}


class _PairsDataModule(L.LightningDataModule):
    """A tiny in-memory stand-in for TranslationDataModule, with a ``decode`` for the image logs."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_Pairs(256, seed=0), batch_size=32, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Pairs(64, seed=1), batch_size=32)

    def decode(self, z: Tensor) -> Tensor:
        return torch.tanh(z[:, :3, None, None].expand(-1, 3, 4, 4))  # (N, 4) -> (N, 3, 4, 4) "images"


def _module(**optim: float) -> TranslatorModule:
    optim_config = {"base_lr": 1e-4, "max_lr": 3e-3, "warmup_steps": 5, **optim}
    return TranslatorModule("mlp", {"dim": 4, "cond_dim": 3, **TINY}, optim=optim_config, batch_size=32)


def test_old_config_blocks_build_the_same_module() -> None:
    """A config (or run folder) of the former MLPTranslatorModule still builds: config.MOVED_TARGETS leads its
    name to TranslatorModule.from_translator_config, with the same translator and recipe."""
    old = {"target": "net2net.training.mlp.MLPTranslatorModule", "params": {
        "translator_config": {"target": "net2net.training.mlp.MLPTranslator", "params": {"dim": 4, "cond_dim": 3, **TINY}},
        "optim": {"max_lr": 3e-3}, "batch_size": 32}}  # fmt: skip
    module = instantiate_from_config(old)
    assert isinstance(module, TranslatorModule) and isinstance(module.translator, MLPTranslator)
    assert module.translator.params == _module().translator.params
    assert module.optim_cfg.max_lr == 3e-3 and module.batch_size == 32


def test_lightning_module_trains_and_logs(tmp_path: Path) -> None:
    L.seed_everything(0, verbose=False)
    module = _module()
    data = _Pairs(256, seed=0)
    with torch.no_grad():
        before = torch.nn.functional.mse_loss(module.translator(data.z_src), data.z_tgt).item()
    trainer = L.Trainer(
        max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=2,
    )  # fmt: skip
    trainer.fit(module, datamodule=_PairsDataModule())
    for key in ("train/loss", "train/mse", "train/ref_mse", "val/mse", "val/ref_mse"):
        assert key in trainer.callback_metrics, key
    with torch.no_grad():
        after = torch.nn.functional.mse_loss(module.translator(data.z_src), data.z_tgt).item()
    assert after < 0.5 * before, (before, after)
    assert isinstance(trainer.optimizers[0], torch.optim.Adam) and trainer.optimizers[0].defaults["amsgrad"]
    images = module.log_images({"z_src": data.z_src[:8], "z_tgt": data.z_tgt[:8]}, max_images=8)
    assert images["translations"].shape == (8, 3, 4, 4)  # 4 rows x (target, prediction)
    assert _module().log_images({"z_src": data.z_src, "z_tgt": data.z_tgt}) == {}  # no trainer, no decode
