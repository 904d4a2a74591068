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

import random
from collections.abc import Mapping, Sequence
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

# class index -> {"train": [...], "held_out": [...]}; class order as FASHION_MNIST_CLASSES. Of the 6 held-out
# phrasings per class, the first HELD_OUT_ORIGINAL were written with the hand-written training ones (and were known
# when the generated ones were designed), the other 4 later (2026-11-23), before the generated ones were designed.
HELD_OUT_ORIGINAL = 2
FASHION_MNIST_CAPTIONS: dict[int, dict[str, list[str]]] = {
    0: {
        "train": [
            "a t-shirt", "a photo of a top", "a short-sleeved shirt", "a plain tee", "a casual t-shirt",
            "a cotton top", "an image of a tee shirt", "a simple top to wear", "a tank top", "a sleeveless top",
            "a top with short sleeves", "a white t-shirt", "a printed tee", "a v-neck top",
            "a loose top for warm weather", "a basic top", "a shirt without a collar", "an undershirt",
            "a summer top", "a sports top",
        ],
        "held_out": [
            "a basic tee for summer", "a crew neck t-shirt",
            "a black tee", "a top with a round neckline", "a cropped top", "a t-shirt with a print on the front",
        ],
    },
    1: {
        "train": [
            "a pair of trousers", "a photo of pants", "long trousers", "a pair of jeans", "slacks", "a pair of pants",
            "an image of trousers", "denim pants", "leggings", "jogging pants", "sweatpants",
            "a pair of wide-leg trousers", "skinny jeans", "work trousers", "pants with two legs",
            "a pair of track pants", "cargo pants", "a pair of corduroys", "a pair of cotton trousers",
            "formal trousers",
        ],
        "held_out": [
            "something to wear on your legs", "a pair of slim-fit chinos",
            "a pair of khakis", "bell-bottoms", "dress pants for work", "blue denims",
        ],
    },
    2: {
        "train": [
            "a pullover", "a photo of a sweater", "a knitted jumper", "a long-sleeved sweater", "a wool pullover",
            "a cosy jumper", "an image of a sweatshirt", "a warm knit sweater", "a turtleneck sweater",
            "a fleece top", "a crew neck jumper", "a thick sweater for autumn", "a chunky knit",
            "a pullover with long sleeves", "a woolly jumper", "a knitted top", "a sweater to keep warm",
            "a hooded sweatshirt", "a cashmere sweater", "a winter jumper",
        ],
        "held_out": [
            "a cardigan for cold days", "a hoodie without a zip",
            "a knit jumper with a pattern", "a grey sweatshirt",
            "a warm woollen top with long sleeves", "a ribbed sweater",
        ],
    },
    3: {
        "train": [
            "a dress", "a photo of a dress", "a summer dress", "an evening gown", "a short dress",
            "a sleeveless dress", "an image of a frock", "a long dress", "a party dress", "a maxi dress",
            "a wedding dress", "a mini dress", "a dress for a formal occasion", "a sundress", "a gown",
            "a floral dress", "a dress with a skirt", "a one-piece dress", "a ball gown", "a dress for a night out",
        ],
        "held_out": [
            "something elegant to wear to a party", "a cocktail dress",
            "a little black dress", "a knee-length dress", "a strapless dress", "a dress with a belt",
        ],
    },
    4: {
        "train": [
            "a coat", "a photo of a jacket", "a winter coat", "a long coat", "an overcoat", "a warm jacket",
            "an image of a parka", "a rain coat", "a down jacket", "a wool coat", "a puffer jacket",
            "an outdoor jacket", "a coat with a zip", "a padded coat", "a heavy coat for cold weather",
            "a windbreaker", "a jacket with pockets", "outerwear", "a coat for snowy days", "a leather jacket",
        ],
        "held_out": [
            "something to wear in winter", "a trench coat with buttons",
            "a quilted jacket", "a raincoat with a hood", "a peacoat", "a bomber jacket",
        ],
    },
    5: {
        "train": [
            "a sandal", "a photo of sandals", "an open shoe", "a summer sandal", "a strappy sandal", "a flip-flop",
            "an image of a sandal", "a beach sandal", "a slipper", "a high-heeled sandal", "a sandal with straps",
            "a pair of flip-flops", "a slide sandal", "a sandal with a heel", "a wedge sandal",
            "a gladiator sandal", "a thong sandal", "summer footwear", "a sandal for the beach", "light summer shoes",
        ],
        "held_out": [
            "footwear for a hot day at the beach", "open-toed shoes",
            "espadrilles", "a flat sandal with a buckle",
            "shoes you wear without socks in summer", "a pair of strappy heels",
        ],
    },
    6: {
        "train": [
            "a shirt", "a photo of a shirt", "a button-up shirt", "a blouse", "a collared shirt",
            "a long-sleeved shirt", "an image of a dress shirt", "a flannel shirt", "a shirt with buttons",
            "a business shirt", "a denim shirt", "a plaid shirt", "a silk blouse", "a shirt with a collar",
            "a work shirt", "an office shirt", "a linen shirt", "a patterned shirt", "a casual shirt", "a polo shirt",
        ],
        "held_out": [
            "a formal shirt for the office", "a checked blouse",
            "a button-down shirt", "a shirt with a pocket on the chest",
            "a lumberjack shirt", "a long-sleeve blouse with buttons",
        ],
    },
    7: {
        "train": [
            "a sneaker", "a photo of sneakers", "a sports shoe", "a trainer", "a canvas shoe", "a low-top sneaker",
            "an image of a tennis shoe", "a gym shoe", "an athletic shoe", "a pair of trainers", "a high-top sneaker",
            "a shoe for sports", "a basketball shoe", "a casual sneaker", "a white sneaker", "a lace-up sports shoe",
            "footwear for the gym", "a trainer with laces", "a skate shoe", "a comfortable sports shoe",
        ],
        "held_out": [
            "a pair of running shoes", "shoes for jogging",
            "a running trainer", "a slip-on sneaker", "a shoe for playing tennis", "a pair of kicks for the street",
        ],
    },
    8: {
        "train": [
            "a bag", "a photo of a handbag", "a purse", "a tote bag", "a shoulder bag", "a leather bag",
            "an image of a satchel", "a shopping bag", "a backpack", "a handbag with a strap", "a travel bag",
            "a duffel bag", "a messenger bag", "a wallet", "a bag with handles", "a large bag",
            "a small purse", "a briefcase", "a carry bag", "a designer handbag",
        ],
        "held_out": [
            "something to carry your things in", "a clutch",
            "a rucksack", "a handbag made of leather", "a bag for a laptop", "a crossbody purse",
        ],
    },
    9: {
        "train": [
            "an ankle boot", "a photo of boots", "a short boot", "a leather boot", "a winter boot",
            "a high-heeled boot", "an image of an ankle boot", "a chelsea boot", "a boot", "a pair of boots",
            "a boot with a heel", "a lace-up boot", "a boot for cold weather", "a heeled ankle boot", "a rain boot",
            "a hiking boot", "a boot that covers the ankle", "a work boot", "a suede boot", "a warm boot for winter",
        ],
        "held_out": [
            "footwear for rainy autumn days", "a suede bootie",
            "a pair of booties", "a short leather boot with a zip", "a cowboy boot", "a boot with a block heel",
        ],
    },
}  # fmt: skip


# Vocabulary of the generated training phrasings, per class: nouns, attributes and uses ("ctx"), plus colours
# shared by all classes. No word here occurs in a held-out phrasing unless a hand-written training phrasing
# (of any class) has it too (tests/test_captions.py).
CAPTION_VOCABULARY: dict[int, dict[str, list[str]]] = {
    0: {
        "noun": ["t-shirt", "tee", "top", "tank top", "vest top", "short-sleeved top", "jersey top", "crop top"],
        "adj": ["cotton", "plain", "printed", "casual", "loose", "fitted", "sleeveless", "basic"],
        "ctx": ["for summer", "for the gym", "with short sleeves", "with a v-neck", "for lounging", "for warm weather"],
    },
    1: {
        "noun": ["trousers", "pants", "jeans", "cargo pants", "slacks", "leggings", "joggers", "sweatpants"],
        "adj": ["denim", "cotton", "wide-leg", "skinny", "straight-leg", "baggy", "tailored", "corduroy"],
        "ctx": ["for the office", "for hiking", "with long legs", "with turn-ups", "for everyday wear", "with pockets"],
    },
    2: {
        "noun": [
            "pullover", "sweater", "jumper", "sweatshirt", "knitted jumper", "knit top", "crew neck sweater",
            "turtleneck",
        ],
        "adj": ["wool", "knitted", "cosy", "chunky", "fleece", "cashmere", "thick", "soft"],
        "ctx": [
            "for cool mornings", "with long sleeves", "for autumn", "to keep warm", "for a chilly evening",
            "with a high collar",
        ],
    },
    3: {
        "noun": ["dress", "gown", "frock", "sundress", "maxi dress", "mini dress", "evening dress", "shift dress"],
        "adj": ["pleated", "floral", "sleeveless", "long", "short", "silk", "flowing", "fitted"],
        "ctx": [
            "for a party", "for a wedding", "for summer", "for a night out", "for a formal dinner", "with a full skirt",
        ],
    },
    4: {
        "noun": ["coat", "jacket", "overcoat", "parka", "anorak", "down jacket", "puffer jacket", "windbreaker"],
        "adj": ["warm", "padded", "waterproof", "wool", "long", "hooded", "insulated", "leather"],
        "ctx": ["for winter", "for cold weather", "for the rain", "with a zip", "with buttons", "for snowy days"],
    },
    5: {
        "noun": ["sandal", "sandals", "flip-flops", "slides", "open shoes", "slingback", "mule", "slippers"],
        "adj": ["strappy", "beach", "rubber", "leather", "heeled", "summer", "light", "wedge"],
        "ctx": [
            "for the beach", "for summer", "for sunny days", "with thin straps", "for the pool", "with a cork sole",
        ],
    },
    6: {
        "noun": [
            "shirt", "blouse", "button-up shirt", "dress shirt", "flannel shirt", "oxford shirt", "polo shirt", "tunic",
        ],
        "adj": ["collared", "cotton", "linen", "formal", "long-sleeved", "plaid", "denim", "silk"],
        "ctx": [
            "for work", "with buttons", "with a collar", "for a job interview", "with cuffs", "for a business meeting",
        ],
    },
    7: {
        "noun": [
            "sneaker", "sneakers", "trainers", "trainer", "sports shoe", "tennis shoe", "gym shoe", "athletic shoe",
        ],
        "adj": ["lace-up", "canvas", "low-top", "white", "comfortable", "sporty", "mesh", "cushioned"],
        "ctx": ["for basketball", "for the gym", "for sports", "for the track", "with laces", "for walking"],
    },
    8: {
        "noun": ["bag", "handbag", "purse", "tote", "backpack", "satchel", "shoulder bag", "messenger bag"],
        "adj": ["leather", "canvas", "small", "large", "designer", "woven", "straw", "zipped"],
        "ctx": ["with a strap", "for shopping", "for travel", "with handles", "for school", "for the office"],
    },
    9: {
        "noun": [
            "ankle boot", "boots", "work boot", "chelsea boot", "short boot", "heeled boot", "hiking boot", "rain boot",
        ],
        "adj": ["leather", "suede", "lace-up", "heeled", "waterproof", "rugged", "lined", "zip-up"],
        "ctx": ["for winter", "for snow", "for cold weather", "with a heel", "for the countryside", "for autumn"],
    },
}  # fmt: skip
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
