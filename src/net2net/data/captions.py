"""Captions for Fashion-MNIST: several phrasings per class, with a held-out set never used in training.

The text-to-image experiment (paper Sec. 4.1: BERT -> BigGAN; here Sentence-BERT -> the Fashion-MNIST
autoencoder) needs images with descriptions. Fashion-MNIST has class labels only, so each class gets
hand-written phrasings: ``train`` ones, from which every training image draws one at random, and
``held_out`` ones, used only to evaluate whether the translation generalises to wordings it never saw. With 8
training phrasings per class, 41 % of the images generated from held-out phrasings were of the right class
(1500 training steps); 20 phrasings per class cover the ways a class is described much better.
:class:`CaptionedDataset` attaches the phrasings of an item's class to the item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch.utils.data import Dataset

__all__ = ["FASHION_MNIST_CAPTIONS", "CaptionedDataset", "caption_table"]

# class index -> {"train": [...], "held_out": [...]}; class order as FASHION_MNIST_CLASSES
FASHION_MNIST_CAPTIONS: dict[int, dict[str, list[str]]] = {
    0: {
        "train": [
            "a t-shirt", "a photo of a top", "a short-sleeved shirt", "a plain tee", "a casual t-shirt",
            "a cotton top", "an image of a tee shirt", "a simple top to wear", "a tank top", "a sleeveless top",
            "a top with short sleeves", "a white t-shirt", "a printed tee", "a v-neck top",
            "a loose top for warm weather", "a basic top", "a shirt without a collar", "an undershirt",
            "a summer top", "a sports top",
        ],
        "held_out": ["a basic tee for summer", "a crew neck t-shirt"],
    },
    1: {
        "train": [
            "a pair of trousers", "a photo of pants", "long trousers", "a pair of jeans", "slacks", "a pair of pants",
            "an image of trousers", "denim pants", "leggings", "jogging pants", "sweatpants",
            "a pair of wide-leg trousers", "skinny jeans", "work trousers", "pants with two legs",
            "a pair of track pants", "cargo pants", "a pair of corduroys", "a pair of cotton trousers",
            "formal trousers",
        ],
        "held_out": ["something to wear on your legs", "a pair of slim-fit chinos"],
    },
    2: {
        "train": [
            "a pullover", "a photo of a sweater", "a knitted jumper", "a long-sleeved sweater", "a wool pullover",
            "a cosy jumper", "an image of a sweatshirt", "a warm knit sweater", "a turtleneck sweater",
            "a fleece top", "a crew neck jumper", "a thick sweater for autumn", "a chunky knit",
            "a pullover with long sleeves", "a woolly jumper", "a knitted top", "a sweater to keep warm",
            "a hooded sweatshirt", "a cashmere sweater", "a winter jumper",
        ],
        "held_out": ["a cardigan for cold days", "a hoodie without a zip"],
    },
    3: {
        "train": [
            "a dress", "a photo of a dress", "a summer dress", "an evening gown", "a short dress",
            "a sleeveless dress", "an image of a frock", "a long dress", "a party dress", "a maxi dress",
            "a wedding dress", "a mini dress", "a dress for a formal occasion", "a sundress", "a gown",
            "a floral dress", "a dress with a skirt", "a one-piece dress", "a ball gown", "a dress for a night out",
        ],
        "held_out": ["something elegant to wear to a party", "a cocktail dress"],
    },
    4: {
        "train": [
            "a coat", "a photo of a jacket", "a winter coat", "a long coat", "an overcoat", "a warm jacket",
            "an image of a parka", "a rain coat", "a down jacket", "a wool coat", "a puffer jacket",
            "an outdoor jacket", "a coat with a zip", "a padded coat", "a heavy coat for cold weather",
            "a windbreaker", "a jacket with pockets", "outerwear", "a coat for snowy days", "a leather jacket",
        ],
        "held_out": ["something to wear in winter", "a trench coat with buttons"],
    },
    5: {
        "train": [
            "a sandal", "a photo of sandals", "an open shoe", "a summer sandal", "a strappy sandal", "a flip-flop",
            "an image of a sandal", "a beach sandal", "a slipper", "a high-heeled sandal", "a sandal with straps",
            "a pair of flip-flops", "a slide sandal", "a sandal with a heel", "a wedge sandal",
            "a gladiator sandal", "a thong sandal", "summer footwear", "a sandal for the beach", "light summer shoes",
        ],
        "held_out": ["footwear for a hot day at the beach", "open-toed shoes"],
    },
    6: {
        "train": [
            "a shirt", "a photo of a shirt", "a button-up shirt", "a blouse", "a collared shirt",
            "a long-sleeved shirt", "an image of a dress shirt", "a flannel shirt", "a shirt with buttons",
            "a business shirt", "a denim shirt", "a plaid shirt", "a silk blouse", "a shirt with a collar",
            "a work shirt", "an office shirt", "a linen shirt", "a patterned shirt", "a casual shirt", "a polo shirt",
        ],
        "held_out": ["a formal shirt for the office", "a checked blouse"],
    },
    7: {
        "train": [
            "a sneaker", "a photo of sneakers", "a sports shoe", "a trainer", "a canvas shoe", "a low-top sneaker",
            "an image of a tennis shoe", "a gym shoe", "an athletic shoe", "a pair of trainers", "a high-top sneaker",
            "a shoe for sports", "a basketball shoe", "a casual sneaker", "a white sneaker", "a lace-up sports shoe",
            "footwear for the gym", "a trainer with laces", "a skate shoe", "a comfortable sports shoe",
        ],
        "held_out": ["a pair of running shoes", "shoes for jogging"],
    },
    8: {
        "train": [
            "a bag", "a photo of a handbag", "a purse", "a tote bag", "a shoulder bag", "a leather bag",
            "an image of a satchel", "a shopping bag", "a backpack", "a handbag with a strap", "a travel bag",
            "a duffel bag", "a messenger bag", "a wallet", "a bag with handles", "a large bag",
            "a small purse", "a briefcase", "a carry bag", "a designer handbag",
        ],
        "held_out": ["something to carry your things in", "a clutch"],
    },
    9: {
        "train": [
            "an ankle boot", "a photo of boots", "a short boot", "a leather boot", "a winter boot",
            "a high-heeled boot", "an image of an ankle boot", "a chelsea boot", "a boot", "a pair of boots",
            "a boot with a heel", "a lace-up boot", "a boot for cold weather", "a heeled ankle boot", "a rain boot",
            "a hiking boot", "a boot that covers the ankle", "a work boot", "a suede boot", "a warm boot for winter",
        ],
        "held_out": ["footwear for rainy autumn days", "a suede bootie"],
    },
}  # fmt: skip


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

    Example:
        >>> ds = CaptionedDataset(FashionMNIST(split="test"))  # doctest: +SKIP
        >>> ds[0]["captions"][:2]  # doctest: +SKIP
        ['an ankle boot', 'a photo of boots']
    """

    def __init__(
        self, dataset: Dataset | Mapping[str, Any], captions: Mapping[int, Sequence[str]] | None = None, part: str = "train"
    ) -> None:
        if isinstance(dataset, Mapping):
            from ..config import instantiate_from_config

            dataset = instantiate_from_config(dataset, key="dataset")
        self.dataset = dataset
        table = caption_table(FASHION_MNIST_CAPTIONS, part) if captions is None else captions
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
