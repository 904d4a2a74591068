"""BigGAN as a frozen target expert, with the dequantisation VAE of Tab. S4 (supplementary G.2).

The paper translates a sentence encoder into the latent space of a pretrained BigGAN. A BigGAN sample is
``Λ(z̃, h)`` with noise ``z̃`` and the class embedding ``h = W·c`` of a one-hot class vector ``c``. Since ``h``
takes only K discrete values, a cINN trained on ``[z̃, h]`` would collapse onto them; the paper therefore passes
``h`` through a small fully connected VAE and uses its *stochastic reconstruction* ``ĥ`` (Eq. 24)::

    z_tgt = [z̃, ĥ]        z̃ ∈ R^dim_z (truncated normal),  ĥ ~ VAE(h) ∈ R^embed_dim

The pieces:

- :class:`BigGAN` / :class:`BigGANConfig`: the BigGAN-deep generator in the layout of the
  ``pytorch-pretrained-BigGAN`` package (same ``config.json`` fields, same state-dict names, spectral norms
  evaluated as ``torch.nn.utils.spectral_norm`` does in eval mode), so that a directory holding that package's
  ``config.json`` and ``pytorch_model.bin`` (or ``model.safetensors``) loads with
  :meth:`BigGAN.from_pretrained`. Any size can be built; the tests use tiny randomly initialised ones: the
  released weights cannot be had offline, so loading them has been checked against the package's names and
  shapes, not against the files themselves.
- :class:`DequantizationVAE`: Tab. S4, trained on the K class embeddings (the rows of ``W``) by
  ``net2net train configs/biggan/dequantization_vae.yaml`` (:mod:`net2net.training.dequantization_module`), with
  :meth:`DequantizationVAE.class_accuracy` to check that ``ĥ`` keeps the class.
- :class:`BigGANTarget`: the frozen target expert. ``decode(z_tgt)`` gives images in [-1, 1]; ``split`` /
  ``join`` convert between ``z_tgt`` and ``(z̃, ĥ)``; :meth:`BigGANTarget.synthetic_pairs` samples training
  pairs (images, z_tgt, labels): a source expert applied to the images gives the cINN's condition (G.2).

A GAN has no encoder: :class:`BigGANTarget` has no ``encode`` attribute (the target-expert protocol makes it
optional for generators, DESIGN.md §3), so ``hasattr(target, "encode")`` is False and calling it raises an
``AttributeError`` that says so.

Dimensions: BigGAN-deep has ``dim_z = 128``, so ``z_tgt`` has 256 entries. The paper's 268 = 140 + 128 comes
from the non-deep BigGAN 256 used by the original code, whose 140-d noise is split into chunks over its blocks;
that architecture is not implemented here.

Modules: :mod:`.generator` (the BigGAN-deep architecture and its files), :mod:`.dequantization` (the VAE of
Tab. S4; it is trained with ``net2net train`` through :mod:`net2net.training.dequantization_module`), :mod:`.expert` (the
target expert), :mod:`.validation` (argument checks and state-dict reading shared by the three).

Files are read without unpickling code: ``torch.load(weights_only=True)`` or safetensors.
"""

from __future__ import annotations

from .dequantization import VAE_FORMAT, VAE_NAME, DequantizationVAE
from .expert import BigGANTarget, truncated_noise
from .generator import (
    CONFIG_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_NAME,
    BigGAN,
    BigGANBatchNorm,
    BigGANConfig,
    GenBlock,
    SelfAttention,
    SNConv2d,
    SNLinear,
)
from .validation import WeightsNotFoundError

__all__ = [
    "CONFIG_NAME",
    "SAFE_WEIGHTS_NAME",
    "VAE_FORMAT",
    "VAE_NAME",
    "WEIGHTS_NAME",
    "BigGAN",
    "BigGANBatchNorm",
    "BigGANConfig",
    "BigGANTarget",
    "DequantizationVAE",
    "GenBlock",
    "SNConv2d",
    "SNLinear",
    "SelfAttention",
    "WeightsNotFoundError",
    "truncated_noise",
]
