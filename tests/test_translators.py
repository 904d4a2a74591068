"""The five translators behind one interface: float64 inverse and log-density against autograd references,
gradients, fitting, capability errors, files, and training through Lightning."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader

from net2net.synthetic import LinearGaussian
from net2net.training.datamodule import TensorDataModule
from net2net.training.translator import TrainingBudget, TranslatorModule
from net2net.translators import (
    TRANSLATORS,
    MissingCapability,
    build_translator,
    gaussian_log_prob,
    load_translator,
    save_translator,
)

DIM, COND = 4, 3
SMALL = {  # tiny versions of each translator
    "cinn": {"n_blocks": 2, "hidden_dim": 16, "embedding_dim": 4, "embedder_hidden_dim": 16},
    "mlp": {"hidden_dim": 16, "embedding_dim": 4},
    "spline": {"transforms": 2, "hidden_dim": 16, "embedding_dim": 4, "bins": 4},
    "flow_matching": {"hidden_dim": 16, "depth": 2, "embedding_dim": 4, "ode_steps": 16},
    "linear": {},
}
FLOWS = ["cinn", "spline", "flow_matching", "linear"]  # the translators with a residual and a likelihood


def make(kind: str, dtype: torch.dtype = torch.float64, seed: int = 0) -> torch.nn.Module:
    """A small translator of ``kind`` with perturbed parameters (so no layer is the identity) and initialised
    ActNorm, in eval mode."""
    torch.manual_seed(seed)
    t = build_translator(kind, dim=DIM, cond_dim=COND, **SMALL[kind]).to(dtype)
    z, c = torch.randn(64, DIM, dtype=dtype) * 2 + 1, torch.randn(64, COND, dtype=dtype)
    t.train()
    t.loss(z, c)  # initialises ActNorm where there is one
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=dtype))
    return t.eval()


def data(n: int = 8, dtype: torch.dtype = torch.float64, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, DIM, generator=g, dtype=dtype) * 1.5 + 0.5, torch.randn(n, COND, generator=g, dtype=dtype)


def test_registry_has_the_five_translators():
    assert set(TRANSLATORS) == {"cinn", "mlp", "spline", "flow_matching", "linear"}


@pytest.mark.parametrize("kind", FLOWS)
def test_inverse_float64(kind):
    t = make(kind)
    z, c = data()
    with torch.no_grad():
        back = t.from_residual(t.residual(z, c), c)
    # flow matching inverts by solving the ODE backwards: exact up to the RK4 error
    tol = 1e-6 if kind == "flow_matching" else 1e-10
    assert torch.allclose(back, z, atol=tol, rtol=0), (back - z).abs().max()
    assert not torch.allclose(t.residual(z, c), z, atol=1e-3)  # not trivially the identity


@pytest.mark.parametrize("kind", FLOWS)
def test_log_prob_matches_change_of_variables_with_autograd_jacobian(kind):
    """log p(z | c) = log N(v(z)) + log |det dv/dz|, the determinant from the autograd Jacobian of the residual."""
    t = make(kind)
    z, c = data(n=5)
    logp = t.log_prob(z, c).detach()
    for i in range(len(z)):
        ci = c[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda x, ci=ci: t.residual(x[None], ci)[0], z[i])  # (D, D)
        ref = gaussian_log_prob(t.residual(z[i : i + 1], ci)).item() + torch.linalg.slogdet(jac)[1].item()
        # flow matching integrates the trace along the exact ODE; the residual is its RK4 discretisation
        tol = 1e-5 if kind == "flow_matching" else 1e-9
        assert logp[i].item() == pytest.approx(ref, abs=tol), kind


def test_linear_log_prob_is_the_analytic_gaussian():
    t = make("linear")
    z, c = data(n=16)
    L_ = t.cholesky().detach()
    ref = torch.distributions.MultivariateNormal(t.mean(c).detach(), scale_tril=L_).log_prob(z)
    assert torch.allclose(t.log_prob(z, c).detach(), ref, atol=1e-10)


@pytest.mark.parametrize("kind", list(SMALL))
def test_every_parameter_gets_a_gradient(kind):
    t = make(kind, dtype=torch.float32).train()
    z, c = data(n=32, dtype=torch.float32)
    t.loss(z, c).mean().backward()
    trainable = [(n, p) for n, p in t.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in trainable:
        assert p.grad is not None, f"{kind}: {name} got no gradient"
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, f"{kind}: {name} has a zero gradient"


@pytest.mark.parametrize("kind", FLOWS)
def test_forward_and_inverse_log_det_have_opposite_signs(kind):
    """log |det dz/dv| of from_residual (autograd) = -log |det dv/dz| of residual at the matching point."""
    t = make(kind)
    z, c = data(n=1)
    v = t.residual(z, c).detach()
    jac_fwd = torch.autograd.functional.jacobian(lambda x: t.residual(x[None], c)[0], z[0])
    jac_inv = torch.autograd.functional.jacobian(lambda x: t.from_residual(x[None], c)[0], v[0])
    tol = 1e-5 if kind == "flow_matching" else 1e-9
    assert torch.linalg.slogdet(jac_inv)[1].item() == pytest.approx(-torch.linalg.slogdet(jac_fwd)[1].item(), abs=tol)


@pytest.mark.parametrize("kind", list(SMALL))
def test_sample_shapes_and_temperature(kind):
    t = make(kind, dtype=torch.float32)
    _, c = data(n=3, dtype=torch.float32)
    s = t.sample(c, n_samples=5, generator=torch.Generator().manual_seed(0))
    assert s.shape == (3, 5, DIM)
    if kind == "mlp":
        assert torch.equal(s[:, 0], s[:, 1])  # deterministic
        return
    assert not torch.allclose(s[:, 0], s[:, 1])
    cold = t.sample(c, n_samples=2, temperature=0.0)
    assert torch.allclose(cold[:, 0], t.from_residual(torch.zeros(3, DIM), c), atol=1e-5)


@pytest.mark.parametrize("kind", list(SMALL))
def test_nll_better_than_standard_normal_on_fitted_data(kind):
    """After a short fit on a conditional Gaussian, the NLL (or for the MLP the MSE) beats the trivial model."""
    problem = LinearGaussian(dim=DIM, cond_dim=COND, seed=3)
    z, c = problem.sample(2048, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    t = build_translator(kind, dim=DIM, cond_dim=COND, **SMALL[kind])
    if t.closed_form:
        t.fit_closed_form(z, c)
    else:
        opt = torch.optim.Adam(t.parameters(), lr=5e-3)
        g = torch.Generator().manual_seed(1)
        for _ in range(150):
            idx = torch.randint(0, len(z), (128,), generator=g)
            loss = t.loss(z[idx], c[idx]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    t.eval()
    with torch.no_grad():
        if kind == "mlp":
            mse = t.loss(z, c).mean().item()
            assert mse < 0.5 * (z - z.mean(0)).square().mean().item()  # beats the mean prediction
            return
        nll = -t.log_prob(z, c).mean().item()
    baseline = -gaussian_log_prob(z).mean().item()
    assert nll < baseline - 1.0, (kind, nll, baseline)
    if kind == "linear":  # the closed form is the maximum-likelihood fit: the true NLL up to sampling noise
        true = problem.conditional_nll(z, c).mean().item()
        assert abs(nll - true) < 0.05 * DIM


def test_missing_capabilities_raise_a_dedicated_error():
    t = make("mlp", dtype=torch.float32)
    z, c = data(dtype=torch.float32)
    for call in (lambda: t.log_prob(z, c), lambda: t.residual(z, c), lambda: t.from_residual(z, c)):
        with pytest.raises(MissingCapability, match="'mlp' translator has no"):
            call()
    with pytest.raises(MissingCapability, match="closed-form"):
        make("cinn", dtype=torch.float32).fit_closed_form(z, c)


@pytest.mark.parametrize("kind", list(SMALL))
def test_bad_input_is_a_clear_error(kind):
    t = make(kind, dtype=torch.float32)
    z, c = data(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"z_src: expected shape \(B, 3\)"):
        t.sample(torch.randn(2, COND + 1))
    with pytest.raises(TypeError, match="dtype"):
        t.sample(c.double())
    with pytest.raises(ValueError, match="batch sizes differ|expected shape"):
        t.loss(z[:3], c)


def test_build_rejects_unknown_kind_and_parameters():
    with pytest.raises(ValueError, match="unknown translator 'gan'"):
        build_translator("gan", dim=4, cond_dim=3)
    with pytest.raises(TypeError, match=r"unknown parameters \['widht'\]"):
        build_translator("flow_matching", dim=4, cond_dim=3, widht=3)


@pytest.mark.parametrize("kind", list(SMALL))
def test_save_load_round_trip(kind, tmp_path):
    t = make(kind, dtype=torch.float32)
    _, c = data(dtype=torch.float32)
    path = save_translator(t, tmp_path / "t.safetensors")
    back = load_translator(path)
    assert type(back) is type(t) and back.config == t.config and not back.training
    v = torch.randn(len(c), DIM, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        if kind == "mlp":
            assert torch.equal(back(c), t(c))
        else:
            assert torch.allclose(back.from_residual(v, c), t.from_residual(v, c), atol=1e-6)
    json.dumps(t.config)  # JSON-able


def test_load_rejects_files_naming_other_kinds_or_fields(tmp_path):
    t = make("linear", dtype=torch.float32)
    path = save_translator(t, tmp_path / "t.safetensors")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118  (safe_open is not iterable)
    for key, value, message in [
        ("kind", "os.system", "not one of"),
        ("params", json.dumps({"dim": DIM, "cond_dim": COND, "target": "os.system"}), "unknown parameters"),
        ("format", "pickle", "expected 'net2net.Translator/1'"),
    ]:
        bad = tmp_path / f"bad-{key}.safetensors"
        save_file(tensors, str(bad), metadata={**meta, key: value})
        with pytest.raises(ValueError, match=message):
            load_translator(bad)
    wrong = tmp_path / "wrong-size.safetensors"
    save_file(tensors, str(wrong), metadata={**meta, "params": json.dumps({"dim": DIM + 1, "cond_dim": COND})})
    with pytest.raises(ValueError, match="do not fit"):
        load_translator(wrong)


def _loader(n: int = 512) -> DataLoader:
    z, c = LinearGaussian(dim=DIM, cond_dim=COND, seed=0).sample(n, generator=torch.Generator().manual_seed(0))
    pairs = [{"z_tgt": z[i], "z_src": c[i]} for i in range(n)]
    return DataLoader(pairs, batch_size=64, shuffle=True, drop_last=True)


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    return L.Trainer(default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)  # fmt: skip


def test_training_budget_writes_both_snapshots_and_stops(tmp_path):
    module = TranslatorModule("spline", {"dim": DIM, "cond_dim": COND, **SMALL["spline"]}, optim={"warmup_steps": 2})
    budget = TrainingBudget(steps=3, seconds=1e-3)
    trainer = _trainer(tmp_path, max_steps=1000, callbacks=[budget])
    trainer.fit(module, train_dataloaders=_loader())
    assert trainer.global_step == 3  # the time budget was spent after the first step; the step budget ends the run
    assert budget.written["time"]["step"] == 1 and budget.written["steps"]["step"] == 3
    steps = load_translator(tmp_path / "translator-steps.safetensors")
    assert steps.kind == "spline"
    final = module.translator.state_dict()  # the run stopped at the step snapshot
    assert all(torch.equal(v, final[k]) for k, v in steps.state_dict().items())


def test_shuffled_passes_on_the_entry_point_train_what_a_plain_loop_trains(tmp_path):
    """TensorDataModule(replacement=False) through train_from_config gives, bit for bit, the weights of a Trainer
    of its own on DataLoader(shuffle=True, drop_last=True) with the same seed: the known-answer problem of
    ``net2net reproduce translators`` moved onto the entry point without changing its numbers."""
    from net2net.io import atomic_save_safetensors
    from net2net.training.run import train_from_config

    params, steps = {"dim": DIM, "cond_dim": COND, **SMALL["cinn"]}, 20  # 8 batches an epoch: 2.5 epochs
    torch.manual_seed(0)
    module = TranslatorModule("cinn", params, batch_size=64)
    with torch.enable_grad():
        _trainer(tmp_path / "loop", max_steps=steps).fit(module, train_dataloaders=_loader())
    z, c = LinearGaussian(dim=DIM, cond_dim=COND, seed=0).sample(512, generator=torch.Generator().manual_seed(0))
    atomic_save_safetensors({"z_tgt": z, "z_src": c}, tmp_path / "data.safetensors")
    config = {
        "model": {"target": "net2net.training.translator.TranslatorModule",
                  "params": {"translator": "cinn", "translator_params": params, "batch_size": 64}},
        "data": {"target": "net2net.training.datamodule.TensorDataModule",
                 "params": {"path": str(tmp_path / "data.safetensors"), "batch_size": 64, "replacement": False}},
        "seed": 0,
        "lightning": {"trainer": {"max_steps": steps, "enable_progress_bar": False, "enable_model_summary": False},
                      "callbacks": {"image_logger": None}},
    }  # fmt: skip
    with torch.enable_grad():
        run = train_from_config(config, log_dir=tmp_path / "entry")
    trained = load_translator(run / "translator.safetensors").state_dict()
    assert all(torch.equal(v, trained[k]) for k, v in module.translator.state_dict().items())
    atomic_save_safetensors({"z_tgt": z, "label": torch.zeros(512, dtype=torch.long)}, tmp_path / "labels.safetensors")
    with pytest.raises(ValueError, match="balance_by: draws with replacement only"):
        TensorDataModule(str(tmp_path / "labels.safetensors"), 64, balance_by="label", replacement=False)


def test_module_fits_the_linear_translator_in_closed_form(tmp_path):
    module = TranslatorModule("linear", {"dim": DIM, "cond_dim": COND})
    trainer = _trainer(tmp_path, max_steps=50)
    trainer.fit(module, train_dataloaders=_loader())
    assert trainer.global_step <= 1  # one batch, no gradient step: the fit is the training
    problem = LinearGaussian(dim=DIM, cond_dim=COND, seed=0)
    assert torch.allclose(module.translator.mean(torch.zeros(1, COND))[0].detach(), problem.b.float(), atol=0.1)


def test_module_takes_sizes_and_optim_by_keyword_and_checks_sizes():
    params = {"dim": DIM, "cond_dim": COND}
    with pytest.raises(TypeError, match="positional"):  # an optimiser block third by position was taken for sizes
        TranslatorModule("linear", params, {"warmup_steps": 2})  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"sizes has keys \['warmup_steps'\] that are not translator kinds"):
        TranslatorModule("linear", params, sizes={"warmup_steps": 2})  # type: ignore[dict-item]
    module = TranslatorModule("linear", params, sizes={"spline": {"bins": 4}}, optim={"warmup_steps": 2})
    assert module.optim_cfg.warmup_steps == 2


def test_module_rejects_unknown_translator_parameters():
    with pytest.raises(ValueError, match="translator_params: .*unknown parameters"):
        TranslatorModule("cinn", {"dim": DIM, "cond_dim": COND, "blocks": 3})


def test_config_switches_the_translator_with_one_key():
    """configs/translation/text2image_translators.yaml builds every kind by ``model.params.translator`` and holds
    the sizes of ``net2net reproduce translators``."""
    from pathlib import Path

    from net2net.config import instantiate_from_config, load_config
    from net2net.reproduce.translators import KINDS, SIZES

    path = Path(__file__).parents[1] / "configs" / "translation" / "text2image_translators.yaml"
    for kind in KINDS:
        cfg = load_config(path, [f"model.params.translator={kind}"])
        assert dict(cfg.model.params.sizes[kind]) == SIZES[kind]
        module = instantiate_from_config(cfg.model, key="model")
        assert module.translator.kind == kind and module.translator.cond_shape == (384,)


def test_net2net_apps_use_any_translator():
    """Net2Net's translate / residual / recombine (Eq. 6) work with a translator in place of the cINN."""
    from net2net.apps.translate import Net2Net
    from net2net.experts.label import LabelEncoder
    from net2net.experts.target import AutoencoderTarget, build_encoder_decoder

    torch.manual_seed(0)
    enc, dec = build_encoder_decoder(28, in_channels=1, z_dim=8)
    target = AutoencoderTarget(enc, dec, {"image_size": 28, "in_channels": 1, "z_dim": 8, "preset": "small"})
    t = build_translator("linear", dim=8, cond_dim=10)
    with torch.no_grad():
        t.weight.normal_()
    model = Net2Net(LabelEncoder(10), target, t)
    assert model.translate(torch.tensor([1, 2]), n=3).shape == (2, 3, 1, 28, 28)
    y = torch.rand(2, 1, 28, 28) * 2 - 1
    labels = torch.tensor([3, 4])
    same = model.recombine(y, labels, x_y=labels)  # the own condition back: the reconstruction of y's code
    torch.testing.assert_close(same, model.decode(model.encode_target(y)), atol=1e-4, rtol=0)
    mlp = Net2Net(LabelEncoder(10), target, build_translator("mlp", dim=8, cond_dim=10, hidden_dim=8, embedding_dim=4))
    with pytest.raises(MissingCapability):
        mlp.residual(y, labels)
