"""Mathematical checks of the flow layers and the cINN, in float64 with tolerances that can fail."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from net2net.flows import (
    ActNorm,
    ConditionalAffineCoupling,
    ConditionalINN,
    FixedPermutation,
    SequentialFlow,
    UnconditionalFlow,
    nll,
)


def _perturb(model: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> None:
    """Move every parameter away from its initialisation so that no layer is trivially the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _small_cinn(dim: int, cond_dim: int = 3, alpha: float = 1.0, **kw) -> ConditionalINN:
    torch.manual_seed(dim)
    tau = ConditionalINN(dim, cond_dim, n_blocks=3, hidden_dim=16, hidden_depth=2, embedding_dim=5, alpha=alpha, **kw)
    tau = tau.double()
    tau(torch.randn(32, dim, dtype=torch.float64) * 2 + 1, torch.randn(32, cond_dim, dtype=torch.float64))  # init ActNorm
    _perturb(tau)
    return tau.eval()


def _cinn_and_batch(dim: int, alpha: float, n: int) -> tuple[ConditionalINN, torch.Tensor, torch.Tensor]:
    """:func:`_small_cinn` and a float64 batch: ``z`` ``(n, dim)``, ``c`` ``(n, 3)``."""
    tau = _small_cinn(dim, alpha=alpha)
    return tau, torch.randn(n, dim, dtype=torch.float64), torch.randn(n, 3, dtype=torch.float64)


@pytest.mark.parametrize("dim", [2, 3, 4, 7, 8])
@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_cinn_inverse_and_logdet_sign(dim: int, alpha: float) -> None:
    tau, z, c = _cinn_and_batch(dim, alpha, 64)
    v, logdet = tau(z, c)
    z_back, logdet_inv = tau.inverse(v, c)
    # perturbed weights make the map strongly expanding (|v| up to ~60), hence a relative tolerance
    assert torch.allclose(z_back, z, atol=1e-9, rtol=1e-9)
    assert torch.allclose(logdet_inv, -logdet, atol=1e-9, rtol=1e-9)
    assert logdet.abs().max() > 0.1  # the check above is not vacuous
    assert torch.allclose(tau.residual(z, c), v)


@pytest.mark.parametrize("dim", [3, 4, 5])
@pytest.mark.parametrize("alpha", [1.0, 2.5])
def test_cinn_logdet_matches_autograd_jacobian(dim: int, alpha: float) -> None:
    tau, z, c = _cinn_and_batch(dim, alpha, 4)
    _, logdet = tau(z, c)
    for i in range(4):
        jac = torch.autograd.functional.jacobian(lambda x, ci=c[i : i + 1]: tau(x[None], ci)[0][0], z[i])
        sign, logabs = torch.linalg.slogdet(jac)
        assert sign != 0
        assert logabs.item() == pytest.approx(logdet[i].item(), abs=1e-9)
        # and the inverse's log-det is that of the inverse's Jacobian
        v = tau(z[i : i + 1], c[i : i + 1])[0][0]
        jac_inv = torch.autograd.functional.jacobian(lambda y, ci=c[i : i + 1]: tau.inverse(y[None], ci)[0][0], v)
        assert torch.linalg.slogdet(jac_inv)[1].item() == pytest.approx(-logdet[i].item(), abs=1e-9)


@pytest.mark.parametrize("dim", [3, 6])
def test_unconditional_flow_inverse_and_jacobian(dim: int) -> None:
    torch.manual_seed(1)
    flow = UnconditionalFlow(dim, n_blocks=3, hidden_dim=16).double()
    flow(torch.randn(32, dim, dtype=torch.float64))
    _perturb(flow)
    flow.eval()
    z = torch.randn(8, dim, dtype=torch.float64)
    v, logdet = flow(z)
    z_back, logdet_inv = flow.inverse(v)
    assert torch.allclose(z_back, z, atol=1e-10, rtol=0)
    assert torch.allclose(logdet_inv, -logdet, atol=1e-10, rtol=0)
    jac = torch.autograd.functional.jacobian(lambda x: flow(x[None])[0][0], z[0])
    assert torch.linalg.slogdet(jac)[1].item() == pytest.approx(logdet[0].item(), abs=1e-9)
    assert flow.sample(5).shape == (5, dim)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: ConditionalAffineCoupling(5, cond_dim=2, hidden_dim=8, hidden_depth=1, alpha=1.5),
        lambda: ActNorm(5),
        lambda: FixedPermutation(5, seed=3),
    ],
)
def test_each_layer_inverts_with_exact_logdet(layer) -> None:
    torch.manual_seed(0)
    m = layer().double()
    c = torch.randn(6, 2, dtype=torch.float64) if isinstance(m, ConditionalAffineCoupling) else None
    m(torch.randn(6, 5, dtype=torch.float64) * 3, c)  # ActNorm init
    _perturb(m)
    m.eval()
    x = torch.randn(6, 5, dtype=torch.float64)
    z, ld = m(x, c)
    x_back, ld_inv = m.inverse(z, c)
    assert torch.allclose(x_back, x, atol=1e-12, rtol=0)
    assert torch.allclose(ld_inv, -ld, atol=1e-12, rtol=0)
    jac = torch.autograd.functional.jacobian(lambda u: m(u[None], None if c is None else c[:1])[0][0], x[0])
    assert torch.linalg.slogdet(jac)[1].item() == pytest.approx(ld[0].item(), abs=1e-10)


def test_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    for tau in (
        ConditionalINN(5, 3, n_blocks=2, hidden_dim=16, embedding_dim=4),
        ConditionalINN(5, cond_shape=(2, 8, 8), n_blocks=2, hidden_dim=16, embedding_dim=4),
    ):
        c = torch.randn(16, *tau.cond_shape)
        tau(torch.randn(16, 5), c)  # init ActNorm
        v, logdet = tau(torch.randn(16, 5), c)
        nll(v, logdet).per_sample.mean().backward()
        for name, p in tau.named_parameters():
            assert p.grad is not None, name
            assert torch.isfinite(p.grad).all(), name
            assert p.grad.abs().sum() > 0, name


def test_condition_changes_the_output() -> None:
    tau = _small_cinn(4)
    z = torch.randn(1, 4, dtype=torch.float64).expand(2, 4)
    c = torch.randn(2, 3, dtype=torch.float64)
    v, logdet = tau(z, c)
    assert (v[0] - v[1]).abs().max() > 1e-3
    assert (logdet[0] - logdet[1]).abs() > 1e-6
    samples = tau.sample(c, n_samples=3, generator=torch.Generator().manual_seed(0))
    same_v = tau.sample(c, n_samples=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples, same_v)  # seeded sampling is reproducible


def test_sampling_shares_one_embedding_and_inverts() -> None:
    tau = _small_cinn(6)
    c = torch.randn(2, 3, dtype=torch.float64)
    z = tau.sample(c, n_samples=7)
    assert z.shape == (2, 7, 6)
    # every sample maps back to a finite residual under its own condition
    v = tau.residual(z.reshape(14, 6), c.repeat_interleave(7, 0))
    assert torch.isfinite(v).all()
    assert torch.equal(tau.sample(c, 2, temperature=0.0)[:, 0], tau.sample(c, 2, temperature=0.0)[:, 1])


def test_shared_condition_rows_give_the_same_flow_as_repeated_ones() -> None:
    # sample() hands the coupling layers one condition row per input and computes the condition's part of each
    # subnet's first layer once; the result must equal the flow under the condition repeated to every sample
    tau = _small_cinn(7)
    g = torch.Generator().manual_seed(1)
    c = torch.randn(3, 3, dtype=torch.float64)
    h = tau.embed(c)  # (3, E)
    v = torch.randn(12, 7, dtype=torch.float64, generator=g)  # 4 samples per condition
    shared, ld_shared = tau.flow.inverse(v, h)
    repeated, ld_repeated = tau.flow.inverse(v, h.repeat_interleave(4, 0))
    assert torch.allclose(shared, repeated, atol=1e-12, rtol=0)
    assert torch.allclose(ld_shared, ld_repeated, atol=1e-12, rtol=0)
    assert (shared[0] - shared[4]).abs().max() > 1e-3  # the conditions differ, so must their samples
    fwd, _ = tau.flow(shared, h)
    assert torch.allclose(fwd, v, atol=1e-10, rtol=0)
    z = tau.sample(c, 4, generator=torch.Generator().manual_seed(5))
    v5 = torch.randn(12, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(z.reshape(12, 7), tau.inverse(v5, c.repeat_interleave(4, 0))[0], atol=1e-12, rtol=0)


def test_coupling_condition_rows_must_divide_the_batch() -> None:
    layer = ConditionalAffineCoupling(4, cond_dim=2, hidden_dim=8)
    with pytest.raises(ValueError, match=r"expected shape \(6, 2\) \(or rows dividing 6.*got \(4, 2\)"):
        layer(torch.randn(6, 4), torch.randn(4, 2))
    with pytest.raises(ValueError, match=r"got \(6, 3\)"):
        layer(torch.randn(6, 4), torch.randn(6, 3))
    seen = []

    class Subnet(torch.nn.Module):  # a user's subnet sees the condition repeated to the batch
        def __init__(self, i: int, c: int, o: int) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(i + c, 2 * o)

        def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            seen.append(h.shape[0])
            return self.lin(torch.cat([x, h], 1)).chunk(2, 1)

    custom = ConditionalAffineCoupling(4, cond_dim=2, subnet_constructor=Subnet)
    custom(torch.randn(6, 4), torch.randn(2, 2))
    assert seen == [6, 6]


def test_actnorm_initialises_once_and_survives_save_load(tmp_path) -> None:
    torch.manual_seed(0)
    an = ActNorm(4)
    x = torch.randn(500, 4) * torch.tensor([1.0, 2.0, 3.0, 0.5]) + torch.tensor([1.0, -2.0, 0.0, 5.0])
    y, _ = an(x)
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    state = {k: v.clone() for k, v in an.state_dict().items()}
    an(torch.randn(50, 4) * 10)  # a second batch does not re-initialise
    assert all(torch.equal(state[k], v) for k, v in an.state_dict().items())

    tau = ConditionalINN(4, 2, n_blocks=2, hidden_dim=8, embedding_dim=3)
    c = torch.randn(64, 2)
    tau(torch.randn(64, 4) * 3 + 2, c)
    path = tmp_path / "tau.safetensors"
    save_file(tau.state_dict(), str(path))
    fresh = ConditionalINN(4, 2, n_blocks=2, hidden_dim=8, embedding_dim=3)
    fresh.load_state_dict(load_file(str(path)))
    fresh.train()
    z = torch.randn(10, 4)
    v_fresh, _ = fresh(z, c[:10])  # a training-mode forward after loading must not initialise again
    assert torch.allclose(v_fresh, tau(z, c[:10])[0])
    # and through torch.save with weights_only loading
    torch.save(tau.state_dict(), tmp_path / "tau.pt")
    other = ConditionalINN(4, 2, n_blocks=2, hidden_dim=8, embedding_dim=3)
    other.load_state_dict(torch.load(tmp_path / "tau.pt", weights_only=True))
    assert all(bool(m.initialized) for m in other.modules() if isinstance(m, ActNorm))


def test_spatial_condition_through_conv_embedder() -> None:
    torch.manual_seed(0)
    tau = ConditionalINN(6, cond_shape=(3, 28, 28), n_blocks=2, hidden_dim=16, embedding_dim=8).double()
    c = torch.randn(10, 3, 28, 28, dtype=torch.float64)
    z = torch.randn(10, 6, dtype=torch.float64)
    tau(z, c)
    tau.eval()
    v, logdet = tau(z, c)
    z_back, logdet_inv = tau.inverse(v, c)
    assert torch.allclose(z_back, z, atol=1e-10)
    assert torch.allclose(logdet_inv, -logdet, atol=1e-10)
    assert tau.embed(c).shape == (10, 8)
    assert tau.sample(c[:2], 4).shape == (2, 4, 6)
    with pytest.raises(ValueError, match=r"expected shape \(B, 3, 28, 28\)"):
        tau(z, torch.randn(10, 3, 32, 32, dtype=torch.float64))


def test_batch_size_one() -> None:
    tau = _small_cinn(5)
    z, c = torch.randn(1, 5, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
    v, logdet = tau(z, c)
    assert v.shape == (1, 5) and logdet.shape == (1,)
    assert torch.allclose(tau.inverse(v, c)[0], z, atol=1e-10)
    assert tau.sample(c, 1).shape == (1, 1, 5)
    fresh = ConditionalINN(5, 3, n_blocks=1, hidden_dim=8, embedding_dim=4)
    with pytest.raises(ValueError, match="at least 2"):
        fresh(torch.randn(1, 5), torch.randn(1, 3))  # ActNorm cannot initialise from one sample


def test_nll_values() -> None:
    v = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    logdet = torch.tensor([0.5, -1.0])
    stats = nll(v, logdet)
    expected = torch.tensor([2.5 + math.log(2 * math.pi) - 0.5, math.log(2 * math.pi) + 1.0])
    assert torch.allclose(stats.per_sample, expected)
    assert torch.allclose(stats.nats_per_dim, expected / 2)
    assert torch.allclose(stats.bits_per_dim, expected / (2 * math.log(2)))
    with pytest.raises(ValueError, match="logdet of shape"):
        nll(v, torch.zeros(3))


def test_sequential_flow_rejects_mixed_dims() -> None:
    with pytest.raises(ValueError, match="same dim"):
        SequentialFlow([ActNorm(3), ActNorm(4)])


class TestBadInput:
    def setup_method(self) -> None:
        torch.manual_seed(0)
        self.tau = ConditionalINN(4, 3, n_blocks=2, hidden_dim=8, embedding_dim=4)

    def test_inverse_before_actnorm_init(self) -> None:
        with pytest.raises(RuntimeError, match="ActNorm is not initialised"):
            self.tau.inverse(torch.randn(2, 4), torch.randn(2, 3))
        with pytest.raises(RuntimeError, match="ActNorm is not initialised"):
            self.tau.sample(torch.randn(2, 3))
        self.tau.eval()
        with pytest.raises(RuntimeError, match="training mode"):
            self.tau(torch.randn(2, 4), torch.randn(2, 3))

    def test_wrong_dims(self) -> None:
        with pytest.raises(ValueError, match=r"z_tgt: expected shape \(B, 4\), got \(2, 5\)"):
            self.tau(torch.randn(2, 5), torch.randn(2, 3))
        with pytest.raises(ValueError, match=r"z_src: expected shape \(B, 3\), got \(2, 2\)"):
            self.tau(torch.randn(2, 4), torch.randn(2, 2))
        with pytest.raises(ValueError, match="batch sizes differ"):
            self.tau(torch.randn(2, 4), torch.randn(3, 3))
        with pytest.raises(ValueError, match=r"expected shape \(B, 4\)"):
            self.tau(torch.randn(4), torch.randn(1, 3))

    def test_wrong_dtypes(self) -> None:
        with pytest.raises(TypeError, match="floating-point"):
            self.tau(torch.ones(2, 4, dtype=torch.long), torch.randn(2, 3))
        with pytest.raises(TypeError, match="expected dtype torch.float32"):
            self.tau(torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 3))
        with pytest.raises(TypeError, match="torch.Tensor"):
            self.tau([[0.0] * 4], torch.randn(1, 3))

    def test_nan_inputs(self) -> None:
        z = torch.randn(3, 4)
        z[1, 2] = float("nan")
        with pytest.raises(ValueError, match=r"NaN or infinite values \(rows \[1\]\)"):
            self.tau(z, torch.randn(3, 3))
        c = torch.randn(3, 3)
        c[0, 0] = float("inf")
        with pytest.raises(ValueError, match="z_src: contains NaN"):
            self.tau(torch.randn(3, 4), c)

    def test_bad_construction(self) -> None:
        with pytest.raises(ValueError, match="exactly one of cond_dim"):
            ConditionalINN(4)
        with pytest.raises(ValueError, match="dim must be an int >= 2"):
            ConditionalINN(1, 3)
        with pytest.raises(ValueError, match="n_samples"):
            self.tau.sample(torch.randn(1, 3), n_samples=0)
        with pytest.raises(ValueError, match="alpha must be positive"):
            ConditionalAffineCoupling(4, alpha=0.0)


def test_check_float_tensor_names_what_was_expected_and_what_came() -> None:
    from net2net.flows.checks import check_float_tensor

    x = torch.zeros(2, 3)
    assert check_float_tensor(x, "z", "codes (B, D)") is x
    assert check_float_tensor(x.double(), "z", "codes (B, D)").dtype == torch.float64
    with pytest.raises(TypeError, match=r"^z: expected codes \(B, D\) as a torch.Tensor, got list$"):
        check_float_tensor([[0.0]], "z", "codes (B, D)")
    with pytest.raises(TypeError, match=r"^z: expected codes \(B, D\) of floating-point values, got dtype torch.int64"):
        check_float_tensor(torch.zeros(2, 3, dtype=torch.long), "z", "codes (B, D)")
    with pytest.raises(TypeError, match="got dtype torch.bool; convert it with .float()"):
        check_float_tensor(torch.zeros(2, dtype=torch.bool), "z", "codes (B, D)")
    # the checks built on it say the same for their inputs
    from net2net.autoencoder.encoder import check_image
    from net2net.flows.checks import check_tensor
    from net2net.metrics import information_estimate

    with pytest.raises(TypeError, match=r"input: expected shape \(B, 3\) as a torch.Tensor, got ndarray"):
        check_tensor(x.numpy(), (3,))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Decoder: expected an image batch \(B, C, H, W\) in \[-1, 1\] of floating-point"):
        check_image(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "Decoder", 1, 8)
    with pytest.raises(TypeError, match=r"nll_cond: expected per-sample NLLs \(N,\) as a torch.Tensor, got list"):
        information_estimate(torch.zeros(3), [0.0, 1.0, 2.0])  # type: ignore[arg-type]


def test_check_sampling_is_the_one_check_of_every_sample_method() -> None:
    from net2net.flows.checks import check_sampling
    from net2net.translators import build_translator

    check_sampling(1, 0.0)
    check_sampling(8, 1.5)
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=rf"n_samples must be a positive int, got {bad!r}"):
            check_sampling(bad, 1.0)
    for t in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=rf"temperature must be a finite non-negative number, got {t}"):
            check_sampling(2, t)
    for t, kind in (("1", "str"), (None, "NoneType"), ([1.0], "list")):
        with pytest.raises(TypeError, match=rf"^temperature must be a number, got {kind}$"):
            check_sampling(2, t)
    # the flows, the translators' base sampler and the MLP's all refuse the same arguments the same way
    torch.manual_seed(0)
    tau = ConditionalINN(dim=4, cond_dim=3, n_blocks=1, hidden_dim=8, embedding_dim=2)
    flow = UnconditionalFlow(4, n_blocks=1, hidden_dim=8)
    c = torch.randn(2, 3)
    samplers = {"ConditionalINN": lambda n, t: tau.sample(c, n_samples=n, temperature=t),
                "UnconditionalFlow": lambda n, t: flow.sample(n, temperature=t),
                "mlp": lambda n, t: build_translator("mlp", dim=4, cond_dim=3, hidden_dim=8).sample(c, n, t),
                "linear": lambda n, t: build_translator("linear", dim=4, cond_dim=3).sample(c, n, t)}  # fmt: skip
    for draw in samplers.values():
        with pytest.raises(ValueError, match="n_samples must be a positive int, got 0"):
            draw(0, 1.0)
        with pytest.raises(ValueError, match="temperature must be a finite non-negative number, got -1.0"):
            draw(2, -1.0)
        with pytest.raises(ValueError, match="temperature must be a finite non-negative number, got inf"):
            draw(2, float("inf"))


def test_embedder_and_coupling_sizes_are_checked_by_the_shared_int_check() -> None:
    from net2net.flows.coupling import ScaleShiftMLP
    from net2net.flows.embedder import DenseEmbedder

    with pytest.raises(ValueError, match=r"^DenseEmbedder: depth must be a positive int, got 0$"):
        DenseEmbedder(3, 4, hidden_dim=8, depth=0)
    with pytest.raises(ValueError, match=r"^ScaleShiftMLP: hidden_dim must be a positive int, got 0$"):
        ScaleShiftMLP(2, 0, 2, 0, 1)
    with pytest.raises(ValueError, match=r"^ScaleShiftMLP: cond_dim must be an int >= 0, got -1$"):
        ScaleShiftMLP(2, -1, 2, 8, 1)
    with pytest.raises(ValueError, match=r"^ScaleShiftMLP: hidden_depth must be an int >= 0, got -1$"):
        ScaleShiftMLP(2, 0, 2, 8, -1)
    assert ScaleShiftMLP(2, 0, 2, 8, 0)(torch.zeros(3, 2), None)[0].shape == (3, 2)  # 0 is allowed for both
