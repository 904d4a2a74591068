"""Tiny trained runs for the serve tests, one per tab: the shipped experts, a tiny cINN, a few steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from net2net.experts.target import AutoencoderTarget, build_encoder_decoder
from net2net.training.run import train_from_config


def _images(n: int = 128) -> dict[str, Any]:
    return {"target": "net2net.data.Subset", "params": {"n": n, "seed": 0, "dataset": {
        "target": "net2net.data.FashionMNIST", "params": {"split": "test"}}}}  # fmt: skip


def tiny_text_run(root: Path, steps: int = 8) -> Path:
    """Train Sentence-BERT -> the shipped Fashion-MNIST autoencoder on 128 captioned images into ``root/run``.

    The latent cache goes to ``root/cache`` (the 200 hand-written training phrasings and 128 images are encoded).
    """
    source = {"target": "net2net.experts.text.SentenceEncoder"}
    train = {"target": "net2net.data.CaptionedDataset", "params": {"part": "train", "dataset": _images()}}
    return _train(root, source, 384, train, steps, source_key="captions")


def tiny_exemplar_run(root: Path, steps: int = 8) -> Path:
    """Train the shipped classifier's one-hot argmax -> the shipped autoencoder on 128 images into ``root/run``."""
    source = {"target": "net2net.experts.label.classifier_argmax_expert",
              "params": {"path_or_model": "pretrained:fashion_mnist_classifier"}}  # fmt: skip
    return _train(root, source, 10, _images(), steps, source_key="image")


def tiny_diagnosis_run(root: Path, steps: int = 4) -> Path:
    """Train the shipped classifier's logits (layer ``fc``, the diagnosis experiment's last layer) -> autoencoder."""
    source = {"target": "net2net.experts.layer.classifier_expert",
              "params": {"path_or_model": "pretrained:fashion_mnist_classifier", "layer": "fc"}}  # fmt: skip
    return _train(root, source, 10, _images(64), steps, source_key="image")


def tiny_unpaired_run(root: Path, steps: int = 4) -> Path:
    """Train domain label -> the shipped autoencoder of MNIST ∪ Fashion-MNIST ∪ 8x8 digits, 32 images per domain."""
    params = {"split": "train", "size": 28, "channels": 1}
    classes = {"mnist": "MNIST5k", "fashion_mnist": "FashionMNIST", "digits": "Digits"}
    datasets = {name: {"target": f"net2net.data.{cls}", "params": dict(params)} for name, cls in classes.items()}
    train = {"target": "net2net.training.datamodule.concat_domains",
             "params": {"datasets": datasets, "max_per_domain": 32, "seed": 0}}
    source = {"target": "net2net.experts.label.LabelEncoder", "params": {"n_classes": 3}}
    target = {"target": "net2net.experts.target.load_autoencoder_target",
              "params": {"path": "pretrained:digits_union_autoencoder"}}  # fmt: skip
    return _train(root, source, 3, train, steps, source_key="domain", target=target)


def tiny_superres_run(root: Path, steps: int = 4) -> Path:
    """Train a randomly initialised 14 px autoencoder's encoder (a low-res source) -> the shipped autoencoder."""
    torch.manual_seed(0)
    enc_cfg = {"target": "net2net.autoencoder.Encoder",
               "params": {"image_size": 14, "in_channels": 1, "z_dim": 8, "depths": [1, 1, 1, 1], "base_width": 8}}
    dec_cfg = {"target": "net2net.autoencoder.Decoder", "params": {
        "image_size": 14, "out_channels": 1, "z_dim": 8, "ch": 16, "channel_multipliers": [4, 2]}}  # fmt: skip
    enc, dec = build_encoder_decoder(encoder_config=enc_cfg, decoder_config=dec_cfg)
    low = AutoencoderTarget(enc, dec, {"image_size": 14, "in_channels": 1, "z_dim": 8,
                                       "encoder_config": enc_cfg, "decoder_config": dec_cfg})  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    low.save_safetensors(root / "ae14.safetensors")
    source = {"target": "net2net.experts.resize.low_res_encoder", "params": {"path": str(root / "ae14.safetensors")}}
    return _train(root, source, 8, _images(64), steps, source_key="image")


def _train(root: Path, source: dict[str, Any], cond_dim: int, train: dict[str, Any], steps: int, source_key: str,
           target: dict[str, Any] | None = None) -> Path:  # fmt: skip
    cfg = {
        "model": {"target": "net2net.training.translator.CINNModule", "params": {
            "batch_size": 32,
            "flow_config": {"target": "net2net.flows.ConditionalINN", "params": {
                "dim": 64, "cond_dim": cond_dim, "n_blocks": 2, "hidden_dim": 32, "hidden_depth": 1,
                "embedding_dim": 16}},
            "optim": {"max_lr": 1e-3, "warmup_steps": 2, "decay_steps": steps}}},
        "data": {"target": "net2net.training.translation.TranslationDataModule", "params": {
            "name": "serve-test", "batch_size": 32, "source_key": source_key, "cache_dir": str(root / "cache"),
            "progress": False, "source": source,
            "target": target or {"target": "net2net.experts.target.load_autoencoder_target",
                                 "params": {"path": "pretrained:fashion_mnist_autoencoder"}},
            "train": train}},
        "seed": 0,
        "lightning": {"trainer": {"max_steps": steps, "enable_progress_bar": False, "accelerator": "cpu",
                                  "log_every_n_steps": 1},
                      "callbacks": {"image_logger": {"params": {"every_n_steps": steps, "max_images": 4}},
                                    "checkpoint": {"params": {"every_n_train_steps": steps}}}},
    }  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    (root / "cfg.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg)))
    train_from_config(root / "cfg.yaml", log_dir=root / "run")
    return root / "run"
