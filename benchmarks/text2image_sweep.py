"""How the text-to-image cINN's settings were chosen: held-out-phrasing accuracy for a few settings.

Trains the cINN of ``configs/translation/text2image.yaml`` with a plain loop (same optimiser recipe) on the
latent caches that ``net2net encode configs/translation/text2image.yaml`` writes, once per setting, and
reports for each: the held-out NLL, and the accuracy of the shipped Fashion-MNIST classifier on 100 images
generated from each held-out phrasing (phrasings never seen in training). Runs on a GPU when one is there
(the caches and weights are plain files, so they can be copied to a GPU machine).

    python benchmarks/text2image_sweep.py TRAIN_CACHE VAL_CACHE [--steps 3000] [--device cuda]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from net2net.experts.target import AutoencoderTarget
    from net2net.flows import ConditionalINN


def _accuracy(
    tau: ConditionalINN,
    ae: AutoencoderTarget,
    clf: torch.nn.Module,
    src: torch.Tensor,
    labels: torch.Tensor,
    g: torch.Generator,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Per phrasing, the fraction of 100 images sampled from ``tau`` that ``clf`` assigns to its label."""
    z = tau.sample(src, 100, temperature=temperature, generator=g)  # (P, 100, D)
    pred = clf(ae.decode(z.flatten(0, 1))).argmax(1).view(len(src), 100)
    return (pred == labels[:, None]).float().mean(1)  # (P,)


def main() -> None:
    from net2net.data import FASHION_MNIST_CAPTIONS
    from net2net.data.latent_cache import LatentDataset
    from net2net.experts.classifier import load_classifier
    from net2net.experts.target import load_autoencoder_target
    from net2net.flows import ConditionalINN, nll
    from net2net.training.optim import FlowOptimConfig, make_optimizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("train_cache")
    ap.add_argument("val_cache")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.02, 0.05, 0.1])
    ap.add_argument("--embedding", type=int, nargs="+", default=[64])
    ap.add_argument("--blocks", type=int, nargs="+", default=[12])
    ap.add_argument("--hidden", type=int, nargs="+", default=[256])
    ap.add_argument("--ae", default="pretrained:fashion_mnist_autoencoder")
    ap.add_argument("--classifier", default="pretrained:fashion_mnist_classifier")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    dev = torch.device(args.device)

    val = LatentDataset(args.val_cache, sample_target=False)
    label_of = {c: k for k, parts in FASHION_MNIST_CAPTIONS.items() for c in parts["held_out"]}
    held_captions = [c for c in val.manifest["captions"] if c in label_of]
    rows = torch.tensor([val.manifest["captions"].index(c) for c in held_captions])
    held_src = val.src_table[rows].to(dev)  # (P, 384)
    held_labels = torch.tensor([label_of[c] for c in held_captions], device=dev)
    train_probe = LatentDataset(args.train_cache)
    train_captions = train_probe.manifest["captions"]
    train_label_of = {c: k for k, parts in FASHION_MNIST_CAPTIONS.items() for c in parts["train"]}
    keep = [i for i, c in enumerate(train_captions) if c in train_label_of][::4]  # every 4th training phrasing
    train_src = train_probe.src_table[torch.tensor(keep)].to(dev)
    train_labels = torch.tensor([train_label_of[train_captions[i]] for i in keep], device=dev)
    ae = load_autoencoder_target(args.ae).to(dev)
    clf = load_classifier(args.classifier).to(dev)

    results = []
    for noise, emb, blocks, hidden in itertools.product(args.noise, args.embedding, args.blocks, args.hidden):
        torch.manual_seed(0)
        train = LatentDataset(args.train_cache, condition_noise=noise)
        tau = ConditionalINN(train.tgt_dim, train.src_shape[0], n_blocks=blocks, hidden_dim=hidden,
                             embedding_dim=emb).to(dev)  # fmt: skip
        opt, sched = make_optimizer(tau.parameters(), FlowOptimConfig(max_lr=1e-3), args.batch)
        loader = train.loader(args.batch, generator=torch.Generator().manual_seed(0))
        t0, step = time.perf_counter(), 0
        while step < args.steps:
            for batch in loader:
                v, logdet = tau(batch["z_tgt"].to(dev), batch["z_src"].to(dev))
                loss = nll(v, logdet).per_sample.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(tau.parameters(), 100.0)
                opt.step()
                sched.step()
                step += 1
                if step >= args.steps:
                    break
        seconds = time.perf_counter() - t0
        tau.eval()
        with torch.no_grad():
            vb = val[torch.arange(len(val))]
            v, logdet = tau(vb["z_tgt"].to(dev), vb["z_src"].to(dev))
            val_nll = float(nll(v, logdet).nats_per_dim.mean())
            g = torch.Generator(device=dev).manual_seed(1)
            acc_per = _accuracy(tau, ae, clf, held_src, held_labels, g)
            acc_t07 = _accuracy(tau, ae, clf, held_src, held_labels, g, 0.7).mean()
            acc_train = _accuracy(tau, ae, clf, train_src, train_labels, g).mean()
        r = {"noise": noise, "embedding": emb, "blocks": blocks, "hidden": hidden, "steps": args.steps,
             "val_nats_per_dim": round(val_nll, 4), "held_out_accuracy": round(float(acc_per.mean()), 4),
             "held_out_accuracy_T0.7": round(float(acc_t07), 4), "train_phrasing_accuracy": round(float(acc_train), 4),
             "worst_phrasing": held_captions[int(acc_per.argmin())], "worst_accuracy": round(float(acc_per.min()), 3),
             "train_seconds": round(seconds, 1)}  # fmt: skip
        results.append(r)
        print(json.dumps(r), flush=True)
    print("| noise | embedding | blocks | hidden | val nats/dim | train-phrasing acc | held-out acc | held-out acc T=0.7 "
          "| worst phrasing (acc) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['noise']} | {r['embedding']} | {r['blocks']} | {r['hidden']} | {r['val_nats_per_dim']} | "
              f"{r['train_phrasing_accuracy']:.3f} | {r['held_out_accuracy']:.3f} | {r['held_out_accuracy_T0.7']:.3f} "
              f"| {r['worst_phrasing']} ({r['worst_accuracy']}) |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
