"""An expert from TorchScript files: a researcher's own model, exported once, used without its Python code.

``torch.jit.script(model).save("encoder.pt")`` (or ``torch.jit.trace``) writes the network's graph and weights into
one archive; :class:`ProgramExpert` loads such archives as a source expert (``encoder`` only), a target autoencoder
(``encoder`` and ``decoder``) or a generator target (``decoder`` only), and checks every output's shape, dtype and
values like the other experts do.

What loading runs: a TorchScript archive holds TorchScript code (a restricted language that calls torch operators,
never Python imports) and its tensors; it is read by TorchScript's own loader, not by Python's ``pickle``. The
program still runs whatever tensor operations its author wrote, so use files you made or trust, as with any model.
``torch.save(model)`` files (whole pickled modules) and ``torch.export`` archives (whose loader falls back to
unpickling) are refused with a message that says what to do instead.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..io import file_digest
from .protocols import FINGERPRINT_LENGTH, FrozenExpert, check_code

__all__ = ["ProgramExpert", "load_program"]

PathLike = str | os.PathLike[str]


class _Program(nn.Module):
    """A loaded TorchScript module held by a plain module (ScriptModules refuse ``requires_grad_``, which freezing
    calls; a plain parent freezes their parameters one by one)."""

    def __init__(self, program: nn.Module) -> None:
        super().__init__()
        self.program = program

    def forward(self, x: Tensor) -> Tensor:
        return self.program(x)


def load_program(path: PathLike) -> nn.Module:
    """Load a TorchScript archive (``torch.jit.save``) on the CPU, in eval mode, without gradients.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a TorchScript archive (a pickled ``torch.save(model)`` file, a ``torch.export``
            archive, or anything else); the message says which and what to export instead.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ProgramExpert: no such file {str(path)!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"ProgramExpert: {str(path)!r} is not a TorchScript archive (not a zip file); save the "
                         "model with torch.jit.script(model).save(path) or torch.jit.trace(model, x).save(path)")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if any(n.endswith("archive_format") or "/models/" in n for n in names) and not any("/code/" in n for n in names):
        raise ValueError(f"ProgramExpert: {str(path)!r} is a torch.export archive, whose loader may unpickle Python "
                         "objects; export the model with torch.jit.script / torch.jit.trace instead")  # fmt: skip
    if not any("/code/" in n for n in names):
        raise ValueError(f"ProgramExpert: {str(path)!r} is not a TorchScript archive (no code/ inside: a pickled "
                         "torch.save(model) file is refused, it could run any Python code); save the model with "
                         "torch.jit.script(model).save(path), or its state_dict as safetensors")  # fmt: skip
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated; the format is still read
        warnings.filterwarnings("ignore", message=".*torch.jit.*deprecated", category=DeprecationWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    return _Program(module).requires_grad_(False).eval()


class ProgramExpert(FrozenExpert):
    """A frozen expert whose networks are TorchScript archives.

    Arguments:
        encoder: the archive of ``x -> z`` (a source expert's Φ, or a target autoencoder's Θ): called on batches
            ``(B, ...)``, it must return ``(B, D)`` (``(B, C, H, W)`` for spatial source codes).
        decoder: the archive of ``z -> y`` (a target's Λ): called on ``(B, D)``, returns ``(B, C, H, W)`` in [-1, 1].
        batch_size: the largest number of rows per call.

    At least one of the two is needed. ``encode`` of an expert without an encoder (a GAN generator as target) and
    ``decode`` of one without a decoder (a source expert) raise a ``TypeError`` saying so.

    Example (config)::

        source: {target: net2net.experts.ProgramExpert, params: {encoder: classifier_features.pt}}
        target: {target: net2net.experts.ProgramExpert,
                 params: {encoder: ae_encoder.pt, decoder: ae_decoder.pt}}
    """

    def __init__(self, encoder: PathLike | None = None, decoder: PathLike | None = None, batch_size: int = 256) -> None:
        super().__init__()
        if encoder is None and decoder is None:
            raise ValueError("ProgramExpert: expected an encoder and/or a decoder file, received neither")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"ProgramExpert: batch_size must be a positive int, received {batch_size!r}")
        self.paths = {k: Path(v) for k, v in (("encoder", encoder), ("decoder", decoder)) if v is not None}
        self.encoder = load_program(self.paths["encoder"]) if "encoder" in self.paths else None
        self.decoder = load_program(self.paths["decoder"]) if "decoder" in self.paths else None
        self.batch_size = batch_size

    @property
    def config(self) -> dict[str, Any]:
        return {k: str(v) for k, v in self.paths.items()}

    def fingerprint(self) -> str:
        """A short hex digest of the archives' bytes (a re-exported model invalidates cached latents)."""
        h = hashlib.sha256(f"class={type(self).__module__}.{type(self).__qualname__}".encode())
        for name, path in sorted(self.paths.items()):
            h.update(f"\n{name}={file_digest(path)}".encode())
        return h.hexdigest()[:FINGERPRINT_LENGTH]

    def _run(self, net: nn.Module, x: Tensor, who: str, spatial: bool) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{who}: expected a tensor (B, ...), received {type(x).__name__}")
        if x.dim() == 0 or len(x) == 0:
            raise ValueError(f"{who}: expected a batch (B, ...) with B >= 1, received shape {tuple(x.shape)}")
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), self.batch_size):
                chunk = x[i : i + self.batch_size]
                try:
                    raw = net(chunk)
                except RuntimeError as e:  # the program's own error, e.g. a Linear given the wrong width
                    reason = str(e).strip().splitlines()[-1]
                    raise ValueError(f"{who} failed on an input of shape {tuple(chunk.shape)} "
                                     f"({x.dtype}): {reason}") from e  # fmt: skip
                out = check_code(raw, len(chunk), who, spatial=spatial)
                if not torch.isfinite(out).all():
                    bad = int((~torch.isfinite(out.flatten(1))).any(1).sum())
                    raise ValueError(f"{who} returned non-finite values (NaN or inf) in {bad} of {len(chunk)} rows")
                outs.append(out)
        return torch.cat(outs)

    def encode(self, x: Tensor) -> Tensor:
        """``z = encoder(x)``: ``(B, D)`` (or ``(B, C, H, W)``), checked; no gradient."""
        if self.encoder is None:
            raise TypeError("ProgramExpert has no encoder file: it can decode only (pass encoder=... to encode)")
        return self._run(self.encoder, x, f"ProgramExpert encoder {self.paths['encoder'].name}", spatial=True)

    def decode(self, z: Tensor) -> Tensor:
        """``y = decoder(z)``: ``(B, C, H, W)``, checked; no gradient."""
        if self.decoder is None:
            raise TypeError("ProgramExpert has no decoder file: it is a source expert (pass decoder=... to decode)")
        y = self._run(self.decoder, z, f"ProgramExpert decoder {self.paths['decoder'].name}", spatial=True)
        if y.dim() != 4:
            raise ValueError(f"ProgramExpert decoder returned shape {tuple(y.shape)}; expected images (B, C, H, W)")
        return y

    def forward(self, x: Tensor) -> Tensor:
        return self.encode(x)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v.name}" for k, v in self.paths.items())
