#!/usr/bin/env bash
# Rebuild the three experts shipped in src/net2net/pretrained/ from scratch (about 1 h 50 min on 2 CPU cores):
#   1. the Fashion-MNIST classifier (configs/classifier/fashion_mnist_classifier.yaml: SmallResNet 16-32-64,
#      3 epochs, seed 0): ~7 min, 91 % test accuracy
#   2. the Fashion-MNIST autoencoder (configs/autoencoder/fashion_mnist.yaml, 5400 steps, seed 0): ~66 min,
#      86 % of its test reconstructions recognised by the classifier
#   3. the autoencoder of MNIST ∪ Fashion-MNIST ∪ 8x8 digits (configs/autoencoder/digits_union.yaml, 1800 steps,
#      seed 0): ~22 min; the target of `net2net reproduce unpaired`
# then evaluates the Fashion-MNIST autoencoder (PSNR, classifier accuracy on reconstructions, FID) into
# docs/autoencoder.json.
# Run from the repository root after ./scripts/setup.sh.
set -euo pipefail
PY=${PY:-.venv/bin/python}
OUT=src/net2net/pretrained
"$PY" -m net2net.cli train configs/classifier/fashion_mnist_classifier.yaml --log-dir runs/fashion_mnist_classifier
"$PY" -m net2net.cli train configs/autoencoder/fashion_mnist.yaml --log-dir runs/fashion_mnist
cp runs/fashion_mnist_classifier/classifier.safetensors "$OUT/fashion_mnist_classifier.safetensors"
cp runs/fashion_mnist/autoencoder.safetensors "$OUT/fashion_mnist_autoencoder.safetensors"
"$PY" -m net2net.cli train configs/autoencoder/digits_union.yaml --log-dir runs/digits_union
cp runs/digits_union/autoencoder.safetensors "$OUT/digits_union_autoencoder.safetensors"
"$PY" -m net2net.cli evaluate-autoencoder "$OUT/fashion_mnist_autoencoder.safetensors" \
    --classifier "$OUT/fashion_mnist_classifier.safetensors" --fid-images 300 --json docs/autoencoder.json --png docs/figures/autoencoder_fashion_mnist.png
