"""Training the dequantisation VAE of Tab. S4 (supplementary G.2) with ``net2net train``.

The VAE (:class:`~net2net.experts.biggan.DequantizationVAE`) learns a continuous, stochastic version ``ĥ`` of
BigGAN's K class embeddings (the rows of ``W``). It trains through the one entry point,
:func:`net2net.training.run.train_from_config`, from ``configs/biggan/dequantization_vae.yaml``::

    net2net train configs/biggan/dequantization_vae.yaml data.params.biggan=~/weights/biggan-deep-128

- :class:`DequantizationVAEModule`: Adam on the negative ELBO :meth:`DequantizationVAE.loss`.
- :class:`ClassEmbeddings`: batches of class embeddings drawn with replacement from a BigGAN's weights.

At the end of the run the module measures :meth:`DequantizationVAE.class_accuracy` on the embeddings and writes
``dequantization_vae.safetensors`` (the file :meth:`BigGANTarget.from_pretrained` picks up when it lies beside
the generator's files, or takes as ``vae_path``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from ..experts.biggan import VAE_NAME, BigGAN, DequantizationVAE
from ..experts.classifier import check_positive_int

__all__ = ["ClassEmbeddings", "DequantizationVAEModule"]

log = logging.getLogger(__name__)


class DequantizationVAEModule(L.LightningModule):
    """Trains a :class:`DequantizationVAE` with Adam on class embeddings (batches ``(h,)``, ``h`` ``(B, in_dim)``).

    Arguments:
        vae_config: keyword arguments of :class:`DequantizationVAE` (default: the paper's, 128 -> 4096 wide).
        lr: Adam learning rate.
        kl_weight: weight of the KL term (see :meth:`DequantizationVAE.loss`).
        accuracy_samples: samples per class of the class accuracy measured at the end.

    Logs ``train/loss``, ``train/rec`` and ``train/kl``.
    """

    def __init__(
        self, vae_config: dict[str, int] | None = None, lr: float = 1e-4, kl_weight: float = 1.0,
        accuracy_samples: int = 8,
    ) -> None:  # fmt: skip
        super().__init__()
        self.save_hyperparameters()
        self.lr, self.kl_weight, self.accuracy_samples = lr, kl_weight, accuracy_samples
        self.vae = DequantizationVAE(**(vae_config or {}))

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        (h,) = batch
        loss, parts = self.vae.loss(h, self.kl_weight)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(h))
        self.log("train/rec", parts["rec"], batch_size=len(h))
        self.log("train/kl", parts["kl"], batch_size=len(h))
        return loss

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.vae.parameters(), lr=self.lr)

    def export_weights(self, log_dir: Path, global_step: int) -> Path:
        """Write ``log_dir/dequantization_vae.safetensors``, with the steps and, when the data module holds the
        class embeddings, the class accuracy of ``ĥ`` in its metadata."""
        self.vae.eval()
        meta = {"global_step": str(global_step)}
        trainer = self._trainer
        embeddings = getattr(getattr(trainer, "datamodule", None), "embeddings", None)
        if isinstance(embeddings, Tensor):
            accuracy = self.vae.class_accuracy(embeddings.to(self.device), self.accuracy_samples)
            meta["class_accuracy"] = str(accuracy)
            log.info("dequantisation VAE: %.4f of the samples stay nearest to their own class embedding", accuracy)
        return self.vae.cpu().save(log_dir / VAE_NAME, meta)


class ClassEmbeddings(L.LightningDataModule):
    """Batches ``(h,)`` of BigGAN's class embeddings ``(B, class_embed_dim)``, drawn with replacement.

    Arguments:
        biggan: BigGAN weights as accepted by :meth:`BigGAN.from_pretrained` (a pytorch-pretrained-BigGAN
            directory); only the class embedding is used.
        batch_size: embeddings per step.
        batches_per_epoch: batches of one epoch (``lightning.trainer.max_steps`` sets the length of the run).
        seed: seeds the draws.
    """

    def __init__(
        self, biggan: str | os.PathLike[str] | None = None, batch_size: int = 256, batches_per_epoch: int = 1000,
        seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        if biggan is None:
            raise ValueError("data.params.biggan: expected the path of BigGAN weights (a pytorch-pretrained-BigGAN "
                             "directory), received None; pass data.params.biggan=PATH")  # fmt: skip
        self.biggan = biggan
        self.batch_size = check_positive_int("data.params.batch_size", batch_size)
        self.batches_per_epoch = check_positive_int("data.params.batches_per_epoch", batches_per_epoch)
        self.seed = seed
        self.embeddings: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.embeddings is None:  # train_from_config and Trainer.fit both call it
            self.embeddings = BigGAN.from_pretrained(self.biggan).class_embeddings().detach().clone()  # (K, E)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        assert self.embeddings is not None
        sampler = RandomSampler(range(len(self.embeddings)), replacement=True,
                                num_samples=self.batch_size * self.batches_per_epoch,
                                generator=torch.Generator().manual_seed(self.seed))  # fmt: skip
        return DataLoader(TensorDataset(self.embeddings), batch_size=self.batch_size, sampler=sampler)
