"""Inference with a trained translation: ``translate`` (Eq. 7), ``residual``, ``recombine`` (Eq. 6), ``transfer``.

A :class:`Net2Net` holds the frozen source expert Φ, the frozen target expert (Θ, Λ) and the trained cINN τ:

- ``translate(x, n)``: ``Λ(τ(v | Φ(x)))`` for ``n`` draws ``v ~ N(0, I)``: ``n`` images per input;
- ``residual(y, x)``: ``v = τ⁻¹(Θ(y) | Φ(x))``: what ``Φ(x)`` does not determine about ``y``;
- ``recombine(y, x, x_y)``: ``Λ(τ(τ⁻¹(Θ(y) | Φ(x_y)) | Φ(x)))``: keep ``y``'s residual, swap its condition for
  ``x``'s (exemplar-guided synthesis, shape/appearance swap, attribute change);
- ``transfer(y, from_domain, to_domain)``: ``recombine`` with domain labels as conditions (unpaired translation
  between domains, supplementary Sec. D).

``Net2Net.from_run(run_dir)`` rebuilds one from a training run of a ``TranslationDataModule`` config (its
``config.yaml`` names the experts, ``cinn.safetensors`` holds τ), or of ``net2net fit`` (no experts: the inputs
and outputs are embeddings, standardised inside with the run's ``standardization.safetensors``).

Without a source expert, ``x`` *is* ``z_src`` (raw embeddings, ``(B, D_src)``); without a target expert, ``y`` is
``z_tgt`` and what would be decoded images are raw ``z_tgt`` embeddings. So the same calls serve both:

- ``sample(x, n)``: ``n`` codes ``z_tgt ~ p(z_tgt | z_src)`` per input, ``(B, n, D_tgt)`` (raw embeddings);
- ``log_prob(y, x)``: ``log p(z_tgt | z_src)`` in nats, ``(B,)``; with a standardisation, in the raw space
  (its log-determinant included), so scores of different runs on the same data compare.
A run folder may come from someone else, and its config is code (import paths): ``from_run`` imports
nothing outside ``net2net`` unless told which modules to trust (``trust=[...]``) or to trust the whole config
(``trust_config=True``); see docs/security.md. Runs of :class:`~net2net.training.translator.TranslatorModule` hold any
translator in ``translator.safetensors``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor, nn

from ..config import instantiate, resolve_run_paths, trusted_modules
from ..data.standardization import Standardization
from ..flows import ConditionalINN, load_cinn
from ..training.runs import resolve_run
from ..translators import Translator, load_translator

__all__ = ["Net2Net"]


class Net2Net(nn.Module):
    """A trained translation τ between a source expert Φ and a target expert (Θ, Λ).

    Arguments:
        source: ``encode(x) -> z_src`` (images, labels, captions, ...); ``None``: inputs are ``z_src`` themselves.
        target: ``decode(z) -> images`` and, for ``residual``/``recombine``, ``encode``/``encode_dist``; ``None``:
            targets are ``z_tgt`` embeddings.
        tau: the trained :class:`net2net.flows.ConditionalINN`, or any :class:`net2net.translators.Translator`
            (the deterministic MLP has no residual, so ``residual``/``recombine`` raise ``MissingCapability``).
        standardization: per-dimension standardisation τ was trained under (fit runs); applied inside.

    Example:
        >>> model = Net2Net.from_run("runs/text2image")  # doctest: +SKIP
        >>> model.translate(["a pair of running shoes"], n=8).shape  # doctest: +SKIP
        torch.Size([1, 8, 1, 28, 28])
        >>> emb = Net2Net.from_run("runs/my-embeddings")  # a net2net fit run  # doctest: +SKIP
        >>> emb.sample(z_text, n=4).shape, emb.log_prob(z_image, z_text).shape  # doctest: +SKIP
        (torch.Size([2, 4, 64]), torch.Size([2]))
    """

    def __init__(
        self, source: Any, target: Any, tau: ConditionalINN | Translator, standardization: Standardization | None = None
    ) -> None:
        super().__init__()
        self.source, self.target, self.tau = source, target, tau.eval()
        self.tau.requires_grad_(False)
        self.standardization = standardization

    @classmethod
    def from_run(
        cls,
        run_dir: str | os.PathLike[str],
        cinn_file: str = "cinn.safetensors",
        *,
        trust: Sequence[str] = (),
        trust_config: bool = False,
    ) -> Net2Net:
        """Rebuild from a finished training run: experts from ``config.yaml``'s ``data.params.source/target``.

        Arguments:
            run_dir: the run folder (``config.yaml`` and ``cinn_file``), or a run name such as ``"text2image"``: the
                newest finished run of that name under ``$NET2NET_CACHE/runs`` (:func:`net2net.training.runs.resolve_run`).
            cinn_file: τ's weights in the folder (read as data only, see :func:`net2net.flows.load_cinn`).
            trust: modules besides ``net2net`` that the config may import (e.g. ``["mypkg"]`` for
                ``mypkg.experts.MyExpert``), like ``trust_remote_code`` in the Hugging Face libraries.
            trust_config: import whatever the config names (only for run folders you made or checked).

        Raises:
            FileNotFoundError: ``run_dir`` has no ``config.yaml`` or no ``cinn_file``.
            net2net.config.UntrustedTargetError: the config names a module outside ``net2net`` and ``trust``.
            net2net.config.ConfigError: the config is not a translation run's, or an expert cannot be built.
            ValueError: the weights file is corrupt or does not fit.
        """
        run = resolve_run(run_dir)  # a path, or a run name: the newest finished run of that name
        cfg_file = run / "config.yaml"
        if not cfg_file.is_file():
            raise FileNotFoundError(f"{run} is not a training run folder (no config.yaml)")
        weights = run / cinn_file
        if not weights.is_file() and not (run / "translator.safetensors").is_file():
            raise FileNotFoundError(f"{run} has no {cinn_file}: the run has not finished (train it to the end)")
        try:
            cfg = OmegaConf.to_container(OmegaConf.load(cfg_file), resolve=True)
        except (yaml.YAMLError, OmegaConfBaseException, OSError) as e:
            raise ValueError(f"{cfg_file}: cannot read the run's config: {str(e).splitlines()[0]}") from e
        data = cfg.get("data") if isinstance(cfg, dict) else None
        params = (data.get("params") if isinstance(data, dict) else None) or {}
        if not isinstance(params, dict):
            raise ValueError(f"{cfg_file}: data.params is not a mapping (not a translation run)")
        params = resolve_run_paths(params, run)
        if not weights.is_file() and (run / "translator.safetensors").is_file():
            tau: ConditionalINN | Translator = load_translator(run / "translator.safetensors")
        else:
            tau = load_cinn(weights)
        if (run / "standardization.safetensors").is_file():  # a net2net fit run: no experts
            return cls(None, None, tau, Standardization.load(run / "standardization.safetensors"))
        if not isinstance(params.get("source"), dict) or not isinstance(params.get("target"), dict):
            raise ValueError(f"{cfg_file}: data.params has no source/target expert blocks (not a translation run)")
        policy = contextlib.nullcontext() if trust_config else trusted_modules(trust)
        with policy:
            source = instantiate(params["source"], f"{cfg_file}: data.params.source")
            target = instantiate(params["target"], f"{cfg_file}: data.params.target")
        return cls(source, target, tau)

    # -- codes -----------------------------------------------------------------------------------------
    def _device(self) -> torch.device:
        return next(self.tau.parameters()).device

    def _codes(self, z: Any, dim: int, what: str) -> Tensor:
        """Raw embeddings given by the user as ``(B, dim)`` float32 on τ's device."""
        if isinstance(z, np.ndarray):
            z = torch.from_numpy(np.asarray(z))
        if not isinstance(z, Tensor):
            raise TypeError(
                f"{what}: expected a (B, {dim}) tensor or NumPy array of embeddings, got {type(z).__name__}"
            )
        if z.dim() != 2 or z.shape[1] != dim:
            raise ValueError(f"{what}: expected shape (B, {dim}), got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise TypeError(f"{what}: expected floating-point embeddings, got {z.dtype}")
        return z.to(self._device(), torch.float32)

    @torch.no_grad()
    def encode_source(self, x: Any) -> Tensor:
        """``z_src = Φ(x)`` on τ's device (standardised; without a source expert ``x`` is ``z_src``)."""
        if self.source is None:
            z = self._codes(x, int(self.tau.cond_shape[0]), "z_src")
        else:
            z = self.source.encode(x.to(self._device()) if isinstance(x, Tensor) else x)
            z = z.to(self._device(), torch.float32)
        return self.standardization.source(z) if self.standardization is not None else z

    @torch.no_grad()
    def encode_target(self, y: Any, use_mean: bool = True) -> Tensor:
        """``z_tgt = Θ(y)``: the mean of a stochastic encoder (``use_mean``) or a sample; without a target expert
        ``y`` is ``z_tgt`` (standardised here)."""
        if self.target is None:
            z = self._codes(y, self.tau.dim, "z_tgt")
            return self.standardization.target(z) if self.standardization is not None else z
        if not hasattr(self.target, "encode"):
            raise TypeError(f"the target expert {type(self.target).__name__} has no encoder; residuals need one")
        y = y.to(self._device())
        if use_mean and hasattr(self.target, "encode_dist"):
            return self.target.encode_dist(y)[0].float()
        return self.target.encode(y).float()

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """Images ``Λ(z)`` in [-1, 1]; without a target expert, the raw ``z_tgt`` embeddings."""
        if self.target is None:
            return self.standardization.target_inverse(z) if self.standardization is not None else z
        return self.target.decode(z).clamp(-1, 1)

    # -- the four operations -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, x: Any, n: int = 8, temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        """``n`` target codes ``z_tgt ~ p(z_tgt | Φ(x))`` per input, ``(B, n, D_tgt)``: raw embeddings for a fit run,
        the target expert's codes otherwise (``translate`` decodes them)."""
        z = self.tau.sample(self.encode_source(x), n_samples=n, temperature=temperature, generator=generator)
        if self.target is None and self.standardization is not None:
            z = self.standardization.target_inverse(z)  # (B, n, D) broadcasts over the last dim
        return z

    @torch.no_grad()
    def log_prob(self, y: Any, x: Any | None = None) -> Tensor:
        """``log p(Θ(y) | Φ(x))`` in nats, ``(B,)``: does this target fit this source? With a standardisation the
        density is that of the raw embeddings (its log-determinant added)."""
        lp = self.tau.log_prob(self.encode_target(y), self.encode_source(y if x is None else x))
        if self.standardization is not None:
            lp = lp + self.standardization.target_log_det
        return lp

    @torch.no_grad()
    def translate(
        self, x: Any, n: int = 8, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """Eq. 7: ``n`` translations of each input, ``(B, n, C, H, W)``."""
        if self.target is None:
            return self.sample(x, n, temperature, generator)
        z = self.sample(x, n, temperature, generator)  # (B, n, D)
        images = self.decode(z.flatten(0, 1))  # (B * n, C, H, W)
        return images.view(z.shape[0], n, *images.shape[1:])

    @torch.no_grad()
    def residual(self, y: Tensor, x: Any | None = None) -> Tensor:
        """``v = τ⁻¹(Θ(y) | Φ(x))``, ``(B, D)``; ``x`` defaults to ``y`` (for sources that read the image itself)."""
        return self.tau.residual(self.encode_target(y), self.encode_source(y if x is None else x))

    @torch.no_grad()
    def recombine(self, y: Tensor, x: Any, x_y: Any | None = None) -> Tensor:
        """Eq. 6: ``Λ(τ(v_y | Φ(x)))`` with ``v_y = τ⁻¹(Θ(y) | Φ(x_y))``: ``y``'s residual under ``x``'s condition.

        Arguments:
            y: exemplar images ``(B, C, H, W)`` whose residual is kept.
            x: new conditions, ``B`` of them (or one, broadcast over the exemplars).
            x_y: ``y``'s own conditions (default ``y`` itself, for sources that read the image).
        """
        v = self.residual(y, x_y)
        z_src = self.encode_source(x)
        if z_src.shape[0] == 1 and v.shape[0] > 1:
            z_src = z_src.expand(v.shape[0], *z_src.shape[1:])
        if z_src.shape[0] != v.shape[0]:
            raise ValueError(f"recombine: {v.shape[0]} exemplars but {z_src.shape[0]} conditions (give B or 1)")
        return self.decode(self.tau.from_residual(v, z_src))

    @torch.no_grad()
    def transfer(self, y: Tensor, from_domain: int | Tensor, to_domain: int | Tensor) -> Tensor:
        """Unpaired translation (Sec. D): ``recombine`` with domain labels; the source must encode labels."""
        b = y.shape[0]

        def labels(d: int | Tensor) -> Tensor:
            t = torch.as_tensor(d, dtype=torch.long)
            return t.expand(b) if t.dim() == 0 else t

        return self.recombine(y, labels(to_domain), x_y=labels(from_domain))
