"""Caption tables of the text-to-image job: generated training phrasings must not leak the held-out ones."""

from __future__ import annotations

import re

import pytest

from net2net.data import FASHION_MNIST_CAPTIONS, CaptionedDataset
from net2net.data.captions import CAPTION_COLOURS, CAPTION_VOCABULARY, caption_table, generated_captions


def _words(text: str) -> set[str]:
    # crude stemming so that "espadrille" and "espadrilles", "day" and "days" count as the same word
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z]+", text.lower())}


HAND_TRAIN = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["train"]]
HELD_OUT = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]]


def test_vocabulary_adds_no_word_only_the_held_out_phrasings_have() -> None:
    train_words = set().union(*map(_words, HAND_TRAIN))
    held_only = set().union(*map(_words, HELD_OUT)) - train_words
    assert "bootie" in held_only and "jogging" not in held_only  # the check itself can fail
    entries = [e for parts in CAPTION_VOCABULARY.values() for lst in parts.values() for e in lst] + CAPTION_COLOURS
    leaked = {e: sorted(_words(e) & held_only) for e in entries if _words(e) & held_only}
    assert not leaked, f"vocabulary entries with words only the held-out phrasings have: {leaked}"


def test_generated_captions_distinct_deterministic_and_never_held_out() -> None:
    for label in range(10):
        a = generated_captions(label, 200, seed=0, exclude=HELD_OUT)
        assert a == generated_captions(label, 200, seed=0, exclude=HELD_OUT)
        assert len(set(a)) == 200 and not set(a) & set(HELD_OUT)
        assert a != generated_captions(label, 200, seed=1, exclude=HELD_OUT)
    jeans = generated_captions(1, 300)
    assert not any(re.search(r"\ba (?:\w+ )*(?:jeans|trousers|pants)\b", c) and "pair of" not in c for c in jeans)
    assert not any(re.search(r"\ba [aeiou]", c) for label in range(10) for c in generated_captions(label, 100))


def test_generated_captions_bad_input() -> None:
    with pytest.raises(ValueError, match="only .* distinct phrasings, 100000 were asked"):
        generated_captions(0, 100_000)
    with pytest.raises(ValueError, match="no caption vocabulary for class 10"):
        generated_captions(10, 5)
    with pytest.raises(ValueError, match="non-negative int"):
        generated_captions(0, -1)


class _Labels:
    def __init__(self, labels: list[int]) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"label": self.labels[i]}


def test_captioned_dataset_adds_generated_training_phrasings_only() -> None:
    ds = CaptionedDataset(_Labels([3, 7]), generated_per_class=50)
    hand = caption_table(FASHION_MNIST_CAPTIONS, "train")
    assert len(ds[0]["captions"]) == len(hand[3]) + 50 and ds[0]["captions"][: len(hand[3])] == tuple(hand[3])
    assert not set(ds[1]["captions"]) & set(HELD_OUT)
    with pytest.raises(ValueError, match="built-in training captions only"):
        CaptionedDataset(_Labels([0]), part="held_out", generated_per_class=10)
    with pytest.raises(ValueError, match="built-in training captions only"):
        CaptionedDataset(_Labels([0]), captions={0: ["x"]}, generated_per_class=10)
