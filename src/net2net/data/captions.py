"""Captions for Fashion-MNIST: several phrasings per class, with a held-out set never used in training.

The text-to-image experiment (paper Sec. 4.1: BERT -> BigGAN; here Sentence-BERT -> the Fashion-MNIST
autoencoder) needs images with descriptions. Fashion-MNIST has class labels only, so each class gets
hand-written phrasings: ``train`` ones, from which every training image draws one at random, and
``held_out`` ones, used only to evaluate whether the translation generalises to wordings it never saw.
:func:`generated_captions` adds many more training phrasings per class, composed from a small vocabulary of
nouns, attributes, colours and uses (:data:`CAPTION_VOCABULARY`) with a few templates. That vocabulary
contains no word that occurs in a held-out phrasing but in none of the hand-written training phrasings (a
test checks it), so it widens the training wordings without leaking the evaluation's.
:class:`CaptionedDataset` attaches the phrasings of an item's class to the item.

Measured (text-to-image cINN, the first 2 held-out phrasings of each class, temperature 1): with 8 hand-written
training phrasings per class, 41 % of the images generated from them were of the right class (1500 steps); with
20 per class 58 % (4000 steps); with 200 generated ones added 61 % (``docs/results/text2image.md``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from torch.utils.data import Dataset

__all__ = [
    "CAPTION_COLOURS",
    "CAPTION_TEMPLATES",
    "CAPTION_VOCABULARY",
    "FASHION_MNIST_CAPTIONS",
    "HELD_OUT_ORIGINAL",
    "CaptionedDataset",
    "caption_table",
    "generated_captions",
]

# The phrasings and the generators' vocabulary are data: captions.json beside this module (package data).
_DATA = json.loads(resources.files(__package__).joinpath("captions.json").read_text(encoding="utf-8"))

# class index -> {"train": [...], "held_out": [...]}; class order as FASHION_MNIST_CLASSES. Of the 6 held-out
# phrasings per class, the first HELD_OUT_ORIGINAL were written with the hand-written training ones (and were known
# when the generated ones were designed), the other 4 later (2026-11-23), before the generated ones were designed.
HELD_OUT_ORIGINAL = 2
FASHION_MNIST_CAPTIONS: dict[int, dict[str, list[str]]] = {int(k): v for k, v in _DATA["phrasings"].items()}


# Vocabulary of the generated training phrasings, per class: nouns, attributes and uses ("ctx"), plus colours
# shared by all classes. No word here occurs in a held-out phrasing unless a hand-written training phrasing
# (of any class) has it too (tests/test_captions.py).
CAPTION_VOCABULARY: dict[int, dict[str, list[str]]] = {int(k): v for k, v in _DATA["vocabulary"].items()}
CAPTION_COLOURS = ["brown", "white", "navy", "green", "red", "beige", "dark", "light", "striped", "patterned"]
# "{a}" is "a" (or "an") for a single item and "a pair of" for plural nouns ("jeans", "sandals")
CAPTION_TEMPLATES = [
    "{a} {noun}", "{a} {adj} {noun}", "{a} {colour} {noun}", "{a} {noun} {ctx}", "{a} {adj} {noun} {ctx}",
    "a photo of {a} {adj} {noun}", "an image of {a} {noun} {ctx}", "{a} {colour} {adj} {noun}",
]


def _article(text: str) -> str:
    words = text.split(" ")
    for i in range(len(words) - 1):  # "a" before a vowel -> "an"
        if words[i] == "a" and words[i + 1][:1] in "aeiou":
            words[i] = "an"
    return " ".join(words)


def generated_captions(label: int, n: int, seed: int = 0, exclude: Sequence[str] = ()) -> list[str]:
    """``n`` distinct phrasings of class ``label`` composed from :data:`CAPTION_VOCABULARY` (sorted; deterministic).

    ``exclude`` (e.g. the held-out phrasings) are never returned. Raises ``ValueError`` when the vocabulary
    cannot make ``n`` distinct phrasings.
    """
    if label not in CAPTION_VOCABULARY:
        raise ValueError(f"no caption vocabulary for class {label!r}; classes are {sorted(CAPTION_VOCABULARY)}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    vocab, rng = CAPTION_VOCABULARY[label], random.Random(f"{seed}-{label}")
    skip, out, misses = set(exclude), set[str](), 0
    while len(out) < n and misses < 20_000:  # 20k draws in a row without a new phrasing: the vocabulary is used up
        words = {k: rng.choice(vocab[k]) for k in ("noun", "adj", "ctx")}
        plural = words["noun"].endswith("s") and not words["noun"].endswith("ss")  # "jeans", not "dress"
        template = rng.choice(CAPTION_TEMPLATES)
        colour = rng.choice(CAPTION_COLOURS)
        caption = _article(template.format(a="a pair of" if plural else "a", colour=colour, **words))
        if caption in skip or caption in out:
            misses += 1
        else:
            out.add(caption)
            misses = 0
    if len(out) < n:
        raise ValueError(f"the vocabulary of class {label} makes only {len(out)} distinct phrasings, {n} were asked")
    return sorted(out)


def caption_table(captions: Mapping[int, Mapping[str, Sequence[str]]], part: str) -> dict[int, list[str]]:
    """``{class: phrasings}`` for ``part`` = ``"train"`` or ``"held_out"`` of a caption mapping."""
    if part not in ("train", "held_out"):
        raise ValueError(f"part must be 'train' or 'held_out', got {part!r}")
    out = {}
    for label, parts in captions.items():
        if part not in parts or not parts[part]:
            raise ValueError(f"captions of class {label} have no {part!r} phrasings")
        out[int(label)] = [str(c) for c in parts[part]]
    return out


class CaptionedDataset(Dataset):
    """Adds ``"captions"`` (all phrasings of the item's class) to the items of a labelled dataset.

    Arguments:
        dataset: returns dicts with an int ``"label"`` (e.g. :class:`net2net.data.FashionMNIST`), or a
            ``target``/``params`` block that builds one (for YAML configs).
        captions: ``{class: [phrasings]}``, or ``None`` for the ``part`` of :data:`FASHION_MNIST_CAPTIONS`.
        part: ``"train"`` or ``"held_out"`` (only used when ``captions`` is ``None``).
        generated_per_class: add this many :func:`generated_captions` to each class's built-in training
            phrasings (``part="train"`` only; never a held-out phrasing).
        seed: seed of the generated phrasings.

    Example:
        >>> ds = CaptionedDataset(FashionMNIST(split="test"))  # doctest: +SKIP
        >>> ds[0]["captions"][:2]  # doctest: +SKIP
        ['an ankle boot', 'a photo of boots']
    """

    def __init__(
        self,
        dataset: Dataset | Mapping[str, Any],
        captions: Mapping[int, Sequence[str]] | None = None,
        part: str = "train",
        generated_per_class: int = 0,
        seed: int = 0,
    ) -> None:
        if isinstance(dataset, Mapping):
            from ..config import instantiate_from_config

            built: Dataset = instantiate_from_config(dataset, key="dataset")  # Any -> the type it must have
            dataset = built
        self.dataset = dataset
        table = caption_table(FASHION_MNIST_CAPTIONS, part) if captions is None else captions
        if generated_per_class:
            if captions is not None or part != "train":
                raise ValueError(
                    "generated_per_class adds generated phrasings to the built-in training captions only; got "
                    f"part={part!r} and {'given' if captions is not None else 'no'} captions"
                )
            held = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]]
            table = {k: [*v, *generated_captions(k, generated_per_class, seed, exclude=[*held, *v])]
                     for k, v in table.items()}  # fmt: skip
        self.captions = {int(k): tuple(str(c) for c in v) for k, v in table.items()}
        if any(len(v) == 0 for v in self.captions.values()):
            raise ValueError("every class needs at least one caption")

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        label = int(item["label"])
        if label not in self.captions:
            raise ValueError(f"no captions for class {label}; captions are given for {sorted(self.captions)}")
        item["captions"] = self.captions[label]
        return item

    def __getattr__(self, name: str) -> Any:
        # e.g. classes, images, labels of the wrapped dataset
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)
