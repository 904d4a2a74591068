"""Training the cINN: known-answer density test, the optimiser recipe, the Lightning module."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset

from net2net.flows import ConditionalINN, load_cinn, nll, save_cinn
from net2net.io import read_safetensors_metadata
from net2net.synthetic import LinearGaussian
from net2net.training.optim import FlowOptimConfig, clip_gradients, learning_rate, make_optimizer
from net2net.training.translator import CINNModule


def test_linear_gaussian_density_is_learned() -> None:
    """z_tgt = A z_src + b + L eps: held-out NLL within 0.05 nats/dim of the true conditional entropy,
    residuals standard normal and uncorrelated with the condition."""
    torch.manual_seed(0)
    dim, cond_dim, steps = 5, 3, 800
    problem = LinearGaussian(dim, cond_dim, seed=0)
    tau = ConditionalINN(
        dim, cond_dim, n_blocks=4, hidden_dim=64, hidden_depth=1, embedding_dim=8,
        embedder_hidden_dim=32, embedder_depth=1,
    )
    opt = torch.optim.Adam(tau.parameters(), lr=2.5e-3, betas=(0.5, 0.9), amsgrad=True)
    # warm-up, then one step down for the last quarter
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * (0.1 if s >= 0.75 * steps else 1.0))
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        z, c = problem.sample(256, g)
        loss = nll(*tau(z, c)).per_sample.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()

    tau.eval()
    z, c = problem.sample(20000, torch.Generator().manual_seed(99))
    with torch.no_grad():
        v, logdet = tau(z, c)
    model_nats = nll(v, logdet).nats_per_dim.mean().item()
    true_nats = problem.conditional_entropy() / dim
    assert abs(model_nats - true_nats) < 0.05, (model_nats, true_nats)
    # the exact NLL of the true model on the same samples agrees with the entropy (sanity of the oracle)
    assert problem.conditional_nll(z, c).mean().item() / dim == pytest.approx(true_nats, abs=0.02)
    assert v.mean(0).abs().max() < 0.1
    assert (torch.cov(v.T) - torch.eye(dim)).abs().max() < 0.1
    cross = torch.corrcoef(torch.cat([v, c], 1).T)[:dim, dim:]  # (dim, cond_dim)
    assert cross.abs().max() < 0.05
    # z_src matters: the same z under shuffled conditions is much less likely
    with torch.no_grad():
        shuffled = nll(*tau(z, c[torch.randperm(len(c))])).nats_per_dim.mean().item()
    assert shuffled > model_nats + 0.2


def test_paper_configuration_inverts_in_float32_after_training() -> None:
    """dim 128, 20 blocks, hidden 1024: a few optimiser steps, then relative inversion error < 1e-4."""
    torch.manual_seed(0)
    tau = ConditionalINN(128, 128, n_blocks=20, hidden_dim=1024, hidden_depth=2, embedding_dim=128)
    problem = LinearGaussian(128, 128, seed=0)
    cfg = FlowOptimConfig(warmup_steps=1)
    opt, sched = make_optimizer(tau.parameters(), cfg, 16)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(4):
        z, c = problem.sample(16, g)
        loss = nll(*tau(z, c)).per_sample.mean()
        opt.zero_grad()
        loss.backward()
        clip_gradients(tau.parameters(), cfg)
        opt.step()
        sched.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    tau.eval()
    z, c = problem.sample(32, g)
    with torch.no_grad():
        v, logdet = tau(z, c)
        z_back, logdet_inv = tau.inverse(v, c)
    rel = ((z_back - z).norm(dim=1) / z.norm(dim=1)).max().item()
    assert rel < 1e-4, rel
    assert torch.allclose(logdet_inv, -logdet, rtol=1e-4, atol=1e-3)


def test_learning_rate_recipe() -> None:
    cfg = FlowOptimConfig()
    assert learning_rate(cfg, 25) == pytest.approx(4.5e-6 * 25)  # the original rule at small batches
    assert learning_rate(cfg, 256) == cfg.max_lr  # capped at large batches
    with pytest.raises(ValueError, match="effective_batch_size"):
        learning_rate(cfg, 0)
    p = torch.nn.Parameter(torch.zeros(3))
    opt, sched = make_optimizer([p], FlowOptimConfig(warmup_steps=4), 256)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([cfg.max_lr * k / 4 for k in (1, 2, 3, 4)] + [cfg.max_lr] * 2)
    assert opt.defaults["betas"] == (0.5, 0.9) and opt.defaults["amsgrad"]
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer([], cfg, 1)


def test_cosine_decay_schedule() -> None:
    p = torch.nn.Parameter(torch.zeros(3))
    cfg = FlowOptimConfig(max_lr=1e-3, base_lr=1.0, warmup_steps=2, decay_steps=6, final_lr_fraction=0.1)
    opt, sched = make_optimizer([p], cfg, 8)
    lrs = []
    for _ in range(9):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    # warm-up 0.5, 1; cosine from the peak at step 2 to 0.1 of it at step 6; constant after
    cos = [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(5)]
    assert lrs == pytest.approx([1e-3 * f for f in [0.5, 1.0, *cos, 0.1, 0.1]])
    for bad in ({"decay_steps": 2, "warmup_steps": 2}, {"decay_steps": 10, "final_lr_fraction": 1.5},
                {"warmup_steps": -1}):  # fmt: skip
        with pytest.raises(ValueError, match="decay_steps|final_lr_fraction|warmup_steps"):
            FlowOptimConfig(**bad)


def test_gradient_clipping() -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 10.0)
    norm = clip_gradients([p], FlowOptimConfig(grad_clip=1.0))
    assert norm == pytest.approx(20.0)
    assert p.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


class _Pairs(Dataset):
    def __init__(self, n: int = 256) -> None:
        self.z_tgt, self.z_src = LinearGaussian(4, 3, seed=0).sample(n, torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.z_src)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"z_src": self.z_src[i], "z_tgt": self.z_tgt[i]}


def _module(**optim) -> CINNModule:
    flow = {"target": "net2net.flows.ConditionalINN", "params": {"dim": 4, "cond_dim": 3, "n_blocks": 2, "hidden_dim": 32, "embedding_dim": 8}}
    return CINNModule(flow, optim={"base_lr": 1e-4, "max_lr": 3e-3, "warmup_steps": 5, **optim}, batch_size=32)


def test_lightning_module_trains_and_logs(tmp_path) -> None:
    L.seed_everything(0, verbose=False)
    module = _module()
    loader = DataLoader(_Pairs(), batch_size=32, shuffle=True)
    trainer = L.Trainer(
        max_steps=120, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        limit_val_batches=2,
    )
    with torch.no_grad():
        before = nll(*module.tau(_Pairs().z_tgt, _Pairs().z_src)).nats_per_dim.mean().item()
    trainer.fit(module, loader, DataLoader(_Pairs(64), batch_size=32))
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/nats_per_dim", "train/bits_per_dim", "train/ref_nats_per_dim", "val/nats_per_dim"):
        assert key in metrics, key
    module.tau.train()
    with torch.no_grad():
        after = nll(*module.tau(_Pairs().z_tgt, _Pairs().z_src)).nats_per_dim.mean().item()
    assert after < before - 0.1
    assert isinstance(trainer.optimizers[0], torch.optim.Adam)
    assert trainer.optimizers[0].defaults["fused"]


def test_lightning_module_rejects_unknown_optim_keys() -> None:
    with pytest.raises(ValueError, match=r"optim: unknown keys \['lr'\]"):
        _module(lr=1.0)


def test_load_cinn_rejects_weights_of_another_size(tmp_path: Path) -> None:
    params = {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "embedding_dim": 4}
    good = save_cinn(ConditionalINN(**params), tmp_path / "good.safetensors")
    meta = read_safetensors_metadata(good)
    assert json.loads(meta["config"]) == {**params, "hidden_depth": 2, "alpha": 1.0, "embedder_hidden_dim": None,
                                          "embedder_depth": 2, "seed": 0}  # fmt: skip
    assert load_cinn(good).config == ConditionalINN(**params).config
    bad = {**meta, "config": json.dumps({**params, "hidden_dim": 16})}  # config and weights disagree
    save_file(load_file(str(good)), str(tmp_path / "cinn.safetensors"), metadata=bad)
    with pytest.raises(ValueError, match="do not fit"):
        load_cinn(tmp_path / "cinn.safetensors")
    with pytest.raises(TypeError, match="no longer passed"):
        save_cinn(ConditionalINN(**params), {"target": "net2net.flows.ConditionalINN"}, good)  # type: ignore[arg-type]
