"""Information per layer: known-answer mutual information on a linear-Gaussian problem, and bad inputs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from net2net.flows import ConditionalINN, UnconditionalFlow, nll
from net2net.metrics.information import heldout_nll, information_estimate
from net2net.synthetic import LinearGaussian
from net2net.training.in_memory import fit_unconditional_flow

DIM, COND_DIM, N_TRAIN, N_TEST, STEPS = 4, 3, 4000, 4000, 300
SMALL_FLOW = {"n_blocks": 2, "hidden_dim": 32}  # shared by the cINN and the unconditional flow


def _analytic_information(problem: LinearGaussian) -> float:
    """``I = 0.5 (log det Σ_tgt - log det Σ_tgt|src)`` with ``Σ_tgt = A Aᵀ + L Lᵀ`` and ``Σ_tgt|src = L Lᵀ``."""
    cov_cond = problem.L @ problem.L.T
    cov = problem.A @ problem.A.T + cov_cond
    return 0.5 * float(torch.logdet(cov) - torch.logdet(cov_cond))


def _fit_cinn(z_tgt: Tensor, z_src: Tensor, seed: int) -> ConditionalINN:
    """A small cINN by a plain loop: warm-up, then a tenfold lower rate for the last quarter."""
    torch.manual_seed(seed)
    tau = ConditionalINN(DIM, z_src.shape[1], hidden_depth=1, embedding_dim=8, embedder_hidden_dim=32,
                         embedder_depth=1, seed=seed, **SMALL_FLOW)  # fmt: skip
    opt = torch.optim.Adam(tau.parameters(), lr=2.5e-3, betas=(0.5, 0.9), amsgrad=True)
    g = torch.Generator().manual_seed(seed)
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = 2.5e-3 * min(1.0, (step + 1) / 50) * (0.1 if step >= 0.75 * STEPS else 1.0)
        idx = torch.randint(len(z_tgt), (256,), generator=g)
        loss = nll(*tau(z_tgt[idx], z_src[idx])).per_sample.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return tau.eval()


@pytest.fixture(scope="module")
def trained() -> dict[str, object]:
    """One unconditional flow of z_tgt, a cINN given the true source and a cINN given independent noise."""
    problem = LinearGaussian(DIM, COND_DIM, seed=0)
    z, c = problem.sample(N_TRAIN, torch.Generator().manual_seed(1))
    z_test, c_test = problem.sample(N_TEST, torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(3)
    noise, noise_test = torch.randn(N_TRAIN, COND_DIM, generator=g), torch.randn(N_TEST, COND_DIM, generator=g)
    return {
        "problem": problem,
        "z_test": z_test,
        "c_test": c_test,
        "noise_test": noise_test,
        "flow": fit_unconditional_flow(z, steps=STEPS, lr=2.5e-3, seed=0, **SMALL_FLOW),
        "tau": _fit_cinn(z, c, seed=0),
        "tau_noise": _fit_cinn(z, noise, seed=1),
    }


def test_estimate_matches_analytic_mutual_information(trained: dict) -> None:
    """Held-out estimate within 0.15 nats of the analytic I (about 2.8 nats), each entropy within 0.15 nats."""
    problem: LinearGaussian = trained["problem"]
    nll_u = heldout_nll(trained["flow"], trained["z_test"])
    nll_c = heldout_nll(trained["tau"], trained["z_test"], trained["c_test"], batch_size=1000)
    est = information_estimate(nll_u, nll_c, dim=DIM)
    true_mi = _analytic_information(problem)
    assert true_mi > 2.0  # the source determines much of the target: a test that can fail
    assert abs(est["mutual_information_nats"] - true_mi) < 0.15, (est, true_mi)
    assert 0 < est["stderr_nats"] < 0.05
    cov = problem.A @ problem.A.T + problem.L @ problem.L.T
    true_h = 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))
    assert abs(est["entropy_tgt_nats"] - true_h) < 0.15, (est, true_h)
    assert abs(est["entropy_tgt_given_src_nats"] - problem.conditional_entropy()) < 0.15
    assert est["entropy_tgt_nats_per_dim"] == pytest.approx(est["entropy_tgt_nats"] / DIM)
    assert est["mutual_information_bits"] == pytest.approx(est["mutual_information_nats"] / math.log(2))
    assert est["n_samples"] == N_TEST


def test_independent_source_carries_no_information(trained: dict) -> None:
    nll_u = heldout_nll(trained["flow"], trained["z_test"])
    nll_c = heldout_nll(trained["tau_noise"], trained["z_test"], trained["noise_test"])
    est = information_estimate(nll_u, nll_c, dim=DIM)
    assert abs(est["mutual_information_nats"]) < 0.1, est
    # the noise-conditioned cINN is no better than the unconditional flow on *shuffled* pairs either
    shuffled = trained["noise_test"][torch.randperm(N_TEST, generator=torch.Generator().manual_seed(0))]
    nll_shuffled = heldout_nll(trained["tau_noise"], trained["z_test"], shuffled)
    assert abs(float((nll_shuffled - nll_c).mean())) < 0.05


def test_heldout_nll_is_batch_invariant_and_restores_mode(trained: dict) -> None:
    tau: ConditionalINN = trained["tau"]
    z, c = trained["z_test"][:100], trained["c_test"][:100]
    tau.train()
    whole = heldout_nll(tau, z, c, batch_size=1000)
    pieces = heldout_nll(tau, z, c, batch_size=7)
    assert tau.training, "heldout_nll must put the flow back in its previous mode"
    tau.eval()
    torch.testing.assert_close(whole, pieces)
    assert whole.shape == (100,) and not whole.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(whole, nll(*tau(z, c)).per_sample)


def test_information_estimate_arithmetic() -> None:
    u = torch.tensor([4.0, 6.0, 5.0, 5.0])
    c = torch.tensor([3.0, 3.0, 4.0, 6.0])
    est = information_estimate(u, c)
    diff = u - c
    assert est["mutual_information_nats"] == pytest.approx(1.0)
    assert est["stderr_nats"] == pytest.approx(float(diff.std()) / 2)
    assert est["entropy_tgt_nats"] == 5.0 and est["entropy_tgt_given_src_nats"] == 4.0
    assert est["entropy_tgt_nats_per_dim"] is None and est["entropy_tgt_given_src_nats_per_dim"] is None
    # a cINN worse than the unconditional flow gives a negative estimate, not an error
    assert information_estimate(c, u, dim=2)["mutual_information_nats"] == pytest.approx(-1.0)


def test_fit_unconditional_flow_is_seeded_and_leaves_global_rng_alone() -> None:
    z = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    state = torch.get_rng_state()
    a = fit_unconditional_flow(z, n_blocks=1, hidden_dim=8, steps=3, batch_size=16, seed=5)
    b = fit_unconditional_flow(z, n_blocks=1, hidden_dim=8, steps=3, batch_size=16, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    assert isinstance(a, UnconditionalFlow) and not a.training
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    c = fit_unconditional_flow(z, n_blocks=1, hidden_dim=8, steps=3, batch_size=16, seed=6)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_heldout_nll_rejects_bad_input(trained: dict) -> None:
    tau, flow = trained["tau"], trained["flow"]
    z, c = trained["z_test"][:10], trained["c_test"][:10]
    with pytest.raises(ValueError, match="needs the conditions"):
        heldout_nll(tau, z)
    with pytest.raises(ValueError, match="takes no condition"):
        heldout_nll(flow, z, c)
    with pytest.raises(TypeError, match="ConditionalINN or an UnconditionalFlow"):
        heldout_nll(torch.nn.Linear(4, 4), z)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="10 rows but z_src has 9"):
        heldout_nll(tau, z, c[:9])
    with pytest.raises(ValueError, match=r"expected shape \(B, 4\)"):
        heldout_nll(flow, z[:, :3])
    with pytest.raises(ValueError, match=r"z_src: expected shape \(B, 3\)"):
        heldout_nll(tau, z, c[:, :2])
    bad = z.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        heldout_nll(flow, bad)
    with pytest.raises(TypeError, match="dtype"):
        heldout_nll(flow, z.double())
    with pytest.raises(ValueError, match="batch_size"):
        heldout_nll(flow, z, batch_size=0)


def test_information_estimate_rejects_bad_input() -> None:
    x = torch.randn(5)
    with pytest.raises(ValueError, match="5 samples but nll_cond has 4"):
        information_estimate(x, x[:4])
    with pytest.raises(ValueError, match=r"shape \(N,\)"):
        information_estimate(x[None], x[None])
    with pytest.raises(ValueError, match="NaN"):
        information_estimate(x, torch.tensor([1.0, float("nan"), 0.0, 0.0, 0.0]))
    with pytest.raises(TypeError, match="floating-point"):
        information_estimate(torch.arange(5), x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        information_estimate([1.0, 2.0], x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 2"):
        information_estimate(x[:1], x[:1])
    with pytest.raises(ValueError, match="dim"):
        information_estimate(x, x, dim=0)


def test_fit_unconditional_flow_rejects_bad_input() -> None:
    z = torch.randn(32, 3)
    with pytest.raises(ValueError, match="dim >= 2"):
        fit_unconditional_flow(z[:, :1])
    with pytest.raises(ValueError, match="dim >= 2"):
        fit_unconditional_flow(z[:, 0])
    with pytest.raises(TypeError, match="torch.Tensor"):
        fit_unconditional_flow(z.tolist())  # type: ignore[arg-type]
    bad = z.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit_unconditional_flow(bad)
    with pytest.raises(ValueError, match="at least 2 samples"):
        fit_unconditional_flow(z[:1])
    with pytest.raises(ValueError, match="steps"):
        fit_unconditional_flow(z, steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_unconditional_flow(z, lr=float("nan"))
