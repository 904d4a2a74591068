"""Translations of one's own embeddings: files, checks, standardisation, the stream, ``fit``, the latent-level API."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.numpy import save_file

from net2net.apps.files import sample_file, score_file
from net2net.apps.translate import Net2Net
from net2net.data.embeddings import (
    PairedEmbeddingStream,
    held_out_blocks,
    open_embeddings,
    scan_pair,
)
from net2net.flows import ConditionalINN, nll
from net2net.synthetic import LinearGaussian
from net2net.training.datamodule import EmbeddingDataModule
from net2net.training.fit import FitSettings, evaluate_run, export_run, fit

TINY = FitSettings(
    steps=300, batch_size=64, n_blocks=2, hidden_dim=32, embedding_dim=8, val_every=50, warmup_steps=10, max_lr=3e-3
)


def _problem(dim: int = 3, cond_dim: int = 5, seed: int = 0) -> LinearGaussian:
    return LinearGaussian(dim, cond_dim, seed=seed, noise_scale=0.2)


def _pairs(n: int = 1200, dim: int = 3, cond_dim: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(z_src, z_tgt) of a conditional Gaussian, shifted and scaled so that standardising matters."""
    z_tgt, z_src = _problem(dim, cond_dim, seed).sample(n, torch.Generator().manual_seed(seed))
    return (z_src.numpy() * 3 + 1).astype(np.float32), (z_tgt.numpy() * 0.2 - 4).astype(np.float32)


# -- the cINN's latent-level methods, float64 ------------------------------------------------------------------
def test_log_prob_and_from_residual_are_exact_in_float64() -> None:
    torch.manual_seed(0)
    tau = ConditionalINN(dim=3, cond_dim=2, n_blocks=2, hidden_dim=16, embedding_dim=4).double()
    z, c = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    tau(z, c)  # initialises ActNorm
    tau.eval()
    v = tau.residual(z, c)
    assert torch.allclose(tau.from_residual(v, c), z, atol=1e-10)
    lp = tau.log_prob(z, c)
    assert torch.allclose(lp, -nll(*tau(z, c)).per_sample, atol=1e-12)
    for i in range(2):  # change of variables: log N(v; 0, I) + log |det dv/dz| from the autograd Jacobian
        jac = torch.autograd.functional.jacobian(lambda x, ci=c[i : i + 1]: tau.residual(x[None], ci)[0], z[i])
        expected = -0.5 * v[i].square().sum() - 1.5 * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
        assert lp[i].item() == pytest.approx(expected.item(), abs=1e-9)


# -- files ------------------------------------------------------------------------------------------------------
def test_npy_safetensors_and_shard_folders_read_the_same_rows(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(50, 4))
    np.save(tmp_path / "a.npy", x.astype(np.float32))
    save_file({"emb": x.astype(np.float64), "other": np.zeros((3, 2))}, str(tmp_path / "b.safetensors"))
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "00.npy", x[:17].astype(np.float32))
    save_file({"e": x[17:40].astype(np.float64)}, str(shards / "01.safetensors"))
    np.save(shards / "02.npy", x[40:].astype(np.float64))
    expected = x.astype(np.float32)
    for arr in (
        open_embeddings(tmp_path / "a.npy"),
        open_embeddings(tmp_path / "b.safetensors", key="emb"),
        open_embeddings(shards),
    ):
        assert (arr.rows, arr.dim) == (50, 4)
        assert np.allclose(arr.read(0, 50), expected, atol=1e-6)
        assert np.allclose(arr.read(10, 45), expected[10:45], atol=1e-6)  # spans all three shards
        assert arr.read(10, 45).dtype == np.float32


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: np.save(p / "x.npy", np.zeros(5, np.float32)), ValueError, r"2-d array .* shape \(5,\).*reshape"),
        (lambda p: np.save(p / "x.npy", np.zeros((5, 2), np.int64)), TypeError, "float32 or float64.*int64"),
        (lambda p: np.save(p / "x.npy", np.zeros((5, 2), np.float16)), TypeError, "float16"),
        (lambda p: np.save(p / "x.npy", np.zeros((0, 2), np.float32)), ValueError, "empty"),
        (
            lambda p: save_file({"a": np.zeros((2, 2)), "b": np.zeros((2, 2))}, str(p / "x.safetensors")),
            ValueError,
            r"holds tensors \['a', 'b'\]",
        ),
        (
            lambda p: (
                (p / "x").mkdir()
                or np.save(p / "x" / "0.npy", np.zeros((2, 2), np.float32))
                or np.save(p / "x" / "1.npy", np.zeros((2, 3), np.float32))
            ),
            ValueError,
            "different feature counts",
        ),
        (lambda p: None, FileNotFoundError, "no such file"),
    ],
)
def test_bad_files_are_refused_with_what_was_received(tmp_path: Path, make, error, match) -> None:
    make(tmp_path)
    name = next((f.name for f in tmp_path.iterdir()), "missing.npy")
    with pytest.raises(error, match=match):
        open_embeddings(tmp_path / name)


def test_scan_standardises_checks_and_digests(tmp_path: Path) -> None:
    src, tgt = _pairs(300)
    np.save(tmp_path / "s.npy", src)
    np.save(tmp_path / "t.npy", tgt)
    scan = scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "t.npy"), block_rows=64)
    s = scan.standardization
    assert np.allclose(s.src_mean.numpy(), src.astype(np.float64).mean(0), atol=1e-9)
    assert np.allclose(s.tgt_std.numpy(), tgt.astype(np.float64).std(0, ddof=1), rtol=1e-9)
    assert s.target_log_det == pytest.approx(-np.log(tgt.astype(np.float64).std(0, ddof=1)).sum(), rel=1e-9)

    changed = tgt.copy()
    changed[7, 1] += 1
    np.save(tmp_path / "t2.npy", changed)
    scan2 = scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "t2.npy"))
    assert scan2.source_digest == scan.source_digest and scan2.target_digest != scan.target_digest

    bad = tgt.copy()
    bad[[5, 250], 0] = [np.nan, np.inf]
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match=r"target: 2 row\(s\) hold NaN or Inf, e.g. rows \[5, 250\]"):
        scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "nan.npy"), block_rows=64)
    const = tgt.copy()
    const[:, 2] = 3.0
    np.save(tmp_path / "const.npy", const)
    with pytest.raises(ValueError, match=r"constant \(zero variance\), e.g. \[2\]"):
        scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "const.npy"))
    np.save(tmp_path / "short.npy", tgt[:-1])
    with pytest.raises(ValueError, match="300 rows but target has 299"):
        scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "short.npy"))


def test_stream_shards_blocks_over_ranks_and_never_reads_held_out_rows(tmp_path: Path) -> None:
    n, block = 1000, 25
    ids = np.arange(n, dtype=np.float32)[:, None].repeat(2, 1)  # row i holds i: what was read is visible
    np.save(tmp_path / "s.npy", ids)
    np.save(tmp_path / "t.npy", ids)
    scan = scan_pair(open_embeddings(tmp_path / "s.npy"), open_embeddings(tmp_path / "t.npy"))
    train, val = held_out_blocks(n, block, 0.1, 10**6, seed=0)
    assert len(val) == 4 and not set(train) & set(val)
    std = scan.standardization

    def rows(rank: int, world: int, batches: int) -> np.ndarray:
        stream = PairedEmbeddingStream(
            open_embeddings(tmp_path / "s.npy"),
            open_embeddings(tmp_path / "t.npy"),
            train,
            block,
            10,
            std,
            seed=3,
            rank=rank,
            world_size=world,
            shuffle_blocks=4,
        )
        it = iter(stream)
        got = [next(it)["z_tgt"][:, 0].double() * std.tgt_std[0] + std.tgt_mean[0] for _ in range(batches)]
        return torch.cat(got).round().long().numpy()

    per_epoch = len(train) * block // 2  # rows per rank and pass (36 blocks: 18 each)
    r0, r1 = rows(0, 2, per_epoch // 10), rows(1, 2, per_epoch // 10)
    held = {i for b in val for i in range(b * block, (b + 1) * block)}
    assert not (set(r0) | set(r1)) & held, "the training stream read held-out rows"
    assert not set(r0) & set(r1), "two ranks read the same rows in one pass"
    assert len(set(r0)) == len(r0) and len(set(r0) | set(r1)) == 2 * len(r0)
    single = rows(0, 1, 2 * per_epoch // 10)
    assert set(single) == set(range(n)) - held  # one process reads every training row once per pass
    assert not np.array_equal(np.sort(r0[:10]), np.arange(10)), "rows are not shuffled"


# -- fit, the run folder and the API over it -------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    d = tmp_path_factory.mktemp("fit")
    src, tgt = _pairs()
    np.save(d / "src.npy", src)
    save_file({"z": tgt}, str(d / "tgt.safetensors"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = fit(
            d / "src.npy",
            d / "tgt.safetensors",
            d / "run",
            TINY,
            command="test",
            progress=False,
            trainer={"enable_progress_bar": False, "enable_model_summary": False},
        )
    return run, src, tgt


def test_fit_writes_a_complete_run_with_a_model_card(fitted) -> None:
    run, src, _ = fitted
    for name in (
        "config.yaml",
        "cinn.safetensors",
        "standardization.safetensors",
        "data.json",
        "model_card.md",
        "checkpoints/last.ckpt",
    ):
        assert (run / name).is_file(), name
    card = json.loads((run / "model_card.json").read_text())
    assert card["rows"] == len(src) and card["source"]["dim"] == 5 and card["target"]["dim"] == 3
    assert card["source"]["digest"].startswith("sha256:") and card["command"] == "test"
    assert card["held_out_bits_per_dim"] == pytest.approx(card["held_out_nats_per_dim"] / math.log(2))
    ev = evaluate_run(run, information_steps=0)
    assert ev["nats_per_dim"] == pytest.approx(card["held_out_nats_per_dim"], abs=1e-6)
    # against the truth: the raw held-out NLL is a cross-entropy, so above the true conditional NLL of the same rows
    # (up to sampling noise), and a short fit gets within 0.3 nats/dim of it; z_tgt was scaled by 0.2 in _pairs
    problem = _problem()
    dm = EmbeddingDataModule(**yaml.safe_load((run / "config.yaml").read_text())["data"]["params"])
    dm.setup()
    s = dm.standardization
    vs, vt = dm.held_out()
    assert dm.rows == len(src) and len(vs) == len(vt) == dm.n_val_rows < dm.rows  # every held-out block, read once
    raw_src, raw_tgt = s.source_inverse(vs), s.target_inverse(vt)
    true = problem.conditional_nll((raw_tgt.double() + 4) / 0.2, (raw_src.double() - 1) / 3) + 3 * math.log(0.2)
    true_per_dim = true.mean().item() / 3
    assert true_per_dim - 0.05 < ev["raw_nats_per_dim"] < true_per_dim + 0.3, (ev, true_per_dim)


def test_api_works_in_the_raw_embedding_space(fitted, tmp_path: Path) -> None:
    run, src, tgt = fitted
    model = Net2Net.from_run(run)
    assert model.source is None and model.target is None
    x, y = torch.from_numpy(src[:32]), torch.from_numpy(tgt[:32])
    g = torch.Generator().manual_seed(0)
    samples = model.sample(x, n=64, generator=g)  # (32, 64, 3), raw units: near -4 with spread ~0.2
    assert samples.shape == (32, 64, 3)
    assert abs(samples.mean().item() - tgt.mean()) < 0.2 and samples.std().item() < 1.0
    # log p in the raw space = the standardised density + the standardisation's log-det
    s = model.standardization
    lp = model.log_prob(y, x)
    assert torch.allclose(lp, model.tau.log_prob(s.target(y), s.source(x)) + s.target_log_det, atol=1e-4)
    # true pairs score higher than mismatched ones (the condition matters)
    assert lp.mean() > model.log_prob(y, x.roll(1, 0)).mean() + 1.0
    # residual and recombine: back to the same raw codes with the own condition
    v = model.residual(y, x)
    assert torch.allclose(model.recombine(y, x, x_y=x), y, atol=1e-3)
    assert v.shape == (32, 3)
    # files: sample and score write .npy files that match the API
    out = score_file(model, run.parent / "src.npy", run.parent / "tgt.safetensors", tmp_path / "s.npy", chunk=100)
    assert np.allclose(np.load(out)[:32], lp.numpy(), atol=1e-4)
    smp = np.load(sample_file(model, run.parent / "src.npy", tmp_path / "x.npy", n=2, chunk=500))
    assert smp.shape == (len(src), 2, 3) and not (tmp_path / "x.npy.partial").exists()
    with pytest.raises(ValueError, match=r"z_src: expected shape \(B, 5\), got \(4, 3\)"):
        model.sample(torch.zeros(4, 3))


def test_fit_refuses_an_existing_run_and_resumes_one(fitted, tmp_path: Path) -> None:
    run, _, _ = fitted
    with pytest.raises(FileExistsError, match="--resume"):
        fit(run.parent / "src.npy", run.parent / "tgt.safetensors", run, TINY)
    exported = export_run(run, tmp_path / "export")
    assert Net2Net.from_run(exported).tau.dim == 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        longer = FitSettings(**{**TINY.__dict__, "steps": 340, "patience": 100})
        fit(
            run.parent / "src.npy",
            run.parent / "tgt.safetensors",
            run,
            longer,
            resume=True,
            progress=False,
            trainer={"enable_progress_bar": False, "enable_model_summary": False},
        )
    summary = json.loads((run / "summary.json").read_text())
    assert summary["start_step"] == 300 and summary["global_step"] == 340, summary


def test_fit_rejects_mismatched_rows(tmp_path: Path) -> None:
    src, tgt = _pairs(100)
    np.save(tmp_path / "s.npy", src)
    np.save(tmp_path / "t.npy", tgt[:90])
    with pytest.raises(ValueError, match="100 rows but target has 90"):
        fit(tmp_path / "s.npy", tmp_path / "t.npy", tmp_path / "run", TINY)
    assert not (tmp_path / "run").exists()


def test_datamodule_rejects_a_standardisation_of_other_widths(fitted, tmp_path: Path) -> None:
    run, src, _ = fitted
    np.save(tmp_path / "wide.npy", np.zeros((len(src), 4), np.float32))
    dm = EmbeddingDataModule(
        str(run.parent / "src.npy"), str(tmp_path / "wide.npy"), str(run / "standardization.safetensors")
    )
    with pytest.raises(ValueError, match="target: 4 features, but the standardisation has 3"):
        dm.setup()
