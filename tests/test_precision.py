"""Mixed precision: the float32 path stays exact (also inside an outer bf16 autocast), the bf16 path stays close to it
on the same weights and batch, and ``precision: auto`` follows the measured speed."""

from __future__ import annotations

import functools

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import net2net.flows.precision as precision_mod
from net2net.flows import ConditionalINN, nll, precision_context, resolve_precision
from net2net.flows.layers import actnorm_ready
from net2net.flows.precision import cpu_bf16_features
from net2net.training.precision import trainer_precision
from net2net.training.run import _trainer_kwargs
from net2net.training.translator import CINNModule


def _trained_like_cinn(dtype: torch.dtype = torch.float32) -> tuple[ConditionalINN, torch.Tensor, torch.Tensor]:
    """A small cINN with ActNorm initialised and weights moved away from their initialisation, and a batch."""
    torch.manual_seed(0)
    tau = ConditionalINN(8, 5, n_blocks=4, hidden_dim=64, hidden_depth=2, embedding_dim=6).to(dtype)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(256, 8, generator=g, dtype=dtype) * 1.5 + 0.5
    c = torch.randn(256, 5, generator=g, dtype=dtype)
    tau(z, c)  # ActNorm initialisation
    with torch.no_grad():
        for p in tau.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g, dtype=dtype))
    return tau.eval(), z, c


def test_float32_path_is_exact_inside_an_outer_bf16_autocast() -> None:
    """precision_context("32") switches autocast off: inverse(forward(x)) = x and the log-det equals the float64
    computation with the same weights, to float32 accuracy; without it the same calls run in bf16 and are not."""
    tau, z, c = _trained_like_cinn()
    ref = _trained_like_cinn(torch.float64)[0]
    ref.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in tau.state_dict().items()})
    with torch.no_grad():
        v64, logdet64 = ref(z.double(), c.double())
        with torch.autocast("cpu", dtype=torch.bfloat16):
            with precision_context("32") as resolved:
                v, logdet = tau(z, c)
                z_back, logdet_inv = tau.inverse(v, c)
            v_bf16, _ = tau(z, c)  # the outer autocast: bf16 products
    assert resolved == "32"
    assert v.dtype == logdet.dtype == torch.float32
    assert torch.allclose(z_back, z, atol=1e-5, rtol=1e-5)
    assert torch.allclose(logdet_inv, -logdet, atol=1e-5, rtol=0)
    assert torch.allclose(v.double(), v64, atol=1e-4, rtol=1e-5)
    assert torch.allclose(logdet.double(), logdet64, atol=1e-4, rtol=1e-5)
    assert (v_bf16 - v).abs().max() > 1e-3  # the outer autocast was active: the check above is not vacuous


def test_bf16_nll_stays_close_to_float32_on_the_same_weights_and_batch() -> None:
    """bf16 products, float32 affine maps, log-det and loss: the NLL moves by less than 0.01 nats/dim on average
    (here about 1e-3), and the flow's outputs stay float32."""
    tau, z, c = _trained_like_cinn()
    with torch.no_grad():
        f32 = nll(*tau(z, c)).nats_per_dim
        with precision_context("bf16") as resolved:
            v, logdet = tau(z, c)
        bf16 = nll(v, logdet).nats_per_dim
    assert resolved == "bf16"
    assert v.dtype == logdet.dtype == torch.float32
    assert (bf16.mean() - f32.mean()).abs() < 0.01, (bf16.mean(), f32.mean())
    assert (bf16 - f32).abs().max() < 0.05
    assert (bf16 - f32).abs().max() > 0  # bf16 products did run


def test_bf16_training_step_keeps_float32_weights_and_gives_every_parameter_a_gradient() -> None:
    tau, z, c = _trained_like_cinn()
    tau.train()
    with precision_context("bf16"):
        loss = nll(*tau(z, c)).per_sample.mean()
    assert loss.dtype == torch.float32
    loss.backward()
    for name, p in tau.named_parameters():
        assert p.dtype == torch.float32, name
        assert p.grad is not None and p.grad.dtype == torch.float32, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bf16_sampling_and_exact_float32_residual() -> None:
    """Samples drawn with bf16 products are float32 codes; their residual in float32 maps back to them exactly."""
    tau, _, c = _trained_like_cinn()
    with torch.no_grad(), precision_context("bf16"):
        z = tau.sample(c[:4], n_samples=8, generator=torch.Generator().manual_seed(0))  # (4, 8, 8)
    assert z.dtype == torch.float32 and z.shape == (4, 8, 8)
    flat, cond = z.flatten(0, 1), c[:4].repeat_interleave(8, 0)  # (32, 8), (32, 5)
    with torch.no_grad():
        back, _ = tau.inverse(tau.residual(flat, cond), cond)
    assert torch.allclose(back, flat, atol=1e-5, rtol=1e-5)


def test_resolve_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"precision: expected one of \('32', 'bf16', 'auto'\), got 'fp8'"):
        resolve_precision("fp8")
    assert resolve_precision("32") == "32" and resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 2.8)
    assert resolve_precision("auto") == "bf16"
    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 0.35)
    assert resolve_precision("auto") == "32"


def test_bf16_speedup_is_measured_once_per_process() -> None:
    first = precision_mod.bf16_speedup("cpu")
    assert first > 0
    assert precision_mod.bf16_speedup("cpu") == first  # cached: the same measurement
    assert set(cpu_bf16_features()) <= {"avx512_bf16", "amx_bf16", "amx_tile", "avx512_fp16"}


def test_choose_precision_from_injected_step_times() -> None:
    """The decision of ``precision: auto`` from a probe: bf16 only where the model's step is measured faster."""
    assert precision_mod.choose_precision([0.20, 0.21, 0.19, 0.20], [0.20, 0.20, 0.22, 0.19]) == "32"  # equal
    assert precision_mod.choose_precision([0.20] * 4, [0.25] * 4) == "32"  # bf16 slower (emulated)
    assert precision_mod.choose_precision([0.20] * 4, [0.19] * 4) == "32"  # 1.05x: inside the probe's noise margin
    assert precision_mod.choose_precision([0.20] * 4, [0.16] * 4) == "bf16"  # 1.25x
    assert precision_mod.choose_precision([0.2, 9.0, 0.2], [0.1, 0.1, 5.0]) == "bf16"  # medians, not means
    assert precision_mod.choose_precision([0.20] * 4, [0.16] * 4, min_speedup=1.5) == "32"
    with pytest.raises(ValueError, match=r"seconds_bf16 must be a non-empty sequence of positive seconds, got \[\]"):
        precision_mod.choose_precision([0.2], [])
    with pytest.raises(ValueError, match="seconds_32 must be"):
        precision_mod.choose_precision([0.2, -1.0], [0.2])


def test_probe_times_the_flows_own_step_and_leaves_it_unchanged() -> None:
    torch.manual_seed(0)
    tau = ConditionalINN(8, 5, n_blocks=2, hidden_dim=32, embedding_dim=6)
    before = {k: v.clone() for k, v in tau.state_dict().items()}
    t32, t16 = precision_mod.probe_step_seconds(tau, batch_size=16, repeats=3)
    assert len(t32) == len(t16) == 3 and all(t > 0 for t in t32 + t16)
    assert all(torch.equal(before[k], v) for k, v in tau.state_dict().items())  # a copy was trained
    assert not actnorm_ready(tau)  # not even ActNorm's data-dependent initialisation happened on the original
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        precision_mod.probe_step_seconds(tau, batch_size=0)
    with pytest.raises(TypeError, match="expected a conditional flow with dim and cond_shape, got Linear"):
        precision_mod.probe_step_seconds(torch.nn.Linear(2, 2), batch_size=4)


def test_trainer_precision_auto_probes_the_cinn_at_its_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a cINN module, ``auto`` follows the probe of its own flow at its batch size, not the matmul rate."""
    import net2net.training.precision as trainer_precision_mod

    flow = {"target": "net2net.flows.ConditionalINN",
            "params": {"dim": 4, "cond_dim": 3, "n_blocks": 2, "hidden_dim": 32, "embedding_dim": 8}}  # fmt: skip
    module = CINNModule(flow, batch_size=96)
    seen = []

    def probe(times):
        def fake(tau, batch_size, device="cpu", repeats=4):
            seen.append((tau, batch_size, device))
            return times
        return fake

    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 2.8)  # products: bf16 much faster
    monkeypatch.setattr(trainer_precision_mod, "probe_step_seconds", probe(([0.1] * 4, [0.1] * 4)))
    assert trainer_precision("auto", "cpu", module) == "32-true"  # the step is not faster: float32
    assert seen == [(module.tau, 96, "cpu")]
    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 0.35)
    monkeypatch.setattr(trainer_precision_mod, "probe_step_seconds", probe(([0.3] * 4, [0.2] * 4)))
    assert trainer_precision("auto", "cpu", module) == "bf16-mixed"  # the step is 1.5x faster: bf16
    assert trainer_precision("32-true", "cpu", module) == "32-true"  # explicit values: no probe
    assert len(seen) == 2


def test_trainer_precision_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 2.8)
    assert trainer_precision("auto", "cpu") == "bf16-mixed"  # no model with a flow: the matmul rate decides
    # the config's "auto" stays until the model is built (train_from_config resolves it with the model's probe)
    kwargs = _trainer_kwargs(OmegaConf.create({"lightning": {"trainer": {"precision": "auto", "accelerator": "cpu"}}}))
    assert kwargs["precision"] == "auto"
    assert trainer_precision(kwargs["precision"], kwargs["accelerator"]) == "bf16-mixed"
    monkeypatch.setattr(precision_mod, "bf16_speedup", lambda device="cpu": 0.35)
    assert trainer_precision("auto", "cpu") == "32-true"
    assert trainer_precision("auto", "mps") == "32-true"  # neither CPU nor CUDA: float32
    assert trainer_precision("bf16-mixed", "cpu") == "bf16-mixed"  # explicit values pass through
    assert trainer_precision(None) is None


def test_lightning_bf16_mixed_trains_the_cinn_in_float32_weights(tmp_path) -> None:
    """Lightning's bf16-mixed on CPU: the NLL falls, weights stay float32, the result inverts in float32."""
    L.seed_everything(0, verbose=False)
    flow = {"target": "net2net.flows.ConditionalINN",
            "params": {"dim": 4, "cond_dim": 3, "n_blocks": 2, "hidden_dim": 32, "embedding_dim": 8}}  # fmt: skip
    module = CINNModule(flow, optim={"base_lr": 1e-4, "max_lr": 3e-3, "warmup_steps": 5}, batch_size=32)
    g = torch.Generator().manual_seed(0)
    z_src = torch.randn(256, 3, generator=g)
    z_tgt = torch.cat([z_src, z_src[:, :1]], 1) + 0.3 * torch.randn(256, 4, generator=g)
    data = [{"z_src": a, "z_tgt": b} for a, b in zip(z_src, z_tgt, strict=True)]
    trainer = L.Trainer(max_steps=80, accelerator="cpu", precision="bf16-mixed", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=tmp_path)  # fmt: skip
    module.tau.train()
    with torch.no_grad():
        module.tau(z_tgt, z_src)  # ActNorm initialisation, so that "before" is the NLL of the initial flow
        before = nll(*module.tau(z_tgt, z_src)).nats_per_dim.mean().item()
    trainer.fit(module, DataLoader(data, batch_size=32, shuffle=True))
    tau = module.tau.eval()
    assert actnorm_ready(tau) and all(p.dtype == torch.float32 for p in tau.parameters())
    with torch.no_grad():
        v, logdet = tau(z_tgt, z_src)
        back, logdet_inv = tau.inverse(v, z_src)
    assert nll(v, logdet).nats_per_dim.mean().item() < before - 0.2
    assert torch.allclose(back, z_tgt, atol=1e-5, rtol=1e-5)
    assert torch.allclose(logdet_inv, -logdet, atol=1e-5)


def test_demo_config_precision() -> None:
    from net2net.apps.main_job import text2image_config

    assert text2image_config()["lightning"]["trainer"]["precision"] == "auto"  # bf16 where the probe says faster
    assert text2image_config(precision="32")["lightning"]["trainer"]["precision"] == "32-true"
    assert text2image_config(precision="bf16")["lightning"]["trainer"]["precision"] == "bf16-mixed"
    assert text2image_config(precision="auto")["lightning"]["trainer"]["precision"] == "auto"
    with pytest.raises(ValueError, match=r"precision: expected one of \['auto', '32', 'bf16'\], got 'fp16'"):
        text2image_config(precision="fp16")


def test_train_from_config_resolves_auto_with_the_models_probe(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """``lightning.trainer.precision: auto`` reaches the Trainer as the probe of the built model decided."""
    import net2net.training.precision as trainer_precision_mod
    import net2net.training.run as run_mod

    flow = {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "hidden_depth": 1, "embedding_dim": 4}
    pairs = {"target": "ddp_helpers.LinearGaussianPairs", "params": {"n": 32, "dim": 4, "cond_dim": 3}}
    cfg = {
        "model": {"target": "net2net.training.translator.CINNModule",
                  "params": {"flow_config": {"target": "net2net.flows.ConditionalINN", "params": flow},
                             "optim": {"warmup_steps": 1}, "batch_size": 8}},
        "data": {"target": "net2net.training.datamodule.DataModule", "params": {"batch_size": 8, "train": pairs}},
        "lightning": {"trainer": {"max_steps": 1, "accelerator": "cpu", "precision": "auto", "enable_progress_bar": False,
                                  "enable_model_summary": False, "num_sanity_val_steps": 0},
                      "callbacks": {"image_logger": None}},
    }  # fmt: skip
    probed, built = [], []
    real_trainer = run_mod.L.Trainer

    class Trainer(real_trainer):  # records the precision it is built with
        @functools.wraps(real_trainer.__init__)  # the same signature: train_from_config checks keys against it
        def __init__(self, *args, **kwargs):
            built.append(kwargs["precision"])
            super().__init__(*args, **kwargs)

    def probe(tau, batch_size, device="cpu", repeats=4):
        probed.append(batch_size)
        return [0.3] * 4, [0.2] * 4  # bf16 1.5x faster

    monkeypatch.setattr(trainer_precision_mod, "probe_step_seconds", probe)
    monkeypatch.setattr(run_mod.L, "Trainer", Trainer)
    run_mod.train_from_config([cfg], log_dir=tmp_path / "run")
    assert probed == [8] and built == ["bf16-mixed"]
