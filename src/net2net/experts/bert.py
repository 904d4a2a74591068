"""BERT sentence embeddings in plain torch: a sentence-transformers BERT -> mean pooling (-> Normalize) model without
``transformers`` or ``sentence-transformers``.

Importing transformers' BERT and sentence-transformers (which pulls scikit-learn, SciPy and pandas) took about 5 s of
``net2net translate``'s 7-8 s; this module needs only torch, ``safetensors`` (the weights, never a pickle) and
``tokenizers`` (``tokenizer.json``). :class:`BertSentenceModel` reads a sentence-transformers model directory,
all-MiniLM-L6-v2 by default (see :class:`net2net.experts.text.SentenceEncoder`, which uses it), and computes the same
embeddings as sentence-transformers (to 1e-5, tests/test_bert.py). Its module tree mirrors sentence-transformers'
(``0.model.<BertModel's names>``), so its ``state_dict()`` -- and the cache fingerprint built from it -- is the same.

What it does not support raises :class:`UnsupportedModelError` with the reason; the caller falls back to
sentence-transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["BertSentenceModel", "UnsupportedModelError"]

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_BUFFERS = ("embeddings.position_ids", "embeddings.token_type_ids")  # index buffers some checkpoints store; not weights


class UnsupportedModelError(ValueError):
    """The directory is not a BERT -> mean pooling sentence-transformers model this module runs (the message says
    what differs)."""


def _read_json(path: Path, expected: type = dict) -> Any:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UnsupportedModelError(f"no {path.name} in {path.parent}") from e
    except (OSError, ValueError) as e:
        raise UnsupportedModelError(f"{path} is not readable JSON ({e})") from e
    _check(isinstance(data, expected), f"{path} holds a {type(data).__name__}, not a {expected.__name__}")
    return data


def _check(ok: bool, reason: str) -> None:
    if not ok:
        raise UnsupportedModelError(reason)


def _read_settings(path: Path) -> dict[str, Any]:
    """The BERT hyper-parameters and pipeline settings of a sentence-transformers directory, checked to be the
    supported form: ``modules.json`` = Transformer -> Pooling (mean) [-> Normalize], a ``BertModel`` with absolute
    positions and GELU, ``max_seq_length`` in ``sentence_bert_config.json``, no default prompt, float32 weights in
    ``model.safetensors`` and a ``tokenizer.json``."""
    modules = _read_json(path / "modules.json", list)
    kinds = [m.get("type") if isinstance(m, dict) else m for m in modules]
    _check(kinds in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]),
           f"modules.json lists {kinds}, not Transformer -> Pooling [-> Normalize]")  # fmt: skip
    _check(modules[0].get("path", "") == "", f"the Transformer module lies in {modules[0].get('path')!r}, not the root")
    pooling = _read_json(path / (modules[1].get("path") or "1_Pooling") / "config.json")
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    mode = pooling.get("pooling_mode")
    mean = {"pooling_mode_mean_tokens"}
    _check(modes == mean if mode is None else mode == "mean" and modes <= mean,
           f"the pooling is {mode or sorted(modes)}, not mean pooling")  # fmt: skip
    known = {"word_embedding_dimension", "embedding_dimension", "pooling_mode", "include_prompt"}
    extra = {k for k in pooling if k not in known and not k.startswith("pooling_mode_")}
    _check(not extra, f"pooling settings {sorted(extra)} are not supported")
    st = _read_json(path / "sentence_bert_config.json")
    _check(isinstance(st.get("max_seq_length"), int) and st["max_seq_length"] > 0,
           "sentence_bert_config.json gives no max_seq_length")  # fmt: skip
    _check(not st.get("do_lower_case", False), "sentence_bert_config.json asks for do_lower_case")
    extra = set(st) - {"max_seq_length", "do_lower_case"}
    _check(not extra, f"sentence_bert_config.json settings {sorted(extra)} are not supported")
    if (path / "config_sentence_transformers.json").is_file():
        st_config = _read_json(path / "config_sentence_transformers.json")
        _check(not st_config.get("default_prompt_name"), "the model has a default prompt")
    config = _read_json(path / "config.json")
    _check(config.get("model_type") == "bert" and config.get("architectures", ["BertModel"]) == ["BertModel"],
           f"config.json describes {config.get('model_type')!r} {config.get('architectures')}, "
           "not a BertModel")  # fmt: skip
    _check(config.get("position_embedding_type", "absolute") == "absolute",
           f"position_embedding_type {config.get('position_embedding_type')!r} is not 'absolute'")  # fmt: skip
    _check(config.get("hidden_act") == "gelu", f"hidden_act {config.get('hidden_act')!r} is not 'gelu'")
    _check(not config.get("is_decoder", False) and not config.get("add_cross_attention", False),
           "the BertModel is a decoder")  # fmt: skip
    names = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size")  # fmt: skip
    sizes = {k: config.get(k) for k in names}
    _check(all(isinstance(v, int) and v > 0 for v in sizes.values()), f"config.json lacks sizes: {sizes}")
    _check(sizes["hidden_size"] % sizes["num_attention_heads"] == 0, "hidden_size is not a multiple of the heads")
    _check(st["max_seq_length"] <= sizes["max_position_embeddings"],
           f"max_seq_length {st['max_seq_length']} exceeds max_position_embeddings")  # fmt: skip
    for key in ("word_embedding_dimension", "embedding_dimension"):
        _check(
            pooling.get(key, sizes["hidden_size"]) == sizes["hidden_size"], f"the pooling's {key} is not hidden_size"
        )
    _check((path / "tokenizer.json").is_file(), f"no tokenizer.json in {path}")
    _check((path / "model.safetensors").is_file(), f"no model.safetensors in {path}")
    special = _read_json(path / "special_tokens_map.json") if (path / "special_tokens_map.json").is_file() else {}
    pad = special.get("pad_token", "[PAD]")
    return {**sizes, "layer_norm_eps": float(config.get("layer_norm_eps", 1e-12)),
            "max_seq_length": st["max_seq_length"], "normalize": kinds[-1] == _NORMALIZE,
            "pad_token": pad.get("content") if isinstance(pad, dict) else pad}  # fmt: skip


# The modules below carry transformers' BertModel names (embeddings.word_embeddings, encoder.layer.0.attention.self.
# query, ...), which are the keys in model.safetensors and in sentence-transformers' state dict. Their weights are
# allocated uninitialised (random initialisation of 22M numbers would be thrown away; building on the meta device
# instead imports torch._dynamo, 5 s) and replaced by model.safetensors' tensors.


class _Linear(nn.Linear):
    def reset_parameters(self) -> None:  # the weights come from model.safetensors
        pass


class _Embedding(nn.Embedding):
    def reset_parameters(self) -> None:  # the weights come from model.safetensors
        pass


class _Embeddings(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.word_embeddings = _Embedding(s["vocab_size"], s["hidden_size"])
        self.position_embeddings = _Embedding(s["max_position_embeddings"], s["hidden_size"])
        self.token_type_embeddings = _Embedding(s["type_vocab_size"], s["hidden_size"])
        self.LayerNorm = nn.LayerNorm(s["hidden_size"], eps=s["layer_norm_eps"])

    def forward(self, ids: Tensor, types: Tensor) -> Tensor:  # (B, T) token ids and token types -> (B, T, D)
        positions = torch.arange(ids.shape[1], device=ids.device)  # (T,)
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(positions)
        return self.LayerNorm(x)


class _Residual(nn.Module):
    """``LayerNorm(dense(x) + residual)``: BertSelfOutput and BertOutput."""

    def __init__(self, d_in: int, s: dict[str, Any]) -> None:
        super().__init__()
        self.dense = _Linear(d_in, s["hidden_size"])
        self.LayerNorm = nn.LayerNorm(s["hidden_size"], eps=s["layer_norm_eps"])

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class _SelfAttention(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.heads = s["num_attention_heads"]
        self.query, self.key, self.value = (_Linear(s["hidden_size"], s["hidden_size"]) for _ in range(3))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # x (B, T, D), mask (B, 1, 1, T) True = a real token
        b, t, d = x.shape

        def split(h: Tensor) -> Tensor:  # (B, T, D) -> (B, heads, T, D / heads)
            return h.view(b, t, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, heads, T, D / heads): padding not attended
        return out.transpose(1, 2).reshape(b, t, d)  # (B, T, D)


class _Attention(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.self = _SelfAttention(s)
        self.output = _Residual(s["hidden_size"], s)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.output(self.self(x, mask), x)


class _Intermediate(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.dense = _Linear(s["hidden_size"], s["intermediate_size"])

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, T, intermediate_size)
        return F.gelu(self.dense(x))  # exact (erf) GELU: transformers' "gelu"


class _Layer(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.attention = _Attention(s)
        self.intermediate = _Intermediate(s)
        self.output = _Residual(s["intermediate_size"], s)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:  # (B, T, D) -> (B, T, D)
        h = self.attention(x, mask)
        return self.output(self.intermediate(h), h)


class _Encoder(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_Layer(s) for _ in range(s["num_hidden_layers"]))


class _Pooler(nn.Module):
    """BertModel's [CLS] pooler: part of the checkpoint and of the state dict (so of the fingerprint); mean pooling
    does not use it."""

    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.dense = _Linear(s["hidden_size"], s["hidden_size"])


class _Bert(nn.Module):
    def __init__(self, s: dict[str, Any]) -> None:
        super().__init__()
        self.embeddings = _Embeddings(s)
        self.encoder = _Encoder(s)
        self.pooler = _Pooler(s)

    def forward(self, ids: Tensor, types: Tensor, mask: Tensor) -> Tensor:  # (B, T) each -> (B, T, D) token states
        x = self.embeddings(ids, types)
        keep = mask.bool()[:, None, None, :]  # (B, 1, 1, T): every query attends to the sentence's real tokens
        for layer in self.encoder.layer:
            x = layer(x, keep)
        return x


class BertSentenceModel(nn.Module):
    """A sentence-transformers BERT -> mean pooling (-> Normalize) model in plain torch.

    Arguments:
        path: a sentence-transformers model directory (``modules.json``, ``config.json``,
            ``sentence_bert_config.json``, the pooling's ``config.json``, ``tokenizer.json``, ``model.safetensors``).
        device: where the model runs (``None``: the GPU if there is one, as sentence-transformers chooses).

    Raises:
        UnsupportedModelError: for anything else (another architecture or pooling, a missing file, other weights);
            the message says what.
    """

    def __init__(self, path: str | Path, device: str | torch.device | None = None) -> None:
        super().__init__()
        from safetensors import safe_open
        from tokenizers import Tokenizer

        path = Path(path)
        s = _read_settings(path)
        self.max_seq_length: int = s["max_seq_length"]
        self.dim: int = s["hidden_size"]
        self.normalize_output: bool = s["normalize"]  # a Normalize module: unit-length embeddings whatever is asked
        try:
            self._lengths = Tokenizer.from_file(str(path / "tokenizer.json"))  # untruncated: token counts
            self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        except Exception as e:  # tokenizers raises its own Exception for unreadable files
            raise UnsupportedModelError(f"tokenizer.json is not a tokenizers file ({e})") from e
        pad_id = self.tokenizer.token_to_id(s["pad_token"])
        _check(pad_id is not None, f"the pad token {s['pad_token']!r} is not in tokenizer.json")
        self._lengths.no_truncation()
        self._lengths.no_padding()
        self.tokenizer.enable_truncation(max_length=self.max_seq_length)  # sentence-transformers' longest_first
        self.tokenizer.enable_padding(pad_id=pad_id, pad_token=s["pad_token"])  # to the longest in the batch
        holder = nn.Module()  # at "0.model" as in a SentenceTransformer: the same state-dict keys
        holder.model = _Bert(s)
        self.add_module("0", holder)
        expected = holder.model.state_dict()
        with safe_open(str(path / "model.safetensors"), framework="pt") as f:
            names = [k for k in f.keys() if k not in _BUFFERS]  # noqa: SIM118 (a safe_open has no __iter__)
            _check(sorted(names) == sorted(expected), "model.safetensors holds other tensors than a BertModel's")
            weights = {k: f.get_tensor(k) for k in names}
        for k, w in weights.items():
            _check(w.dtype == torch.float32 and w.shape == expected[k].shape,
                   f"model.safetensors: {k} is {w.dtype} {tuple(w.shape)}, expected float32 "
                   f"{tuple(expected[k].shape)}")  # fmt: skip
        holder.model.load_state_dict(weights, assign=True)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.to(device).eval().requires_grad_(False)

    @property
    def bert(self) -> _Bert:
        """The BERT encoder (registered once, at ``0.model``)."""
        return getattr(self, "0").model

    def token_lengths(self, sentences: Sequence[str]) -> list[int]:
        """The number of word pieces of each sentence with [CLS] and [SEP], before truncation."""
        return [len(e.ids) for e in self._lengths.encode_batch(list(sentences))]

    @torch.no_grad()
    def encode(self, sentences: Sequence[str], batch_size: int, normalize: bool) -> Tensor:
        """``(B, dim)`` float32 embeddings: BERT's token states averaged over each sentence's (truncated) tokens,
        unit length if ``normalize`` or the model ends in a Normalize module. Sentences are batched by length
        (longest first) so little padding is computed, and returned in the given order."""
        device = next(self.parameters()).device
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        out = torch.empty(len(sentences), self.dim, device=device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer.encode_batch([sentences[i] for i in idx])
            ids, types, mask = (torch.tensor([getattr(e, a) for e in enc], device=device)
                                for a in ("ids", "type_ids", "attention_mask"))  # fmt: skip  # (b, T) each
            hidden = self.bert(ids, types, mask)  # (b, T, D)
            weight = mask.unsqueeze(-1).to(hidden.dtype)  # (b, T, 1)
            emb = (hidden * weight).sum(1) / weight.sum(1).clamp(min=1e-9)  # (b, D): mean over real tokens
            out[torch.tensor(idx, device=device)] = F.normalize(emb, p=2, dim=1) if normalize or self.normalize_output \
                else emb  # fmt: skip
        return out

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_seq_length={self.max_seq_length}, normalize_output={self.normalize_output}"
