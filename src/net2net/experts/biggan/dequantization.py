"""The dequantisation VAE of Tab. S4 (supplementary G.2): a continuous, stochastic version of BigGAN's class
embedding. It is trained by ``net2net train`` with :class:`net2net.training.dequantization_module.DequantizationVAEModule`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ...autoencoder.encoder import DiagonalGaussian
from ...io import atomic_save_safetensors, read_safetensors_metadata
from .validation import PathLike, check_flat, check_state, read_state_dict

__all__ = ["VAE_FORMAT", "VAE_NAME", "DequantizationVAE"]

VAE_NAME = "dequantization_vae.safetensors"  # optional, beside the generator files
VAE_FORMAT = "net2net.DequantizationVAE/1"  # the "format" metadata entry of a saved VAE


class _MLP(nn.Module):
    """``hidden_layers`` × (Linear, LeakyReLU(0.01)), then Linear → out_dim (no output activation)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, hidden_layers: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for k in range(hidden_layers):
            layers += [nn.Linear(in_dim if k == 0 else hidden_dim, hidden_dim), nn.LeakyReLU(0.01)]
        layers.append(nn.Linear(hidden_dim, out_dim))
        self.main = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.main(x)


class DequantizationVAE(nn.Module):
    """The fully connected VAE of Tab. S4: a continuous, stochastic version ``ĥ`` of a class embedding ``h``.

    Encoder: ``hidden_layers`` × (FC, LReLU) → FC back to ``in_dim``; the mean and the log-variance each come from
    an MLP of the same shape on that output; decoder: ``hidden_layers + 1`` × (FC, LReLU) → FC → ``in_dim``.
    The defaults are the paper's (128 → 4096 wide, 3 and 4 hidden layers, LReLU slope 0.01, 128-d latent). The
    output layers have no activation (the table lists LReLU after them; an LReLU output could not reproduce the
    negative entries of h); this is how the original code builds it, and its module names (``encoder.main.0``,
    ``mu_layer``, ``logvar_layer``, ``decoder``) are used here too.

    Arguments:
        in_dim: dimension of the class embedding h.
        z_dim: latent dimension.
        hidden_dim: width of the hidden layers.
        hidden_layers: hidden layers of the encoder and of each head (the decoder has one more).

    Example:
        >>> vae = DequantizationVAE(in_dim=8, z_dim=4, hidden_dim=16).eval()
        >>> h = torch.randn(5, 8)
        >>> vae.sample(h).shape, bool((vae.encode(h).kl() >= 0).all())
        (torch.Size([5, 8]), True)
    """

    def __init__(self, in_dim: int = 128, z_dim: int = 128, hidden_dim: int = 4096, hidden_layers: int = 3) -> None:
        super().__init__()
        sizes = {"in_dim": in_dim, "z_dim": z_dim, "hidden_dim": hidden_dim, "hidden_layers": hidden_layers}
        for name, value in sizes.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DequantizationVAE: expected a positive int {name}, received {value!r}")
        self.in_dim, self.z_dim, self.hidden_dim, self.hidden_layers = in_dim, z_dim, hidden_dim, hidden_layers
        self.encoder = _MLP(in_dim, hidden_dim, in_dim, hidden_layers)
        self.mu_layer = _MLP(in_dim, hidden_dim, z_dim, hidden_layers)
        self.logvar_layer = _MLP(in_dim, hidden_dim, z_dim, hidden_layers)
        self.decoder = _MLP(z_dim, hidden_dim, in_dim, hidden_layers + 1)

    @property
    def config(self) -> dict[str, int]:
        """The constructor arguments."""
        names = ("in_dim", "z_dim", "hidden_dim", "hidden_layers")
        return {name: getattr(self, name) for name in names}

    def encode(self, h: Tensor) -> DiagonalGaussian:
        """The posterior ``q(z | h)`` of class embeddings ``h`` ``(B, in_dim)``."""
        e = self.encoder(check_flat(h, "DequantizationVAE.encode", self.in_dim, "class embeddings"))
        return DiagonalGaussian(self.mu_layer(e), self.logvar_layer(e))

    def decode(self, z: Tensor) -> Tensor:
        """Embeddings ``(B, in_dim)`` of latents ``z`` ``(B, z_dim)``."""
        return self.decoder(check_flat(z, "DequantizationVAE.decode", self.z_dim, "latents"))

    def sample(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The stochastic reconstruction ``ĥ = decode(z)``, ``z ~ q(z | h)``: ``(B, in_dim)``."""
        return self.decode(self.encode(h).sample(generator))

    def reconstruct(self, h: Tensor) -> Tensor:
        """The deterministic reconstruction ``decode(mean of q(z | h))``."""
        return self.decode(self.encode(h).mean)

    def forward(self, h: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Same as :meth:`sample`."""
        return self.sample(h, generator)

    def loss(
        self, h: Tensor, kl_weight: float = 1.0, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Negative ELBO ``‖h − ĥ‖² + kl_weight · KL(q(z | h) ‖ N(0, I))``, each summed over dimensions and
        averaged over the batch.

        ``kl_weight`` sets how much noise ``ĥ`` keeps relative to the spread of the embeddings: too large and
        ``ĥ`` forgets the class, too small and it barely dequantises. Check a trained VAE with
        :meth:`class_accuracy`.

        Returns:
            the loss (a scalar) and its parts ``{"rec", "kl"}`` (detached).
        """
        q = self.encode(h)
        h_hat = self.decode(q.sample(generator))
        rec = (h - h_hat).square().sum(1).mean()
        kl = q.kl().mean()
        return rec + kl_weight * kl, {"rec": rec.detach(), "kl": kl.detach()}

    @torch.no_grad()
    def class_accuracy(
        self, embeddings: Tensor, samples_per_class: int = 8, generator: torch.Generator | None = None
    ) -> float:
        """Fraction of samples ``ĥ`` of each class embedding whose nearest class embedding is the right one.

        Arguments:
            embeddings: all class embeddings ``(K, in_dim)`` (e.g. :meth:`BigGAN.class_embeddings`).
            samples_per_class: samples drawn per class.
            generator: for reproducible samples.
        """
        check_flat(embeddings, "DequantizationVAE.class_accuracy", self.in_dim, "class embeddings")
        h = embeddings.repeat_interleave(samples_per_class, dim=0)  # (K·S, E)
        nearest = torch.cdist(self.sample(h, generator), embeddings).argmin(1)  # (K·S,)
        target = torch.arange(len(embeddings), device=h.device).repeat_interleave(samples_per_class)
        return float((nearest == target).float().mean())

    # -- files ----------------------------------------------------------------------------------------------------
    def save(self, path: PathLike, metadata: Mapping[str, str] | None = None) -> Path:
        """Write the weights as safetensors with the architecture and ``metadata`` (strings) as metadata
        (atomically)."""
        entries = {**(metadata or {}), "format": VAE_FORMAT, "config": json.dumps(self.config, sort_keys=True)}
        return atomic_save_safetensors(dict(self.state_dict()), path, metadata=entries)

    @classmethod
    def from_file(cls, path: PathLike, map_location: str | torch.device = "cpu") -> DequantizationVAE:
        """Load a VAE saved by :meth:`save`, or a plain state dict (``.safetensors`` or a torch file, also one
        wrapped as ``{"state_dict": ...}``) whose architecture is read off the weight shapes.

        Raises:
            WeightsNotFoundError: if the file does not exist.
            ValueError: if it cannot be read or does not hold a DequantizationVAE's weights.
        """
        p = Path(path).expanduser()
        state = read_state_dict(p, map_location, "DequantizationVAE")
        config = _vae_config_from_state(state, str(p))
        metadata = read_safetensors_metadata(p, "the DequantizationVAE weights") if p.suffix == ".safetensors" else {}
        if "config" in metadata:
            try:
                config = {k: int(v) for k, v in json.loads(metadata["config"]).items()}
            except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as e:
                raise ValueError(f"'{p}': the 'config' metadata is not a JSON object of ints: {e}") from e
        try:
            vae = cls(**config)
        except TypeError as e:
            raise ValueError(f"'{p}': unexpected DequantizationVAE config {config}: {e}") from e
        check_state(vae.state_dict(), state, str(p), "DequantizationVAE", f"the architecture {config}")
        vae.load_state_dict(state, strict=True)
        return vae.eval()


def _vae_config_from_state(state: Mapping[str, Tensor], source: str) -> dict[str, int]:
    """Read ``in_dim``, ``z_dim``, ``hidden_dim`` and ``hidden_layers`` off a VAE state dict."""
    need = ("encoder.main.0.weight", "mu_layer.main.0.weight")
    if not all(k in state for k in need):
        some = sorted(state)[:5]
        raise ValueError(
            f"{source} does not hold DequantizationVAE weights: expected keys {list(need)}, received e.g. {some}"
        )
    n_linear = sum(1 for k in state if k.startswith("encoder.main.") and k.endswith(".weight"))
    hidden_dim, in_dim = state["encoder.main.0.weight"].shape
    z_key = f"mu_layer.main.{2 * (n_linear - 1)}.weight"
    z_dim = state[z_key].shape[0] if z_key in state else in_dim
    return {"in_dim": int(in_dim), "z_dim": int(z_dim), "hidden_dim": int(hidden_dim), "hidden_layers": n_linear - 1}
