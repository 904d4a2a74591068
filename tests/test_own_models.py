"""What broke when the package was used on one's own data and models: the cache key, image logs of non-images, the
learning-rate decay on resume, gradient clipping in the optimiser, and the expert protocol checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from net2net.data.latent_cache import dataset_fingerprint, encode_source, encode_target
from net2net.experts.protocols import check_expert
from net2net.training.callbacks import ImageLogger
from net2net.training.optim import ClippedAdam, FlowOptimConfig, make_optimizer


class _Pairs(Dataset):
    """A user's dataset with its own attribute names."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.from_numpy(self.x[i]), "label": int(self.y[i])}


def test_fingerprint_covers_arrays_of_any_name_and_files(tmp_path) -> None:
    x, y = np.zeros((10, 1, 4, 4), np.float32), np.arange(10)
    ds = _Pairs(x, y)
    key = dataset_fingerprint(ds)
    assert dataset_fingerprint(_Pairs(x.copy(), y.copy())) == key  # content, not identity
    ds.x = x + 1  # the arrays overwritten with other data: the old cached codes must not be reused
    assert dataset_fingerprint(ds) != key

    class Files(Dataset):
        def __init__(self, files: list) -> None:
            self.files = files

        def __len__(self) -> int:
            return len(self.files)

    f = tmp_path / "a.png"
    f.write_bytes(b"1")
    before = dataset_fingerprint(Files([str(f)]))
    f.write_bytes(b"22")
    assert dataset_fingerprint(Files([str(f)])) != before


def test_image_logger_switches_itself_off_without_images(tmp_path) -> None:
    class Flat(nn.Module):
        def log_images(self, batch, max_images, generator):
            return {"translations": torch.zeros(16, 16)}

    logger = ImageLogger(every_n_steps=1, out_dir=tmp_path)
    with pytest.warns(UserWarning, match=r"switched off.*\(16, 16\)"):
        assert logger.log_images(None, Flat(), {}, step=1) == []  # type: ignore[arg-type]
    assert not logger.enabled and not (tmp_path / "images").exists()
    with pytest.warns(UserWarning, match="has no log_images"):
        ImageLogger(out_dir=tmp_path).log_images(None, nn.Linear(1, 1), {}, step=1)  # type: ignore[arg-type]


def test_decay_follows_max_steps_and_a_short_decay_warns() -> None:
    p = nn.Parameter(torch.zeros(2))
    cfg = FlowOptimConfig(warmup_steps=2, decay_steps="max_steps")
    _, sched = make_optimizer([p], cfg, 8, max_steps=10)
    factors = [sched.lr_lambdas[0](s) for s in (5, 9, 10)]
    assert 0 < factors[0] < 1 and factors[2] == 0.0  # the cosine ends at max_steps ...
    _, longer = make_optimizer([p], cfg, 8, max_steps=20)  # ... also when a resumed run extends it
    assert longer.lr_lambdas[0](10) > 0.4
    with pytest.warns(UserWarning, match=r"decay_steps=10 ends before max_steps=20.*decay_steps: max_steps"):
        make_optimizer([p], FlowOptimConfig(warmup_steps=2, decay_steps=10), 8, max_steps=20)
    with pytest.raises(ValueError, match="finite max_steps"):
        make_optimizer([p], cfg, 8)
    with pytest.raises(ValueError, match="'max_steps' or None"):
        FlowOptimConfig(decay_steps="often")


@pytest.mark.parametrize("use_closure", [False, True])
def test_the_optimiser_clips_the_gradient_norm(use_closure: bool) -> None:
    """Same step as a manual clip then Adam; with a closure (Lightning's way) the clip sees the new gradients."""
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    ref = w.detach().clone().requires_grad_(True)
    cfg = FlowOptimConfig(warmup_steps=0, grad_clip=0.5, fused=False)
    opt, _ = make_optimizer([w], cfg, 8)
    assert isinstance(opt, ClippedAdam)
    ref_opt = torch.optim.Adam([ref], lr=opt.param_groups[0]["lr"], betas=cfg.betas, amsgrad=True)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (100 * w).square().sum()
        loss.backward()
        return loss

    if use_closure:
        opt.step(closure)
    else:
        closure()
        opt.step()
    (100 * ref).square().sum().backward()
    norm = nn.utils.clip_grad_norm_([ref], 0.5)
    assert norm > 10  # the clip mattered
    ref_opt.step()
    assert torch.allclose(w, ref, atol=1e-7)
    assert w.grad.norm() == pytest.approx(0.5, rel=1e-5)


def test_expert_checks_name_the_key_the_method_and_the_shape() -> None:
    with pytest.raises(TypeError, match=r"data.params.target: Linear is not a target expert: it has no method decode"):
        check_expert(nn.Linear(2, 2), "target", "data.params.target")

    class Encoder:
        def encode(self, x):
            return x.flatten(1)[:, :3].T  # (3, B): a transposed code

    with pytest.raises(ValueError, match=r"Encoder.encode returned shape \(3, 5\) for 5 inputs; expected \(B, D\)"):
        encode_source(Encoder(), torch.zeros(5, 1, 2, 2))
    with pytest.raises(ValueError, match=r"returned shape \(3, 5\) for 5 inputs"):
        encode_target(Encoder(), torch.zeros(5, 1, 2, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert encode_source(Encoder(), torch.zeros(3, 1, 2, 2)).shape == (3, 3)
