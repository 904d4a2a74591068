"""The expert protocols of DESIGN.md §3, the frozen-expert base class and expert fingerprints.

A *source expert* Φ maps an input ``x`` (images, sentences, labels, ...) to a representation ``z_src``; a
*target expert* has ``encode(y) -> z_tgt`` and ``decode(z_tgt) -> y``. Both are frozen: in eval mode for good
and without trainable parameters, so that a Lightning module holding them can call ``train()`` freely.

- :class:`SourceExpert`, :class:`TargetExpert`: :class:`typing.Protocol` classes, runtime-checkable, so
  ``isinstance(expert, SourceExpert)`` tells whether an object has the required methods (not their signatures).
- :class:`FrozenExpert`: an ``nn.Module`` base whose ``train()`` keeps eval mode and whose parameters, including
  those of every submodule assigned to it, have ``requires_grad=False``. :func:`freeze` does the same once for any
  module.
- :func:`expert_fingerprint`: a short hex digest of an expert's kind, configuration and weights, the key of a
  latent cache, so that changed weights invalidate cached latents.
- :func:`is_stochastic`: whether an expert's output is random in a way a cache cannot store (the deformed
  encoder Θ∘d of supplementary Sec. C draws a new deformation on every call); such sources are encoded live.
  A VAE encoder that returns a sample is *not* stochastic in this sense when it exposes ``encode_dist``: the cache
  stores the mean and standard deviation and samples at training time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "FINGERPRINT_LENGTH",
    "FrozenExpert",
    "SourceExpert",
    "TargetExpert",
    "check_code",
    "check_expert",
    "describe_state_mismatch",
    "expert_fingerprint",
    "freeze",
    "hash_state_dict",
    "is_stochastic",
]

FINGERPRINT_LENGTH = 16  # hex characters (64 bits) of the sha256 digest kept by expert_fingerprint


@runtime_checkable
class SourceExpert(Protocol):
    """A frozen model whose representation conditions the translation (Φ).

    ``encode(x)`` returns ``(B, D_src)`` or, for spatial codes, ``(B, C, H, W)``. Optional attributes read by the
    rest of the package: ``stochastic`` (see :func:`is_stochastic`), ``encode_dist(x) -> (mean, std)``,
    ``fingerprint() -> str`` (see :func:`expert_fingerprint`).
    """

    def encode(self, x: Any) -> Tensor: ...


@runtime_checkable
class TargetExpert(Protocol):
    """A frozen autoencoder or generator (Θ, Λ) whose code space the cINN translates into.

    ``decode(z) -> images in [-1, 1], (B, C, H, W)``; an autoencoder also has ``encode(y) -> (B, D_tgt)`` (and
    ``encode_dist(y) -> (mean, std)`` when stochastic). A generator without an encoder (a GAN) is a target expert
    too (DESIGN.md §3: ``encode`` is optional for generators); it is trained on synthetic pairs (Φ(G(z)), z). The
    runtime check therefore looks for ``decode`` only.
    """

    def decode(self, z: Tensor) -> Tensor: ...


def freeze(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode and set ``requires_grad=False`` on all its parameters (in place).

    A later ``module.train()`` switches a plain module back to training mode; hold it in a :class:`FrozenExpert`
    (whose ``train()`` keeps its children in eval mode) for a freeze that lasts.

    Example:
        >>> net = freeze(nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)))
        >>> net.training, any(p.requires_grad for p in net.parameters())
        (False, False)
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"freeze: expected an nn.Module, received {type(module).__name__}")
    module.requires_grad_(False)
    return module.eval()


class FrozenExpert(nn.Module):
    """Base class of frozen experts: always in eval mode, no parameter requires a gradient.

    Every submodule or parameter assigned as an attribute (``self.model = net``) is frozen at assignment, in place;
    ``train(mode)`` keeps the whole tree in eval mode, so BatchNorm keeps its running statistics and dropout stays
    off when a Lightning module holding the expert is put in training mode. Gradients still flow to inputs that
    require them.

    Example:
        >>> class Linear(FrozenExpert):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = nn.Linear(3, 2)
        ...     def encode(self, x):
        ...         return self.net(x)
        >>> e = Linear().train()
        >>> e.training, e.net.weight.requires_grad, isinstance(e, SourceExpert)
        (False, False, True)
    """

    #: True when ``encode`` draws fresh randomness a latent cache cannot store (see :func:`is_stochastic`).
    stochastic: bool = False

    def __init__(self) -> None:
        super().__init__()
        super().train(False)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, nn.Module):
            freeze(value)
        elif isinstance(value, nn.Parameter):
            value.requires_grad_(False)
        super().__setattr__(name, value)

    def add_module(self, name: str, module: nn.Module | None) -> None:
        if module is not None:
            freeze(module)
        super().add_module(name, module)

    def register_parameter(self, name: str, param: nn.Parameter | None) -> None:
        if param is not None:
            param.requires_grad_(False)
        super().register_parameter(name, param)

    def train(self, mode: bool = True) -> FrozenExpert:
        """Does nothing but keep eval mode: the expert is frozen."""
        return super().train(False)


def check_expert(expert: object, role: str, key: str, needs: tuple[str, ...] = ()) -> object:
    """Check that a config's expert has the methods of its protocol; returns it.

    Arguments:
        expert: the instantiated object.
        role: ``"source"`` (needs ``encode``) or ``"target"`` (needs ``decode``, and ``encode`` or ``encode_dist``
            where ``needs`` says so).
        key: the config key that built it, named in the error.
        needs: further methods required by the caller (e.g. ``("encode",)`` for a target encoded into a cache).

    Raises:
        TypeError: naming ``key``, the class, the missing method and what it must do.

    Example:
        >>> check_expert(nn.Linear(2, 2), "source", "data.params.source")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: data.params.source: Linear is not a source expert: it has no method encode(x) -> z_src ...
    """
    required = {"source": ("encode",), "target": ("decode",)}.get(role)
    if required is None:
        raise ValueError(f"check_expert: role must be 'source' or 'target', got {role!r}")
    what = {
        "encode": "encode(x) -> z_src of shape (B, D) or (B, C, H, W)" if role == "source" else
        "encode(y) -> z_tgt of shape (B, D) (or encode_dist(y) -> (mean, std))",
        "decode": "decode(z) -> y",
    }  # fmt: skip
    for method in (*required, *needs):
        if method == "encode" and role == "target" and callable(getattr(expert, "encode_dist", None)):
            continue
        if not callable(getattr(expert, method, None)):
            raise TypeError(
                f"{key}: {type(expert).__name__} is not a {role} expert: it has no method {what.get(method, method)}; "
                "wrap the model (e.g. net2net.experts.LayerExpert) or add the method"
            )
    return expert


def check_code(z: Any, batch: int, who: str, spatial: bool = True) -> Tensor:
    """Check an expert's output for a batch of ``batch`` inputs: a float tensor ``(batch, D)`` (or, where
    ``spatial``, ``(batch, C, H, W)``); returns it. The error names ``who`` and the shape received."""
    expected = "(B, D) or (B, C, H, W)" if spatial else "(B, D)"
    if not isinstance(z, Tensor):
        raise TypeError(f"{who} returned {type(z).__name__}, expected a Tensor of shape {expected}")
    if z.dim() not in ((2, 4) if spatial else (2,)) or z.shape[0] != batch:
        raise ValueError(
            f"{who} returned shape {tuple(z.shape)} for {batch} inputs; expected {expected} with B={batch}"
        )
    if not z.is_floating_point():
        raise TypeError(f"{who} returned {z.dtype} values, expected floating point")
    return z


def is_stochastic(expert: object) -> bool:
    """Whether ``expert.encode`` must run live (``expert.stochastic`` is true), i.e. cannot be cached."""
    return bool(getattr(expert, "stochastic", False))


def _tensor_bytes(t: Tensor) -> bytes:
    """The raw bytes of a tensor of any dtype (bfloat16 included), in row-major order."""
    t = t.detach().to("cpu").contiguous().reshape(-1)  # (N,)
    return t.view(torch.uint8).numpy().tobytes() if t.numel() else b""


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def hash_state_dict(h: Any, state: Mapping[str, Tensor]) -> None:
    """Feed the name, dtype, shape and bytes of every tensor of ``state`` (in key order) into hash ``h``."""
    for key, value in state.items():
        if not isinstance(value, Tensor):
            h.update(f"{key}={_json(value)}\n".encode())
            continue
        h.update(f"{key}:{value.dtype}:{tuple(value.shape)}\n".encode())
        h.update(_tensor_bytes(value))


def expert_fingerprint(expert: object) -> str:
    """A stable short hex digest of an expert's kind, configuration and weights (a latent-cache key).

    If ``expert`` defines ``fingerprint()``, its result is returned. Otherwise the sha256 digest covers the class
    (module and qualified name), ``expert.config`` if it is a mapping (JSON with sorted keys), and, for an
    ``nn.Module``, the name, dtype, shape and bytes of every ``state_dict`` entry in key order; the first
    :data:`FINGERPRINT_LENGTH` hex characters are returned. Two experts built the same way with the same weights
    give the same fingerprint, in any process; changing one weight changes it.

    Arguments:
        expert: any expert object.

    Example:
        >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> b.load_state_dict(a.state_dict())
        <All keys matched successfully>
        >>> expert_fingerprint(a) == expert_fingerprint(b), len(expert_fingerprint(a))
        (True, 16)
    """
    custom = getattr(expert, "fingerprint", None)
    if callable(custom):
        value = custom()
        if not isinstance(value, str) or not value:
            raise TypeError(
                f"expert_fingerprint: {type(expert).__name__}.fingerprint() must return a non-empty str, "
                f"received {value!r}"
            )
        return value
    h = hashlib.sha256()
    cls = type(expert)
    h.update(f"class={cls.__module__}.{cls.__qualname__}\n".encode())
    config = getattr(expert, "config", None)
    if isinstance(config, Mapping):
        h.update(f"config={_json(dict(config))}\n".encode())
    if isinstance(expert, nn.Module):
        hash_state_dict(h, expert.state_dict())
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def describe_module(obj: object, attribute: str = "config") -> tuple[str, dict[str, Any] | None]:
    """``obj``'s class as an import path, and a copy of its ``attribute`` mapping (``None`` when it has none).

    How an expert that wraps another model names it in its own ``config``, and so in its fingerprint.

    Example:
        >>> describe_module(nn.Linear(2, 3))
        ('torch.nn.modules.linear.Linear', None)
    """
    cls = type(obj)
    value = getattr(obj, attribute, None)
    return f"{cls.__module__}.{cls.__qualname__}", dict(value) if isinstance(value, Mapping) else None


def describe_state_mismatch(
    expected: Mapping[str, Tensor], received: Mapping[str, Any], limit: int = 5
) -> str:
    """What differs between the state dict a model expects and the tensors a file holds; ``""`` if they fit.

    ``received`` maps names to tensors or to shapes (e.g. read from a safetensors header without loading).
    The text lists shape mismatches (up to ``limit``), then missing and unexpected keys with examples.

    Example:
        >>> describe_state_mismatch({"w": torch.zeros(2, 3)}, {"w": (3, 2), "b": (2,)})
        "shape mismatch for 'w': expected (2, 3), received (3, 2); 1 unexpected key(s), e.g. 'b'"
    """

    def shape(v: Any) -> tuple[int, ...]:
        return tuple(v.shape) if isinstance(v, Tensor) else tuple(v)

    missing = [k for k in expected if k not in received]
    unexpected = [k for k in received if k not in expected]
    shapes = [
        (k, tuple(expected[k].shape), shape(received[k]))
        for k in expected
        if k in received and tuple(expected[k].shape) != shape(received[k])
    ]
    problems = [f"shape mismatch for {k!r}: expected {e}, received {r}" for k, e, r in shapes[:limit]]
    if len(shapes) > limit:
        problems.append(f"and {len(shapes) - limit} more shape mismatches")
    if missing:
        problems.append(
            f"{len(missing)} missing key(s), e.g. "
            + ", ".join(f"{k!r} (expected shape {tuple(expected[k].shape)})" for k in missing[:3])
        )
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s), e.g. " + ", ".join(repr(k) for k in unexpected[:3]))
    return "; ".join(problems)
