"""Large-batch stability of the cINN training recipe at the paper configuration.

Trains the paper-size cINN (dim 128, 20 blocks, hidden 1024, depth 2, condition 128, embedding 128)
at batch 256 on a known-answer problem (:class:`net2net.synthetic.LinearGaussian`), once with the
original recipe (learning rate 4.5e-6 x 256 = 1.15e-3 from the first step, no clipping) and once with
net2net's (learning rate capped, linear warm-up, gradient clipping), from the same initialisation
and on the same batches. Prints a table, writes a CSV and a PNG of both loss curves.

    python benchmarks/lr_stability.py --steps 150 --out docs/figures
"""

from __future__ import annotations

import argparse
import copy
import csv
import math
import time
from pathlib import Path

import torch

from net2net.flows import ConditionalINN, nll
from net2net.synthetic import LinearGaussian
from net2net.training.optim import FlowOptimConfig, clip_gradients, make_optimizer

RECIPES = {
    # the original code: lr = 4.5e-6 * batch, no cap, no warm-up, no clipping
    "original": FlowOptimConfig(max_lr=math.inf, warmup_steps=0, grad_clip=None),
    "net2net": FlowOptimConfig(),
}


def train(model: ConditionalINN, cfg: FlowOptimConfig, batches: list, batch_size: int) -> list[float]:
    opt, sched = make_optimizer(model.parameters(), cfg, batch_size)
    losses = []
    for z_tgt, z_src in batches:
        v, logdet = model(z_tgt, z_src)
        loss = nll(v, logdet).per_sample.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clip_gradients(model.parameters(), cfg)
        opt.step()
        sched.step()
        losses.append(loss.item() if torch.isfinite(loss) else float("nan"))
    return losses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("docs/figures"))
    ap.add_argument("--replot", action="store_true", help="redraw table and figure from OUT/lr_stability.csv")
    args = ap.parse_args()

    problem = LinearGaussian(128, 128, seed=0)
    optimum = problem.conditional_entropy()
    csv_path = args.out / "lr_stability.csv"
    if args.replot:
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))
        curves = {name: [float(r[k + 1]) for r in rows[1:]] for k, name in enumerate(rows[0][1:])}
        args.steps = len(rows) - 1
    else:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(1)
        batches = [problem.sample(args.batch_size, g) for _ in range(args.steps)]
        base = ConditionalINN(128, 128, n_blocks=20, hidden_dim=1024, hidden_depth=2, embedding_dim=128)
        curves = {}
        for name, cfg in RECIPES.items():
            t0 = time.perf_counter()
            curves[name] = train(copy.deepcopy(base), cfg, batches, args.batch_size)
            print(f"{name}: {args.steps} steps in {time.perf_counter() - t0:.0f} s", flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        with open(csv_path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["step", *curves])
            for i in range(args.steps):
                w.writerow([i, *(f"{curves[n][i]:.4f}" for n in curves)])

    print(f"\nbatch {args.batch_size}; true conditional entropy {optimum:.1f} nats (the optimum of the loss)")
    print("| recipe | lr | loss step 0 | min loss (step) | max loss after min | final loss |")
    print("|---|---|---|---|---|---|")
    for name, c in curves.items():
        lr = min(RECIPES[name].base_lr * args.batch_size, RECIPES[name].max_lr)
        finite = [x if math.isfinite(x) else math.inf for x in c]
        i_min = min(range(len(finite)), key=finite.__getitem__)
        after = max(finite[i_min:])
        print(f"| {name} | {lr:.3g} | {c[0]:.1f} | {finite[i_min]:.1f} ({i_min}) | {after:.1f} | {c[-1]:.1f} |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    top = 2.0 * curves["net2net"][0]
    for name, c in curves.items():
        line = ax.plot([min(x, top) if math.isfinite(x) else top for x in c], label=name)[0]
        peak = max(range(len(c)), key=lambda i: c[i] if math.isfinite(c[i]) else math.inf)
        if not math.isfinite(c[peak]) or c[peak] > top:
            label = f"peak {c[peak]:.1e} at step {peak}" if math.isfinite(c[peak]) else f"non-finite at step {peak}"
            ax.annotate(label, (peak, top), color=line.get_color(), textcoords="offset points", xytext=(8, -14), fontsize=9)
    ax.axhline(optimum, color="grey", ls="--", lw=1, label="optimum (true conditional entropy)")
    ax.set_ylim(optimum - 10, top * 1.05)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL per sample [nats] (clipped at the top)")
    ax.set_title(f"paper-size cINN, batch {args.batch_size}, same initialisation and batches")
    ax.legend(loc="center right")
    fig.tight_layout()
    fig.savefig(args.out / "lr_stability.png", dpi=120)
    print(f"wrote {args.out / 'lr_stability.png'}")


if __name__ == "__main__":
    main()
