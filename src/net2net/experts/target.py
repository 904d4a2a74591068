"""The trained autoencoder g = Λ∘Θ as a frozen target expert (DESIGN.md §3).

:class:`AutoencoderTarget` wraps the encoder Θ and decoder Λ of a trained
:class:`net2net.training.autoencoder_module.AutoencoderModule` behind the target-expert protocol:

- ``encode(y) -> z``: a sample of ``q(z | y)`` (the encoder is stochastic, as in the paper),
- ``encode_dist(y) -> (mean, std)`` (alias ``mean_std``): the parameters of ``q(z | y)``, for a latent cache
  that stores them and samples at training time,
- ``decode(z) -> y``: images in [-1, 1].

It loads from a Lightning checkpoint (``from_checkpoint``, the ``last.ckpt`` of a training run) or from the
``autoencoder.safetensors`` export that :func:`net2net.training.run.train_from_config` writes at the end of a
run (``from_safetensors``, encoder and decoder only, architecture in the JSON metadata). Both files are read
without unpickling code (``torch.load(weights_only=True)``, safetensors).

The architecture is described by an *autoencoder config*, a plain dict with the keys of
:data:`ARCH_KEYS`: either a preset (``image_size``, ``in_channels``, ``z_dim``, ``preset``; see
:func:`net2net.autoencoder.build_autoencoder`) or explicit ``encoder_config`` / ``decoder_config``
``target``/``params`` blocks. :func:`build_encoder_decoder` builds the modules from it; the training module uses
the same function, so a file always rebuilds the network it was trained with.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..autoencoder import Decoder, Encoder, build_autoencoder
from ..autoencoder.encoder import check_image
from ..config import instantiate_from_config
from .protocols import describe_state_mismatch

__all__ = [
    "ARCH_KEYS",
    "EXPORT_FORMAT",
    "AutoencoderTarget",
    "architecture_config",
    "build_encoder_decoder",
    "load_autoencoder_target",
]

EXPORT_FORMAT = "net2net.Autoencoder/1"  # the "format" metadata entry of autoencoder.safetensors
ARCH_KEYS = ("image_size", "in_channels", "z_dim", "preset", "encoder_config", "decoder_config")

PathLike = str | os.PathLike[str]


def architecture_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The autoencoder config (the :data:`ARCH_KEYS` entries, defaults filled in) of a parameter mapping.

    ``params`` is e.g. the ``model.params`` block of a training config or the hyper-parameters of a
    checkpoint; keys other than :data:`ARCH_KEYS` are ignored. The defaults are those of
    :func:`build_encoder_decoder`.
    """
    defaults = inspect.signature(build_encoder_decoder).parameters
    out = {k: params.get(k, defaults[k].default) for k in ARCH_KEYS}
    for k in ("encoder_config", "decoder_config"):
        if out[k] is not None:
            out[k] = json.loads(json.dumps(dict(out[k])))  # plain, JSON-serialisable copy
    return out


def build_encoder_decoder(
    image_size: int | None = None,
    in_channels: int = 3,
    z_dim: int = 128,
    preset: str = "small",
    encoder_config: Mapping[str, Any] | None = None,
    decoder_config: Mapping[str, Any] | None = None,
    key: str = "model.params",
) -> tuple[Encoder, Decoder]:
    """Encoder Θ and decoder Λ from a preset or explicit ``target``/``params`` blocks.

    A missing ``encoder_config`` or ``decoder_config`` is taken from the preset
    (``build_autoencoder(image_size, in_channels, z_dim, preset)``), which then needs ``image_size``.

    Arguments:
        image_size: side of the square images.
        in_channels: image channels.
        z_dim: latent dimension.
        preset: ``"small"`` or ``"paper"``.
        encoder_config: ``target``/``params`` block of the encoder (replaces the preset's).
        decoder_config: ``target``/``params`` block of the decoder (replaces the preset's).
        key: where these parameters sit in the configuration, for error messages.

    Raises:
        ValueError: if neither the blocks nor ``image_size`` are given, or the built modules disagree on the
            latent dimension, image size or channels.

    Example:
        >>> enc, dec = build_encoder_decoder(28, in_channels=1, z_dim=8)
        >>> dec(enc(torch.zeros(2, 1, 28, 28)).mean).shape
        torch.Size([2, 1, 28, 28])
    """
    encoder = decoder = None
    if encoder_config is not None:
        encoder = instantiate_from_config(encoder_config, key=f"{key}.encoder_config")
    if decoder_config is not None:
        decoder = instantiate_from_config(decoder_config, key=f"{key}.decoder_config")
    if encoder is None or decoder is None:
        if image_size is None:
            raise ValueError(
                f"{key}: image_size is required to build the encoder/decoder from preset {preset!r} "
                "(or give both encoder_config and decoder_config)"
            )
        preset_encoder, preset_decoder = build_autoencoder(int(image_size), int(in_channels), int(z_dim), preset)  # type: ignore[arg-type]
        encoder = preset_encoder if encoder is None else encoder
        decoder = preset_decoder if decoder is None else decoder
    for name, module in (("encoder", encoder), ("decoder", decoder)):
        if not isinstance(module, nn.Module):
            raise ValueError(f"{key}.{name}_config: expected an nn.Module, got {type(module).__name__}")
    enc_z, dec_z = getattr(encoder, "z_dim", None), getattr(decoder, "z_dim", None)
    if enc_z is not None and dec_z is not None and enc_z != dec_z:
        raise ValueError(f"{key}: the encoder produces z_dim={enc_z} but the decoder expects z_dim={dec_z}")
    enc_size, dec_size = getattr(encoder, "image_size", None), getattr(decoder, "image_size", None)
    if enc_size is not None and dec_size is not None and enc_size != dec_size:
        raise ValueError(f"{key}: the encoder takes {enc_size} px images but the decoder makes {dec_size} px images")
    enc_c, dec_c = getattr(encoder, "in_channels", None), getattr(decoder, "out_channels", None)
    if enc_c is not None and dec_c is not None and enc_c != dec_c:
        raise ValueError(f"{key}: the encoder takes {enc_c} channel(s) but the decoder makes {dec_c}")
    return encoder, decoder


def _check_state(
    expected: Mapping[str, Tensor], received: Mapping[str, Tensor], source: str, what: str = "autoencoder"
) -> None:
    """Raise a ValueError naming missing/unexpected keys and shape mismatches between two state dicts."""
    problems = describe_state_mismatch(expected, received)
    if problems:
        raise ValueError(
            f"{source}: the weights do not fit the {what} architecture: {problems}. The file was written for a "
            "different architecture (image_size, in_channels, z_dim, preset) than the one its configuration "
            "describes; retrain or pass the matching file."
        )


class AutoencoderTarget(nn.Module):
    """Frozen autoencoder g = Λ∘Θ behind the target-expert protocol (``encode``, ``encode_dist``, ``decode``).

    Always in eval mode (``train()`` keeps eval, so BatchNorm uses its running statistics when a Lightning
    module holding this expert is put in training mode) with ``requires_grad=False`` on every parameter.
    Gradients still flow to inputs that require them.

    Arguments:
        encoder: the encoder Θ, ``forward(y) -> DiagonalGaussian``.
        decoder: the decoder Λ, ``forward(z) -> images``.
        config: the autoencoder config it was built from (stored in exports; see :func:`architecture_config`).

    Example:
        >>> enc, dec = build_encoder_decoder(28, in_channels=1, z_dim=8)
        >>> g = AutoencoderTarget(enc, dec)
        >>> y = torch.zeros(2, 1, 28, 28)
        >>> mean, std = g.encode_dist(y)
        >>> g.decode(g.encode(y)).shape, mean.shape, g.training
        (torch.Size([2, 1, 28, 28]), torch.Size([2, 8]), False)
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, config: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.config: dict[str, Any] = dict(config) if config is not None else {}
        self.image_size: int | None = getattr(encoder, "image_size", None)
        self.in_channels: int | None = getattr(encoder, "in_channels", None)
        self.z_dim: int | None = getattr(encoder, "z_dim", None)
        self.requires_grad_(False)
        # the convolutions of both networks run ~1.5x faster on CPU with channels_last weights and inputs (the same
        # results to float rounding; state_dict bytes, and so fingerprints and exports, do not depend on the layout)
        self.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs lack it)
        super().train(False)

    def train(self, mode: bool = True) -> AutoencoderTarget:
        """Does nothing but keep eval mode: the expert is frozen."""
        return super().train(False)

    # -- the target-expert protocol -------------------------------------------------------------------------
    def _posterior(self, y: Tensor):
        if self.in_channels is not None:  # encoders of this package carry their input shape
            check_image(y, "AutoencoderTarget.encode", self.in_channels, self.image_size)
        return self.encoder(y.contiguous(memory_format=torch.channels_last) if y.dim() == 4 else y)

    def encode(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A sample ``z ~ q(z | y)``, ``(B, z_dim)``, of images ``y`` in [-1, 1], ``(B, C, H, W)``.

        Raises:
            ValueError: if the images do not have the expert's size or channels.
        """
        return self._posterior(y).sample(generator)

    def encode_dist(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of ``q(z | y)``, each ``(B, z_dim)``."""
        q = self._posterior(y)
        return q.mean, q.std

    mean_std = encode_dist

    def encode_mode(self, y: Tensor) -> Tensor:
        """The mean of ``q(z | y)`` (deterministic code)."""
        return self._posterior(y).mean

    def decode(self, z: Tensor) -> Tensor:
        """Images in [-1, 1], ``(B, C, H, W)``, of codes ``z`` of shape ``(B, z_dim)``."""
        return self.decoder(z).contiguous()  # channels_last inside, the usual layout out

    def forward(self, y: Tensor) -> Tensor:
        """Reconstruction ``Λ(mean of q(z | y))``."""
        return self.decode(self.encode_mode(y))

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, in_channels={self.in_channels}, z_dim={self.z_dim}"

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_state(
        cls, config: Mapping[str, Any], state: Mapping[str, Tensor], source: str = "state dict"
    ) -> AutoencoderTarget:
        """Build the architecture of ``config`` and load ``state`` (keys ``encoder.*`` and ``decoder.*``).

        Raises:
            ValueError: if the keys or shapes of ``state`` do not fit the architecture (the message names them).
        """
        arch = architecture_config(config)
        encoder, decoder = build_encoder_decoder(**arch, key=f"{source}: config")
        target = cls(encoder, decoder, arch)
        own = {k: v for k, v in target.state_dict().items()}
        _check_state(own, state, source)
        target.load_state_dict(dict(state), strict=True)
        return target.requires_grad_(False).eval()

    @classmethod
    def from_module(cls, module: nn.Module) -> AutoencoderTarget:
        """A frozen copy of the encoder and decoder of a trained :class:`AutoencoderModule`."""
        import copy

        for name in ("encoder", "decoder"):
            if not isinstance(getattr(module, name, None), nn.Module):
                raise ValueError(f"from_module: expected a module with .encoder and .decoder, got {type(module).__name__}")
        config = architecture_config(dict(getattr(module, "hparams", {})))
        return cls(copy.deepcopy(module.encoder), copy.deepcopy(module.decoder), config)  # type: ignore[arg-type]

    @classmethod
    def from_checkpoint(
        cls, path: PathLike, expected: Mapping[str, Any] | None = None, map_location: str | torch.device = "cpu"
    ) -> AutoencoderTarget:
        """Load from a Lightning checkpoint of :class:`AutoencoderModule` (e.g. ``runs/NAME/checkpoints/last.ckpt``).

        The file is read with ``torch.load(weights_only=True)``; the architecture comes from its
        ``hyper_parameters``, the weights from the ``encoder.*`` and ``decoder.*`` entries of its ``state_dict``
        (discriminator, perceptual network and optimiser states are ignored).

        Arguments:
            path: the ``.ckpt`` file.
            expected: optional architecture entries (e.g. ``{"image_size": 28, "z_dim": 64}``) the checkpoint must
                have; a different value raises a ValueError naming both.
            map_location: where to load the tensors.

        Raises:
            FileNotFoundError: if the file does not exist.
            ValueError: if it is not an autoencoder checkpoint, or its weights or architecture do not match.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"autoencoder checkpoint not found: '{p}'")
        try:
            ckpt = torch.load(p, map_location=map_location, weights_only=True)
        except Exception as e:  # unpickling errors, truncated files, non-torch files
            raise ValueError(f"cannot read '{p}' as a PyTorch checkpoint: {e}") from e
        if not isinstance(ckpt, Mapping) or "state_dict" not in ckpt:
            found = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise ValueError(
                f"'{p}' is not a Lightning checkpoint: expected a dict with 'state_dict' and 'hyper_parameters', "
                f"received {found}"
            )
        hparams = ckpt.get("hyper_parameters") or {}
        if not isinstance(hparams, Mapping) or not (
            hparams.get("image_size") is not None
            or (hparams.get("encoder_config") is not None and hparams.get("decoder_config") is not None)
        ):
            keys = sorted(hparams) if isinstance(hparams, Mapping) else type(hparams).__name__
            raise ValueError(
                f"'{p}' is not an AutoencoderModule checkpoint: expected hyper_parameters with image_size (or "
                f"encoder_config and decoder_config), received hyper_parameters {keys}"
            )
        arch = architecture_config(hparams)
        _check_expected(arch, expected, str(p))
        state = {
            k: v for k, v in ckpt["state_dict"].items() if k.startswith(("encoder.", "decoder."))
        }
        return cls.from_state(arch, state, source=str(p))

    @classmethod
    def from_safetensors(
        cls, path: PathLike, expected: Mapping[str, Any] | None = None, device: str | torch.device = "cpu"
    ) -> AutoencoderTarget:
        """Load the ``autoencoder.safetensors`` export of a training run (see :meth:`save_safetensors`).

        Raises:
            FileNotFoundError: if the file does not exist.
            ValueError: if it is not an autoencoder export, or its weights or architecture do not match.
        """
        from ..io import load_safetensors, read_safetensors_metadata

        p = Path(path)
        what = "the autoencoder weights"
        metadata = read_safetensors_metadata(p, what)  # FileNotFoundError, or ValueError naming the file
        if metadata.get("format") != EXPORT_FORMAT or "config" not in metadata:
            raise ValueError(
                f"'{p}' is not an autoencoder export: expected metadata format={EXPORT_FORMAT!r} with a 'config' "
                f"entry, received format={metadata.get('format')!r} and keys {sorted(metadata)}"
            )
        state = load_safetensors(p, what, device=str(device))
        try:
            arch = architecture_config(json.loads(metadata["config"]))
        except (json.JSONDecodeError, AttributeError, TypeError) as e:
            raise ValueError(f"'{p}': the 'config' metadata is not a JSON object: {e}") from e
        _check_expected(arch, expected, str(p))
        return cls.from_state(arch, state, source=str(p))

    def save_safetensors(self, path: PathLike, extra_metadata: Mapping[str, str] | None = None) -> Path:
        """Write the encoder and decoder weights with the architecture as JSON metadata (atomically)."""
        from ..io import atomic_save_safetensors

        metadata = {"format": EXPORT_FORMAT, "config": json.dumps(self.config, sort_keys=True)}
        metadata.update({str(k): str(v) for k, v in (extra_metadata or {}).items()})
        return atomic_save_safetensors(dict(self.state_dict()), path, metadata=metadata)


def _check_expected(arch: Mapping[str, Any], expected: Mapping[str, Any] | None, source: str) -> None:
    if not expected:
        return
    unknown = [k for k in expected if k not in ARCH_KEYS]
    if unknown:
        raise ValueError(f"expected: unknown architecture key(s) {unknown}; valid keys: {list(ARCH_KEYS)}")
    diffs = [f"{k}: expected {v!r}, received {arch.get(k)!r}" for k, v in expected.items() if arch.get(k) != v]
    if diffs:
        raise ValueError(f"{source} holds a different autoencoder architecture: " + "; ".join(diffs))


def load_autoencoder_target(path: PathLike, expected: Mapping[str, Any] | None = None) -> AutoencoderTarget:
    """:meth:`AutoencoderTarget.from_safetensors` for ``*.safetensors``, else :meth:`AutoencoderTarget.from_checkpoint`.

    ``path`` may be ``pretrained:NAME`` for weights shipped with the package (e.g.
    ``pretrained:fashion_mnist_autoencoder``, see :mod:`net2net.pretrained`).
    """
    from ..pretrained import resolve_weights

    path = resolve_weights(path)
    if str(path).endswith(".safetensors"):
        return AutoencoderTarget.from_safetensors(path, expected)
    return AutoencoderTarget.from_checkpoint(path, expected)
