"""Training the :class:`~net2net.experts.classifier.SmallResNet` source expert with ``net2net train``.

The classifier trains through the one entry point, :func:`net2net.training.run.train_from_config` (checkpoint,
resume, compute report, progress), from ``configs/classifier/fashion_mnist_classifier.yaml``::

    net2net train configs/classifier/fashion_mnist_classifier.yaml      # runs/fashion_mnist_classifier/classifier.safetensors

- :class:`ClassifierModule`: cross-entropy, SGD with Nesterov momentum and a one-cycle schedule over the run,
  random crop + flip augmentation (:func:`augment_batch`) on every training batch.
- :class:`FashionMNISTClassification`: Fashion-MNIST as ``(images in [-1, 1], labels)``, with a validation split
  held out of the training images and optional random subsets (for short runs and tests).

At the end of the run the module tests itself on the data module's test split and writes
``classifier.safetensors`` (:func:`~net2net.experts.classifier.save_classifier`) with the accuracies in its
metadata; :func:`~net2net.experts.classifier.load_classifier` (or ``pretrained:fashion_mnist_classifier`` for the
shipped copy) reads it.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

from ..experts.classifier import SmallResNet, check_positive_int, save_classifier

__all__ = ["WEIGHTS_NAME", "ClassifierModule", "FashionMNISTClassification", "augment_batch"]

log = logging.getLogger(__name__)

WEIGHTS_NAME = "classifier.safetensors"  # the weights export in the run folder


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

    Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc``, ``test/acc`` and ``lr``. After training,
    :func:`~net2net.training.run.train_from_config` calls :meth:`export_weights`.
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
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing
        self.augment, self.pad, self.flip = augment, pad, flip
        # channels_last: about 15 % faster convolutions on CPU (oneDNN) than NCHW, measured here
        self.model = SmallResNet(**(architecture or {}))
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (torch's stubs lack it)
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
        if self.augment:
            x = augment_batch(x, pad=self.pad, flip=self.flip)
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=self.label_smoothing)
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
            [{"params": decay, "weight_decay": self.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.lr,
            momentum=0.9,
            nesterov=True,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.lr, total_steps=total, pct_start=0.25, anneal_strategy="cos",
            div_factor=25.0, final_div_factor=1e3,
        )  # fmt: skip
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    @torch.no_grad()
    def accuracy(self, loader: Any) -> float:
        """Fraction of correctly classified images of ``loader`` (batches as in :meth:`test_step`), in eval mode."""
        was_training = self.model.training
        self.model.eval()
        correct = total = 0
        for batch in loader:
            x, y = _unpack(batch)
            x, y = x.to(self.device), y.to(self.device)
            correct += int((self.model(x).argmax(1) == y).sum())
            total += len(y)
        self.model.train(was_training)
        return correct / total if total else math.nan

    def export_weights(self, log_dir: Path, global_step: int) -> Path:
        """Test on the data module's test split (if it has one) and write ``log_dir/classifier.safetensors`` with
        the test and validation accuracies, the steps and the data module's :meth:`describe` in its metadata."""
        trainer = self._trainer
        data = getattr(trainer, "datamodule", None)
        meta: dict[str, Any] = {"steps": global_step}
        if trainer is not None:
            meta["epochs"] = trainer.current_epoch
            val_acc = trainer.callback_metrics.get("val/acc")
            if val_acc is not None:
                meta["val_acc"] = float(val_acc)
        if data is not None and hasattr(data, "test_dataloader"):
            meta["test_acc"] = self.accuracy(data.test_dataloader())
            log.info("classifier test accuracy %.4f", meta["test_acc"])
        if data is not None and hasattr(data, "describe"):
            meta.update(data.describe())
        return save_classifier(self.model, log_dir / WEIGHTS_NAME, metadata=meta)  # CPU, contiguous (NCHW) tensors


def _fashion_mnist_tensors(split: str, root: str | os.PathLike[str] | None) -> tuple[Tensor, Tensor]:
    """The whole split as ``(N, 1, 28, 28)`` float32 in [-1, 1] and ``(N,)`` int64 labels."""
    from ..data import FashionMNIST

    ds = FashionMNIST(root=None if root is None else Path(root), split=split)
    images = torch.from_numpy(np.asarray(ds.images, dtype=np.float32)) * (2.0 / 255.0) - 1.0  # same as to_image
    return images[:, None].contiguous(), torch.from_numpy(np.array(ds.labels, dtype=np.int64))  # copy: read-only source


def _take(images: Tensor, labels: Tensor, n: int | None, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    if n is None or n >= len(labels):
        return images, labels
    idx = torch.randperm(len(labels), generator=generator)[:n]
    return images[idx], labels[idx]


class FashionMNISTClassification(L.LightningDataModule):
    """Fashion-MNIST batches ``(images (B, 1, 28, 28) in [-1, 1], labels (B,))`` for :class:`ClassifierModule`.

    ``val_size`` random training images are held out for validation; ``subset`` / ``test_subset`` draw random
    subsets of the rest / of the test images (for short runs). All draws and the data order follow ``seed``.

    Arguments:
        batch_size: training images per step (validation and test use 512).
        subset: train on this many random training images (``None``: all but the validation ones).
        val_size: training images held out for validation (0: no validation).
        test_subset: test on this many random test images (``None``: all 10000).
        seed: seeds the validation split, the subsets and the shuffling.
        root: Fashion-MNIST directory (see :func:`net2net.data.find_fashion_mnist`).
    """

    def __init__(
        self,
        batch_size: int = 128,
        subset: int | None = None,
        val_size: int = 2000,
        test_subset: int | None = None,
        seed: int = 0,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = check_positive_int("data.params.batch_size", batch_size)
        for name, value in (("subset", subset), ("test_subset", test_subset)):
            if value is not None:
                check_positive_int(f"data.params.{name}", value)
        if isinstance(val_size, bool) or not isinstance(val_size, int) or not 0 <= val_size < 50000:
            raise ValueError(
                f"data.params.val_size: expected an int in [0, 50000) (held out of the 60000 training images), "
                f"got {val_size!r}"
            )
        self.subset, self.val_size, self.test_subset, self.seed, self.root = subset, val_size, test_subset, seed, root
        self.train_set: TensorDataset | None = None
        self.val_set: TensorDataset | None = None
        self.test_set: TensorDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:  # train_from_config and Trainer.fit both call it
            return
        g = torch.Generator().manual_seed(self.seed)
        x_all, y_all = _fashion_mnist_tensors("train", self.root)
        perm = torch.randperm(len(y_all), generator=g)
        val_idx, train_idx = perm[: self.val_size], perm[self.val_size :]
        self.train_set = TensorDataset(*_take(x_all[train_idx], y_all[train_idx], self.subset, g))
        self.val_set = TensorDataset(x_all[val_idx], y_all[val_idx])
        self.test_set = TensorDataset(*_take(*_fashion_mnist_tensors("test", self.root), self.test_subset, g))

    def _sets(self) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
        self.setup()
        assert self.train_set is not None and self.val_set is not None and self.test_set is not None
        return self.train_set, self.val_set, self.test_set

    def train_dataloader(self) -> DataLoader:
        train = self._sets()[0]
        n = len(train)
        return DataLoader(train, batch_size=self.batch_size, shuffle=True, drop_last=n > self.batch_size,
                          generator=torch.Generator().manual_seed(self.seed))  # fmt: skip

    def val_dataloader(self) -> DataLoader | list[Any]:
        val = self._sets()[1]
        return DataLoader(val, batch_size=512) if len(val) else []

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._sets()[2], batch_size=512)

    def describe(self) -> dict[str, Any]:
        """What the weights were trained on (metadata of the exported file)."""
        train, _, test = self._sets()
        return {"dataset": "fashion-mnist", "batch_size": self.batch_size, "train_images": len(train),
                "test_images": len(test), "seed": self.seed}  # fmt: skip
