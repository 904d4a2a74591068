"""Datasets that work offline (Fashion-MNIST, MNIST-5k, 8x8 digits, DCGAN faces, image folders), captions for
Fashion-MNIST, and the latent cache of encoded pairs.

Every dataset returns dicts ``{"image": float32 (C, H, W) in [-1, 1], "label": int}`` (faces:
``{"image", "z"}``), takes ``split="train" | "test"``, ``size`` and ``channels``, and keeps its
source in memory as uint8, converting per item. :class:`ConcatDomains` joins datasets into domains;
:func:`get_dataset` builds one by name.
"""

from .captions import FASHION_MNIST_CAPTIONS, CaptionedDataset
from .concat import ConcatDomains
from .digits import DIGIT_CLASSES, Digits, MNIST5k
from .faces import DCGANFaceGenerator, DCGANFaces, dcgan_face_weights_path, load_dcgan_face_generator
from .factory import DATASETS, get_dataset
from .fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DEBIAN_DIR,
    FASHION_MNIST_ENV,
    FashionMNIST,
    find_fashion_mnist,
)
from .folder import IMAGE_EXTENSIONS, ImageFolder, find_images
from .idx import read_idx
from .image_arrays import stratified_split
from .latent_cache import LatentDataset, encode_dataset
from .subset import Subset

__all__ = [
    "DATASETS",
    "DIGIT_CLASSES",
    "FASHION_MNIST_CAPTIONS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_DEBIAN_DIR",
    "FASHION_MNIST_ENV",
    "IMAGE_EXTENSIONS",
    "CaptionedDataset",
    "ConcatDomains",
    "DCGANFaceGenerator",
    "DCGANFaces",
    "Digits",
    "FashionMNIST",
    "ImageFolder",
    "LatentDataset",
    "MNIST5k",
    "Subset",
    "dcgan_face_weights_path",
    "encode_dataset",
    "find_fashion_mnist",
    "find_images",
    "get_dataset",
    "load_dcgan_face_generator",
    "read_idx",
    "stratified_split",
]
