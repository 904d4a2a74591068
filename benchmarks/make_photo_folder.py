"""Write a folder of 128 px RGB crops of scikit-image's bundled photos: data for smoke-testing the paper-scale
autoencoder config (``configs/autoencoder/paper_128.yaml``) where no image collection is at hand.

    python benchmarks/make_photo_folder.py OUT_DIR [--n 512]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=512)
    args = ap.parse_args()
    import skimage.data as data

    photos = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "retina", "cat"):
        try:
            img = getattr(data, name)()
        except Exception:  # an image that needs a download is skipped
            continue
        if img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 200:
            photos.append(img)
    if not photos:
        raise SystemExit("no bundled RGB photo found in skimage.data")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(args.n):
        img = photos[i % len(photos)]
        side = int(rng.integers(128, min(img.shape[:2]) + 1))
        top = int(rng.integers(0, img.shape[0] - side + 1))
        left = int(rng.integers(0, img.shape[1] - side + 1))
        crop = Image.fromarray(img[top : top + side, left : left + side]).resize((128, 128), Image.BICUBIC)
        crop.save(out / f"{i:05d}.png")


if __name__ == "__main__":
    main()
