"""Any callable on NumPy arrays as a source expert (e.g. a TensorFlow or JAX model, a scikit-learn transform).

The translation needs no gradients through the source expert, so Φ can be a black box: :class:`BlackBoxExpert`
converts the input to NumPy, calls the function batch by batch, checks the output and returns a torch tensor.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .protocols import FINGERPRINT_LENGTH, FrozenExpert

__all__ = ["BlackBoxExpert"]


def _describe(fn: Callable[..., Any]) -> str:
    """A stable name of a callable: ``module.qualname`` (of its class for callable objects)."""
    obj = fn if hasattr(fn, "__qualname__") else type(fn)
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


class BlackBoxExpert(FrozenExpert):
    """Wrap ``fn: np.ndarray (B, ...) -> array-like (B, D)`` as a source expert without gradients.

    ``encode(x)`` takes a tensor or array ``(B, ...)``, calls ``fn`` on chunks of at most ``batch_size`` rows (as
    NumPy arrays, on the CPU), checks that each result has shape ``(chunk, D)`` (``D == output_dim`` if given) and
    finite values, and returns a ``(B, D)`` tensor of ``dtype`` on the input's device. The result never requires a
    gradient: the black box is opaque to autograd.

    Arguments:
        fn: the function; its result is converted with ``np.asarray`` (TensorFlow tensors convert that way).
        output_dim: the expected width ``D`` of the output (``None``: taken from the first call).
        batch_size: the largest number of rows per call of ``fn``.
        dtype: floating dtype of the returned tensor.
        cache_key: a string identifying ``fn``'s weights (e.g. the hash or version of a model file). The
            fingerprint (:meth:`fingerprint`, the latent-cache key) cannot see inside ``fn``; it covers ``fn``'s
            name, ``output_dim`` and this key, so change the key when the model changes.

    Raises:
        ValueError: in ``encode``, for an output with the wrong batch size, width or rank, or non-finite values.
        TypeError: for a non-numeric output or input.

    Example:
        >>> expert = BlackBoxExpert(lambda a: a.reshape(len(a), -1).mean(axis=1, keepdims=True), output_dim=1)
        >>> expert.encode(torch.ones(3, 2, 2))
        tensor([[1.],
                [1.],
                [1.]])
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray], Any],
        output_dim: int | None = None,
        batch_size: int = 256,
        dtype: torch.dtype = torch.float32,
        cache_key: str | None = None,
    ) -> None:
        super().__init__()
        if not callable(fn):
            raise TypeError(f"BlackBoxExpert: expected a callable on NumPy arrays, received {type(fn).__name__}")
        for name, value in (("output_dim", output_dim), ("batch_size", batch_size)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"BlackBoxExpert: {name} must be a positive int, received {value!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"BlackBoxExpert: dtype must be a floating dtype, received {dtype}")
        if cache_key is not None and not isinstance(cache_key, str):
            raise TypeError(f"BlackBoxExpert: cache_key must be a str, received {type(cache_key).__name__}")
        self.fn = fn
        self.output_dim = output_dim
        self.batch_size = batch_size
        self.dtype = dtype
        self.cache_key = cache_key
        self._seen_dim: int | None = None  # the width of the first output, when output_dim is not given

    @property
    def dim(self) -> int | None:
        """The output width ``D``: ``output_dim``, else the width of the first output (``None`` until then)."""
        return self.output_dim if self.output_dim is not None else self._seen_dim

    @property
    def config(self) -> dict[str, Any]:
        return {"fn": _describe(self.fn), "output_dim": self.output_dim, "cache_key": self.cache_key}

    def fingerprint(self) -> str:
        """A short hex digest of ``fn``'s name, ``output_dim`` and ``cache_key`` (warns when there is no key)."""
        if self.cache_key is None:
            warnings.warn(
                f"BlackBoxExpert({_describe(self.fn)}): without cache_key the fingerprint covers only the function's "
                "name, not its weights, so a latent cache is not invalidated when the model behind it changes; "
                "pass cache_key=<hash or version of the model>",
                stacklevel=2,
            )
        config = json.dumps(self.config, sort_keys=True)
        digest = hashlib.sha256(f"class={type(self).__module__}.{type(self).__qualname__}\n{config}".encode())
        return digest.hexdigest()[:FINGERPRINT_LENGTH]

    def _call(self, chunk: np.ndarray) -> np.ndarray:
        result = self.fn(chunk)
        try:
            out = np.asarray(result)
        except (TypeError, ValueError) as e:  # ragged lists, objects without __array__
            raise TypeError(
                f"BlackBoxExpert: expected a (B, D) array-like from {_describe(self.fn)}, received "
                f"{type(result).__name__} that NumPy cannot convert: {e}"
            ) from e
        if out.dtype.kind not in "biuf":
            raise TypeError(
                f"BlackBoxExpert: expected a numeric (B, D) array from {_describe(self.fn)}, received dtype {out.dtype}"
            )
        if out.ndim != 2 or out.shape[0] != chunk.shape[0]:
            raise ValueError(
                f"BlackBoxExpert: expected an output of shape ({chunk.shape[0]}, D) from {_describe(self.fn)} for an "
                f"input of shape {chunk.shape}, received shape {out.shape}"
            )
        if self.dim is not None and out.shape[1] != self.dim:
            given = "output_dim" if self.output_dim is not None else "the width of its earlier outputs"
            raise ValueError(
                f"BlackBoxExpert: expected outputs of width {self.dim} ({given}), received shape {out.shape}"
            )
        if out.dtype.kind == "f" and not np.isfinite(out).all():
            bad = int((~np.isfinite(out)).any(axis=1).sum())
            raise ValueError(
                f"BlackBoxExpert: {_describe(self.fn)} returned non-finite values (NaN or inf) in {bad} of "
                f"{out.shape[0]} rows"
            )
        return out

    def encode(self, x: Tensor | np.ndarray) -> Tensor:
        """``fn(x)`` as a ``(B, D)`` tensor on ``x``'s device (the CPU for arrays); no gradient."""
        if isinstance(x, Tensor):
            if x.requires_grad:
                warnings.warn(
                    "BlackBoxExpert: the input requires a gradient, which cannot flow through fn", stacklevel=2
                )
            device = x.device
            array = x.detach().cpu().numpy()
        elif isinstance(x, np.ndarray):
            device, array = torch.device("cpu"), x
        else:
            raise TypeError(f"BlackBoxExpert: expected a tensor or NumPy array (B, ...), received {type(x).__name__}")
        if array.ndim == 0:
            raise ValueError("BlackBoxExpert: expected a batch (B, ...), received a scalar")
        if len(array) == 0:
            if self.dim is None:
                raise ValueError("BlackBoxExpert: received an empty batch and the output width is unknown")
            return torch.zeros(0, self.dim, dtype=self.dtype, device=device)
        chunks = []
        for i in range(0, len(array), self.batch_size):
            chunks.append(self._call(array[i : i + self.batch_size]))
            if self.dim is None:
                self._seen_dim = chunks[0].shape[1]
        out = np.concatenate(chunks, axis=0)  # (B, D)
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=device, dtype=self.dtype)

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return f"fn={_describe(self.fn)}, output_dim={self.dim}, batch_size={self.batch_size}"
