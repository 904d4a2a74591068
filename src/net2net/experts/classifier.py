"""A small ResNet classifier for 28/32 px images, trained here, whose layers serve as source experts.

The model-diagnosis experiment (paper Sec. E, Fig. 5 / Tab. S4) translates the representation of an
early, a middle and the last layer of a classifier into images. Here the classifier is a small
ResNet trained on Fashion-MNIST on the CPU: :func:`train_fashion_mnist_classifier` trains it and
saves a safetensors file, :func:`load_classifier` rebuilds it frozen, and
:meth:`SmallResNet.features` returns the named activations (``stem``, ``stage1`` .. ``stageN``,
``pool``, ``fc``).

Command line::

    python -m net2net.experts.classifier --out checkpoints/fashion_mnist_classifier.safetensors --epochs 3 --widths 16 32 64
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_save
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from .base import describe_state_mismatch

__all__ = [
    "CHECKPOINT_FORMAT",
    "BasicBlock",
    "ClassifierModule",
    "SmallResNet",
    "augment_batch",
    "load_classifier",
    "main",
    "read_classifier_metadata",
    "save_classifier",
    "train_fashion_mnist_classifier",
]

CHECKPOINT_FORMAT = "net2net.SmallResNet/1"  # the "format" metadata entry of files written by save_classifier


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block (He et al. 2016): ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    The shortcut is the identity, or a strided 1x1 convolution with BatchNorm where the stride or the
    width changes. (Zero-initialising the second BatchNorm's scale, a common trick for long runs,
    slowed the first hundred steps down markedly here: 54 % against 66 % test accuracy after 100
    steps, so it is not used.)
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


class SmallResNet(nn.Module):
    """A small ResNet for 28x28 or 32x32 images in [-1, 1] (any size >= 8 works: global pooling).

    Layout: ``stem`` (3x3 conv, BN, ReLU) -> ``stage1`` .. ``stageN`` (``blocks_per_stage`` basic blocks
    each; ``stage1`` keeps the resolution, each later stage halves it) -> ``pool`` (global average,
    flattened) -> ``fc`` (linear to logits). With the default widths and a 28x28 input the activations
    are ``stem`` (32, 28, 28), ``stage1`` (32, 28, 28), ``stage2`` (64, 14, 14), ``stage3`` (128, 7, 7),
    ``pool`` (128,), ``fc`` (10,); about 0.7M parameters.

    Arguments:
        in_channels: 1 (grey) or 3 (RGB).
        n_classes: number of output logits.
        widths: channels of each stage; its length is the number of stages.
        blocks_per_stage: basic blocks per stage.

    Example:
        >>> net = SmallResNet()
        >>> feats = net.features(torch.zeros(2, 1, 28, 28))
        >>> {k: tuple(v.shape) for k, v in feats.items()}["stage3"]
        (2, 128, 7, 7)
    """

    def __init__(
        self,
        in_channels: int = 1,
        n_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        blocks_per_stage: int = 2,
    ) -> None:
        super().__init__()
        widths = tuple(widths)
        if not widths:
            raise ValueError("widths must name at least one stage width, got an empty sequence")
        for w in widths:
            _check_positive_int("every entry of widths", w)
        self.in_channels = _check_positive_int("in_channels", in_channels)
        self.n_classes = _check_positive_int("n_classes", n_classes)
        self.widths = widths
        self.blocks_per_stage = _check_positive_int("blocks_per_stage", blocks_per_stage)
        self.frozen = False

        self.stem = nn.Sequential(_conv3x3(in_channels, widths[0]), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        self.stage_names = tuple(f"stage{i + 1}" for i in range(len(widths)))
        in_w = widths[0]
        for i, (name, w) in enumerate(zip(self.stage_names, widths)):
            stride = 1 if i == 0 else 2
            blocks = [BasicBlock(in_w, w, stride)] + [BasicBlock(w, w) for _ in range(blocks_per_stage - 1)]
            self.add_module(name, nn.Sequential(*blocks))
            in_w = w
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(widths[-1], n_classes)
        self.layer_names: tuple[str, ...] = ("stem", *self.stage_names, "pool", "fc")

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @property
    def architecture(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable: ``SmallResNet(**net.architecture)`` rebuilds it."""
        return {
            "in_channels": self.in_channels,
            "n_classes": self.n_classes,
            "widths": list(self.widths),
            "blocks_per_stage": self.blocks_per_stage,
        }

    def features(self, x: Tensor, layers: Sequence[str] | None = None) -> dict[str, Tensor]:
        """Return the activations of the named layers, in network order.

        Arguments:
            x: images ``(B, in_channels, H, W)`` in [-1, 1].
            layers: names from :attr:`layer_names` (``stem``, ``stage1`` .., ``pool``, ``fc``); ``None``
                returns all. The forward pass stops after the last requested layer.

        Returns:
            ``{name: activation}``: ``(B, C, H', W')`` for ``stem`` and the stages, ``(B, widths[-1])``
            for ``pool``, ``(B, n_classes)`` logits for ``fc``.
        """
        wanted = set(self.layer_names if layers is None else layers)
        unknown = wanted.difference(self.layer_names)
        if unknown:
            raise ValueError(f"unknown layer(s) {sorted(unknown)}; expected names from {list(self.layer_names)}")
        self._check_input(x)
        out: dict[str, Tensor] = {}
        h = x
        for name in self.layer_names:
            h = getattr(self, name)(h)
            if name in wanted:
                out[name] = h
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(B, n_classes)`` of images ``(B, in_channels, H, W)``."""
        self._check_input(x)
        h = self.stem(x)
        for name in self.stage_names:
            h = getattr(self, name)(h)
        return self.fc(self.pool(h))

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SmallResNet expects images of shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )

    def freeze(self) -> SmallResNet:
        """Put the network in eval mode for good (a later ``train()`` keeps it there) and stop its gradients."""
        self.frozen = True
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> SmallResNet:
        """As :meth:`nn.Module.train`, except that a frozen network stays in eval mode."""
        return super().train(False if self.frozen else mode)


# --------------------------------------------------------------------------------------------- training


def augment_batch(
    x: Tensor, pad: int = 2, flip: bool = True, fill: float = -1.0, generator: torch.Generator | None = None
) -> Tensor:
    """Random crop after padding by ``pad`` pixels (filled with ``fill``, black for images in [-1, 1])
    and random horizontal flip, drawn independently for every image of the batch ``(B, C, H, W)``.

    Example:
        >>> augment_batch(torch.zeros(4, 1, 28, 28)).shape
        torch.Size([4, 1, 28, 28])
    """
    if pad < 0:
        raise ValueError(f"pad must be non-negative, got {pad}")
    b, c, h, w = x.shape
    # one gather from the padded batch: output pixel (i, j) of image k reads padded pixel
    # (dy_k + i, dx_k + j), or (dy_k + i, dx_k + W - 1 - j) for a mirrored image
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    cols = torch.arange(w).expand(b, w)  # (B, W)
    if flip:
        mirror = torch.rand(b, generator=generator) < 0.5
        cols = torch.where(mirror[:, None], w - 1 - cols, cols)
    rows = dy[:, None] + torch.arange(h)[None]  # (B, H)
    cols = dx[:, None] + cols  # (B, W)
    w_pad = w + 2 * pad
    index = (rows[:, :, None] * w_pad + cols[:, None, :]).reshape(b, 1, h * w).to(x.device)  # (B, 1, H*W)
    x_pad = F.pad(x, (pad, pad, pad, pad), value=fill).flatten(2)  # (B, C, (H + 2 pad) * (W + 2 pad))
    return x_pad.gather(2, index.expand(b, c, h * w)).view(b, c, h, w)


def _unpack(batch: Any) -> tuple[Tensor, Tensor]:
    """Accept ``(images, labels)`` tuples and ``{"image", "label"}`` dicts (the datasets' items)."""
    images, labels = (batch["image"], batch["label"]) if isinstance(batch, dict) else batch
    return images.contiguous(memory_format=torch.channels_last), labels


class ClassifierModule(L.LightningModule):
    """Trains a :class:`SmallResNet` with cross-entropy, SGD (Nesterov momentum 0.9) and a one-cycle
    learning-rate schedule over the whole run, with random crop + flip augmentation on each batch.

    Arguments:
        architecture: keyword arguments of :class:`SmallResNet`.
        lr: peak learning rate of the one-cycle schedule.
        weight_decay: L2 penalty on convolution and linear weights (not on biases or BatchNorm).
        label_smoothing: of the cross-entropy.
        augment: apply :func:`augment_batch` to training batches.
        pad: padding of the random crop.
        flip: random horizontal flips.

    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/acc`` and ``lr``.
    """

    def __init__(
        self,
        architecture: dict[str, Any] | None = None,
        lr: float = 0.1,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.0,
        augment: bool = True,
        pad: int = 2,
        flip: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # channels_last: about 15 % faster convolutions on CPU (oneDNN) than NCHW, measured here
        self.model = SmallResNet(**(architecture or {})).to(memory_format=torch.channels_last)
        n = self.model.n_classes
        self.train_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=n, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=n, average="micro")

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def on_train_epoch_start(self) -> None:
        # Lightning keeps the train/eval mode each submodule had when fit started; the classifier
        # always trains in train mode (BatchNorm batch statistics), whatever mode it was left in.
        self.model.train()

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        x, y = _unpack(batch)
        if self.hparams.augment:
            x = augment_batch(x, pad=self.hparams.pad, flip=self.hparams.flip)
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits.detach(), y)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(y))
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], batch_size=len(y))
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = _unpack(batch)
        logits = self.model(x)
        self.val_acc(logits, y)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True, batch_size=len(y))
        self.log("val/acc", self.val_acc, prog_bar=True, batch_size=len(y))

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = _unpack(batch)
        self.test_acc(self.model(x), y)
        self.log("test/acc", self.test_acc, batch_size=len(y))

    def configure_optimizers(self) -> Any:
        decay = [p for p in self.model.parameters() if p.dim() > 1]
        no_decay = [p for p in self.model.parameters() if p.dim() <= 1]
        opt = torch.optim.SGD(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr,
            momentum=0.9,
            nesterov=True,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=total, pct_start=0.25, anneal_strategy="cos",
            div_factor=25.0, final_div_factor=1e3,
        )  # fmt: skip
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ------------------------------------------------------------------------------------- save and load


def save_classifier(model: SmallResNet, path: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s weights to a safetensors file, atomically (temporary file + ``os.replace``).

    The metadata holds ``format``, ``architecture`` (JSON of the constructor arguments) and each
    entry of ``metadata`` (strings kept, other values JSON-encoded). Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": CHECKPOINT_FORMAT, "architecture": json.dumps(model.architecture)}
    for key, value in (metadata or {}).items():
        meta[str(key)] = value if isinstance(value, str) else json.dumps(value)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Same folder, so os.replace is atomic. The bytes are written here rather than by
    # safetensors.torch.save_file, which creates files private to the owner (0600), not per the umask.
    data = safetensors_save(tensors, metadata=meta)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_classifier_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a classifier file written by :func:`save_classifier` (raw strings)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights not found: {path}. Train them with "
            f"`python -m net2net.experts.classifier --out {path}`"
        )
    from ..io import read_safetensors_metadata

    return read_safetensors_metadata(path, "the classifier weights", "train them again (python -m "
                                     "net2net.experts.classifier) or copy the file again")  # fmt: skip


def load_classifier(path: str | os.PathLike[str], architecture: dict[str, Any] | None = None) -> SmallResNet:
    """Rebuild a :class:`SmallResNet` from a file written by :func:`save_classifier`, frozen and in eval mode.

    Arguments:
        path: the safetensors file, or ``pretrained:fashion_mnist_classifier`` for the shipped one.
        architecture: the architecture the caller expects (constructor arguments); ``None`` takes the
            one stored in the file. Given, it must agree with the stored weights.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says how to train one).
        ValueError: the file is not a SmallResNet checkpoint, or its tensors do not fit the
            architecture (the message lists missing / unexpected keys and shape mismatches).

    Example:
        >>> net = load_classifier("checkpoints/fashion_mnist_classifier.safetensors")  # doctest: +SKIP
        >>> net.features(images, ["stage2"])["stage2"].shape  # doctest: +SKIP
        torch.Size([B, 64, 14, 14])
    """
    from ..pretrained import resolve_weights

    path = resolve_weights(path)
    meta = read_classifier_metadata(path)
    if architecture is None:
        if meta.get("format") != CHECKPOINT_FORMAT or "architecture" not in meta:
            raise ValueError(
                f"{path} is not a SmallResNet checkpoint: expected metadata format={CHECKPOINT_FORMAT!r} with an "
                f"'architecture' entry, received metadata keys {sorted(meta)} (format={meta.get('format')!r}). "
                "Write it with net2net.experts.classifier.save_classifier, or pass architecture=..."
            )
        architecture = json.loads(meta["architecture"])
    model = SmallResNet(**architecture)
    expected = model.state_dict()
    with safe_open(str(path), framework="pt") as f:
        received = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        mismatch = describe_state_mismatch(expected, received)
        if mismatch:
            raise ValueError(
                f"{path} does not hold weights of SmallResNet({architecture}): {mismatch}. "
                "Was it saved from a different architecture?"
            )
        state = {k: f.get_tensor(k) for k in received}
    model.load_state_dict(state, strict=True)
    return model.freeze()


# ------------------------------------------------------------------------------------------ recipe


def _fashion_mnist_tensors(split: str, root: str | os.PathLike[str] | None) -> tuple[Tensor, Tensor]:
    """The whole split as ``(N, 1, 28, 28)`` float32 in [-1, 1] and ``(N,)`` int64 labels."""
    from net2net.data import FashionMNIST  # data is a sibling layer; imported here to keep module import light

    ds = FashionMNIST(root=root, split=split)
    images = torch.from_numpy(np.asarray(ds.images, dtype=np.float32)) * (2.0 / 255.0) - 1.0  # same as to_image
    return images[:, None].contiguous(), torch.from_numpy(np.array(ds.labels, dtype=np.int64))  # copy: read-only source


def _take(images: Tensor, labels: Tensor, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    if n is None or n >= len(labels):
        return images, labels
    idx = torch.randperm(len(labels), generator=generator)[:n]
    return images[idx], labels[idx]


class _StepTimer(L.Callback):
    """Wall time spent in training steps (forward, backward, optimiser), without validation or setup."""

    def __init__(self) -> None:
        self.seconds, self.steps, self._t0 = 0.0, 0, 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._t0 = time.perf_counter()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.seconds += time.perf_counter() - self._t0
        self.steps += 1


def train_fashion_mnist_classifier(
    out_path: str | os.PathLike[str],
    epochs: int = 3,
    batch_size: int = 128,
    subset: int | None = None,
    seed: int = 0,
    *,
    lr: float = 0.1,
    val_size: int = 2000,
    test_subset: int | None = None,
    root: str | os.PathLike[str] | None = None,
    architecture: dict[str, Any] | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Train a :class:`SmallResNet` on Fashion-MNIST on the CPU, test it, and save it with :func:`save_classifier`.

    With ``architecture={"widths": [16, 32, 64]}`` (the command line's default, 0.17M parameters) and the defaults
    (3 epochs of 58k images = 1359 steps of 128, one-cycle SGD with peak rate 0.1) it reached 90.95 % test
    accuracy in 7.0 minutes on 2 CPU cores (0.31 s per step). The wider default ``SmallResNet`` (32, 64, 128)
    costs 0.80 s per step here.

    Arguments:
        out_path: the safetensors file to write (atomically).
        epochs: passes over the training images.
        batch_size: images per step.
        subset: train on this many random training images (``None``: all but the validation ones).
        seed: seeds weights, data order, augmentation and the subsets.
        lr: peak learning rate.
        val_size: training images held out for the per-epoch validation accuracy (0 disables validation).
        test_subset: test on this many random test images (``None``: all 10000).
        root: Fashion-MNIST directory (see :func:`net2net.data.find_fashion_mnist`).
        architecture: :class:`SmallResNet` arguments; ``None`` keeps its defaults for 1-channel 28x28.
        progress_bar: show Lightning's progress bar.

    Returns:
        ``{"path", "test_acc", "val_acc", "train_acc", "train_loss", "epochs", "steps", "batch_size",
        "train_images", "test_images", "fit_seconds", "seconds_per_step", "seed", "architecture"}``;
        ``fit_seconds`` includes validation, ``seconds_per_step`` counts training steps only.
    """
    epochs = _check_positive_int("epochs", epochs)
    batch_size = _check_positive_int("batch_size", batch_size)
    for name, value in (("subset", subset), ("test_subset", test_subset)):
        if value is not None:
            _check_positive_int(name, value)
    if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < 50000:
        raise ValueError(f"val_size must be an int in [0, 50000) (held out of the 60000 training images): {val_size}")
    L.seed_everything(seed, verbose=False)
    g = torch.Generator().manual_seed(seed)

    x_all, y_all = _fashion_mnist_tensors("train", root)
    perm = torch.randperm(len(y_all), generator=g)
    val_idx, train_idx = perm[:val_size], perm[val_size:]
    x_train, y_train = _take(x_all[train_idx], y_all[train_idx], subset, g)
    x_test, y_test = _take(*_fashion_mnist_tensors("test", root), test_subset, g)

    module = ClassifierModule(architecture=architecture, lr=lr)
    train_loader = DataLoader(
        TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True, drop_last=len(y_train) > batch_size,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    val_loader = None
    if val_size > 0:
        val_loader = DataLoader(TensorDataset(x_all[val_idx], y_all[val_idx]), batch_size=512)
    timer = _StepTimer()
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
        enable_progress_bar=progress_bar, enable_model_summary=False, log_every_n_steps=10,
        num_sanity_val_steps=0, limit_val_batches=1.0 if val_loader is not None else 0, callbacks=[timer],
    )  # fmt: skip
    t0 = time.perf_counter()
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    fit_seconds = time.perf_counter() - t0
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}

    trainer.test(module, dataloaders=DataLoader(TensorDataset(x_test, y_test), batch_size=512), verbose=False)
    test_acc = float(trainer.callback_metrics["test/acc"])
    model = module.model.cpu().eval()
    result: dict[str, Any] = {
        "test_acc": test_acc,
        "val_acc": metrics.get("val/acc", math.nan),
        "train_acc": metrics.get("train/acc", math.nan),
        "train_loss": metrics.get("train/loss", math.nan),
        "epochs": epochs,
        "steps": int(trainer.global_step),
        "batch_size": batch_size,
        "train_images": len(y_train),
        "test_images": len(y_test),
        "fit_seconds": fit_seconds,
        "seconds_per_step": timer.seconds / max(1, timer.steps),  # training steps only
        "seed": seed,
        "architecture": model.architecture,
    }
    keep = ("test_acc", "val_acc", "epochs", "steps", "batch_size", "train_images", "test_images", "seed")
    meta = {k: result[k] for k in keep}
    meta["dataset"] = "fashion-mnist"
    result["path"] = str(save_classifier(model, out_path, metadata=meta))
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """``python -m net2net.experts.classifier --out FILE [--epochs N] ...``: train, test, save, print JSON metrics."""
    parser = argparse.ArgumentParser(
        prog="python -m net2net.experts.classifier",
        description="Train the Fashion-MNIST SmallResNet classifier (the source expert of the model-diagnosis "
        "experiment) on the CPU and save it as safetensors.",
    )
    parser.add_argument("--out", required=True, help="safetensors file to write")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate of the one-cycle schedule")
    parser.add_argument("--subset", type=int, default=None, help="train on this many images (default: all)")
    parser.add_argument("--test-subset", type=int, default=None, help="test on this many images (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64],
                        help="channels of each stage (default: %(default)s; 3 epochs reach 91%% test accuracy in 7 min)")
    parser.add_argument("--root", default=None, help="Fashion-MNIST directory (default: search the usual places)")
    parser.add_argument("--no-progress-bar", action="store_true")
    args = parser.parse_args(argv)
    result = train_fashion_mnist_classifier(
        args.out, epochs=args.epochs, batch_size=args.batch_size, subset=args.subset, seed=args.seed, lr=args.lr,
        test_subset=args.test_subset, root=args.root, progress_bar=not args.no_progress_bar,
        architecture={"widths": args.widths},
    )  # fmt: skip
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
