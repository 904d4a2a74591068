"""Speed and memory of the cINN at the paper configuration, against a FrEIA 0.2 baseline.

Both networks are the same mathematics: 20 blocks of [alternating affine coupling with 4 subnets
Linear(64+128 -> 1024), LReLU, 2 x [Linear(1024 -> 1024), LReLU], Linear(1024 -> 64), scale
exp(tanh(.)), ActNorm, fixed random permutation], dim 128, the same dense embedder of a 128-d
condition into 128 features, the same inputs. The baseline is FrEIA's ``RNVPCouplingBlock``
(clamp 1, TANH) + ``ActNorm`` + ``PermuteRandom`` in a ``SequenceINN``, trained with PyTorch's default
Adam (betas (0.5, 0.9), amsgrad), which measures like the original code.

Each measurement runs in its own process (so peak memory is that of one job) and reports the median
and min/max of several repeats after warm-up. Also measured: this machine's float32 (and bf16)
matmul rate on a 256x1024 by 1024x1024 product, and the fraction of it each implementation achieves.

    python benchmarks/flow_speed.py              # full table (~5 minutes on 2 cores)
    python benchmarks/flow_speed.py --repeats 3  # quicker
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

DIM, COND, EMB, HIDDEN, DEPTH, BLOCKS = 128, 128, 128, 1024, 2, 20


def matmul_gflops(dtype: torch.dtype, repeats: int = 30) -> float:
    a = torch.randn(256, 1024, dtype=dtype)
    w = torch.randn(1024, 1024, dtype=dtype)
    for _ in range(5):
        a @ w
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ w
        times.append(time.perf_counter() - t)
    return 2 * 256 * 1024 * 1024 / statistics.median(times) / 1e9


def linear_macs(model: nn.Module) -> int:
    """Multiply-accumulates per sample of all dense layers (subnets and embedder)."""
    from net2net.flows import ScaleShiftMLP

    macs = 0
    for m in model.modules():
        if isinstance(m, nn.Linear):
            macs += m.in_features * m.out_features
        elif isinstance(m, ScaleShiftMLP):
            macs += sum(w.shape[0] * w.shape[1] * w.shape[2] for w in m.weights)
    return macs


def build_net2net() -> tuple[nn.Module, object, object]:
    from net2net.flows import ConditionalINN
    from net2net.training.optim import FlowOptimConfig, make_optimizer

    model = ConditionalINN(DIM, COND, n_blocks=BLOCKS, hidden_dim=HIDDEN, hidden_depth=DEPTH, embedding_dim=EMB)
    opt, _ = make_optimizer(model.parameters(), FlowOptimConfig(), 25)

    def forward(z, c):
        return model(z, c)

    def sample(c):
        return model.sample(c, 1)

    return model, opt, (forward, sample)


def build_freia() -> tuple[nn.Module, object, object]:
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    from net2net.flows import DenseEmbedder

    def subnet(c_in: int, c_out: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Linear(c_in, HIDDEN), nn.LeakyReLU(0.01)]
        for _ in range(DEPTH):
            layers += [nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.01)]
        return nn.Sequential(*layers, nn.Linear(HIDDEN, c_out))

    inn = Ff.SequenceINN(DIM)
    for k in range(BLOCKS):
        inn.append(
            Fm.RNVPCouplingBlock,
            cond=0,
            cond_shape=(EMB,),
            subnet_constructor=subnet,
            clamp=1.0,
            clamp_activation="TANH",
        )
        inn.append(Fm.ActNorm)
        inn.append(Fm.PermuteRandom, seed=k)
    model = nn.ModuleDict({"inn": inn, "embedder": DenseEmbedder(COND, EMB, HIDDEN, DEPTH)})
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9), amsgrad=True)

    def forward(z, c):
        return inn(z, c=[model["embedder"](c)])

    def sample(c):
        v = torch.randn(c.shape[0], DIM)
        return inn(v, c=[model["embedder"](c)], rev=True)[0]

    return model, opt, (forward, sample)


BUILDERS = {"net2net": build_net2net, "FrEIA 0.2": build_freia}


def worker(impl: str, task: str, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model, opt, (forward, sample) = BUILDERS[impl]()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, DIM, generator=g)
    c = torch.randn(batch, COND, generator=g)
    forward(z, c)  # ActNorm initialisation on the same data for both

    def train_step() -> None:
        v, logdet = forward(z, c)
        loss = (0.5 * v.square().sum(1) - logdet).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sample_step() -> None:
        with torch.no_grad():
            sample(c)

    fn = train_step if task == "train" else sample_step
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return {
        "times": times,
        "macs": linear_macs(model),
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(impl: str, task: str, batch: int, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", impl, task, str(batch), "--repeats", str(repeats)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--worker", nargs=3, metavar=("IMPL", "TASK", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        impl, task, batch = args.worker
        print(json.dumps(worker(impl, task, int(batch), args.repeats)))
        return

    f32 = matmul_gflops(torch.float32)
    bf16 = matmul_gflops(torch.bfloat16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"machine: float32 matmul {f32:.0f} GFLOP/s, bf16 matmul {bf16:.0f} GFLOP/s (256x1024 @ 1024x1024, median)\n")
    jobs = [("train", 25), ("train", 256), ("sample", 256)]
    results: dict[tuple[str, str, int], dict] = {}
    for task, batch in jobs:
        for impl in BUILDERS:
            results[impl, task, batch] = r = run_worker(impl, task, batch, args.repeats)
            print(f"  measured {impl:10s} {task} batch {batch}: median {statistics.median(r['times']):.3f} s", file=sys.stderr)

    print("| measurement | implementation | median s (min-max) | samples/s | GFLOP/s | of f32 matmul | peak RSS MB | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for task, batch in jobs:
        base = statistics.median(results["FrEIA 0.2", task, batch]["times"])
        for impl in BUILDERS:
            r = results[impl, task, batch]
            t = statistics.median(r["times"])
            flops = (6 if task == "train" else 2) * r["macs"] * batch
            print(
                f"| {task} step, batch {batch} | {impl} | {t:.3f} ({min(r['times']):.3f}-{max(r['times']):.3f}) "
                f"| {batch / t:.0f} | {flops / t / 1e9:.0f} | {flops / t / 1e9 / f32:.0%} | {r['peak_rss_mb']:.0f} "
                f"| {base / t:.2f}x |"
            )
    p = results["net2net", "train", 25]["params"]
    print(f"\nparameters: {p / 1e6:.1f}M; FLOPs counted as 2 (forward) + 4 (backward) per multiply-accumulate of the dense layers")


if __name__ == "__main__":
    main()
