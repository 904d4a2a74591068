"""Information per layer: how much of the target code ``z_tgt`` a source representation ``z_src`` determines.

The mutual information is estimated from two held-out negative log-likelihoods (nats, summed over the
dimensions of ``z_tgt``)::

    I(z_src; z_tgt) = H(z_tgt) - H(z_tgt | z_src)
                   ~= E[NLL of an unconditional flow of z_tgt] - E[NLL of the cINN tau(z_tgt | z_src)]

Each held-out NLL is an upper bound on its entropy (the cross-entropy of the data under the model), so the
estimate is the difference of two upper bounds: it is exact only when both models are, it is not a bound
either way, and it can come out negative when the cINN fits worse than the unconditional flow (e.g. a source
that carries no information, or an under-trained cINN). Evaluate both models on the same held-out pairs, so
that the paired differences give a standard error. The unconditional flow is trained by
:func:`net2net.training.in_memory.fit_unconditional_flow` (through the one training entry point; ``metrics`` does
not import ``training``).

Example:
    >>> import torch
    >>> nll_u = torch.tensor([10.0, 11.0, 12.0])   # -log p(z_tgt) per held-out sample
    >>> nll_c = torch.tensor([7.0, 9.0, 8.0])      # -log p(z_tgt | z_src) on the same samples
    >>> information_estimate(nll_u, nll_c, dim=4)["mutual_information_nats"]
    3.0
"""

from __future__ import annotations

import logging
import math
from typing import TypedDict

import torch
from torch import Tensor

from ..flows import ConditionalINN, UnconditionalFlow, nll
from ..flows.checks import check_flat, check_float_tensor, check_tensor

__all__ = ["InformationEstimate", "heldout_nll", "information_estimate"]
log = logging.getLogger(__name__)


@torch.no_grad()
def heldout_nll(
    flow: ConditionalINN | UnconditionalFlow,
    z_tgt: Tensor,
    z_src: Tensor | None = None,
    batch_size: int = 1024,
) -> Tensor:
    """Per-sample negative log-likelihood ``-log p(z_tgt [| z_src])`` in nats (summed over dimensions), ``(N,)``.

    The flow is evaluated in eval mode without gradients and put back in its previous mode afterwards.
    Batches are moved to the flow's device; the result is on the device of ``z_tgt``.

    Arguments:
        flow: a trained :class:`~net2net.flows.ConditionalINN` (then ``z_src`` is required) or
            :class:`~net2net.flows.UnconditionalFlow` (then ``z_src`` must be ``None``).
        z_tgt: held-out target codes, ``(N, dim)``, in the flow's dtype.
        z_src: the matching conditions, ``(N, *cond_shape)``, for a cINN.
        batch_size: samples per forward pass.

    Example:
        >>> flow = UnconditionalFlow(3, n_blocks=1, hidden_dim=8)
        >>> _ = flow(torch.randn(16, 3))          # initialises ActNorm
        >>> heldout_nll(flow, torch.randn(5, 3)).shape
        torch.Size([5])
    """
    if isinstance(flow, ConditionalINN):
        if z_src is None:
            raise ValueError("heldout_nll: a ConditionalINN needs the conditions z_src (N, *cond_shape); got None")
        check_tensor(z_src, flow.cond_shape, "z_src")
    elif isinstance(flow, UnconditionalFlow):
        if z_src is not None:
            raise ValueError(
                "heldout_nll: an UnconditionalFlow takes no condition; pass z_src=None "
                "(or use a ConditionalINN for p(z_tgt | z_src))"
            )
    else:
        raise TypeError(f"heldout_nll: expected a ConditionalINN or an UnconditionalFlow, got {type(flow).__name__}")
    check_flat(z_tgt, flow.dim, "z_tgt")
    if z_src is not None and len(z_src) != len(z_tgt):
        raise ValueError(f"heldout_nll: z_tgt has {len(z_tgt)} rows but z_src has {len(z_src)}; pass matching pairs")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"heldout_nll: batch_size must be a positive int, got {batch_size!r}")

    device = next(flow.parameters()).device
    was_training = flow.training
    flow.eval()
    try:
        out = []
        for start in range(0, len(z_tgt), batch_size):
            z = z_tgt[start : start + batch_size].to(device)
            if isinstance(flow, ConditionalINN):
                assert z_src is not None  # checked above
                v, logdet = flow(z, z_src[start : start + batch_size].to(device))
            else:
                v, logdet = flow(z)
            out.append(nll(v, logdet).per_sample)
    finally:
        flow.train(was_training)
    return torch.cat(out).to(z_tgt.device)


class InformationEstimate(TypedDict):
    """The result of :func:`information_estimate` (all in nats; ``*_per_dim`` are ``None`` without ``dim``)."""

    mutual_information_nats: float  # mean of NLL_uncond - NLL_cond over the paired held-out samples
    stderr_nats: float  # standard error of that mean (sample std of the paired differences / sqrt(n))
    mutual_information_bits: float
    entropy_tgt_nats: float  # estimate (upper bound) of H(z_tgt): mean unconditional NLL
    entropy_tgt_given_src_nats: float  # estimate (upper bound) of H(z_tgt | z_src): mean cINN NLL
    entropy_tgt_nats_per_dim: float | None
    entropy_tgt_given_src_nats_per_dim: float | None
    n_samples: int


def _check_nll(x: Tensor, name: str) -> None:
    check_float_tensor(x, name, "per-sample NLLs (N,)")
    if x.dim() != 1:
        raise ValueError(f"{name}: expected per-sample NLLs of shape (N,) (from heldout_nll), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinite values")


def information_estimate(nll_uncond: Tensor, nll_cond: Tensor, dim: int | None = None) -> InformationEstimate:
    """Estimate ``I(z_src; z_tgt) = H(z_tgt) - H(z_tgt | z_src)`` from paired held-out NLLs.

    ``nll_uncond[i]`` and ``nll_cond[i]`` must belong to the same held-out pair ``(z_src[i], z_tgt[i])``
    (both from :func:`heldout_nll`). The estimate is the mean paired difference. It is a difference of two
    upper bounds on entropies, not a bound itself, and it is negative when the cINN fits worse than the
    unconditional flow; the standard error covers the sampling noise of the held-out set only, not the
    models' own bias.

    Arguments:
        nll_uncond: ``-log p(z_tgt[i])`` under the unconditional flow, ``(N,)``, ``N >= 2``.
        nll_cond: ``-log p(z_tgt[i] | z_src[i])`` under the cINN, ``(N,)``.
        dim: the number of dimensions of ``z_tgt``, for the per-dimension entropies.

    Returns:
        An :class:`InformationEstimate` dictionary.

    Example:
        >>> est = information_estimate(torch.tensor([4.0, 6.0]), torch.tensor([3.0, 3.0]), dim=2)
        >>> est["mutual_information_nats"], est["stderr_nats"], est["entropy_tgt_nats_per_dim"]
        (2.0, 1.0, 2.5)
    """
    _check_nll(nll_uncond, "nll_uncond")
    _check_nll(nll_cond, "nll_cond")
    if nll_uncond.shape != nll_cond.shape:
        raise ValueError(
            f"nll_uncond has {len(nll_uncond)} samples but nll_cond has {len(nll_cond)}: evaluate both models on "
            "the same held-out pairs"
        )
    n = len(nll_cond)
    if n < 2:
        raise ValueError(f"need at least 2 held-out samples for a standard error, got {n}")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim < 1):
        raise ValueError(f"dim must be a positive int or None, got {dim!r}")
    u, c = nll_uncond.double().cpu(), nll_cond.double().cpu()
    diff = u - c  # (N,) paired differences
    mi = float(diff.mean())
    h_u, h_c = float(u.mean()), float(c.mean())
    return InformationEstimate(
        mutual_information_nats=mi,
        stderr_nats=float(diff.std(unbiased=True)) / math.sqrt(n),
        mutual_information_bits=mi / math.log(2),
        entropy_tgt_nats=h_u,
        entropy_tgt_given_src_nats=h_c,
        entropy_tgt_nats_per_dim=None if dim is None else h_u / dim,
        entropy_tgt_given_src_nats_per_dim=None if dim is None else h_c / dim,
        n_samples=n,
    )
