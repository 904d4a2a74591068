"""Speed and memory of the cINN at the paper configuration, against a FrEIA 0.2 baseline.

Both networks are the same mathematics: 20 blocks of [alternating affine coupling with 4 subnets
Linear(64+128 -> 1024), LReLU, 2 x [Linear(1024 -> 1024), LReLU], Linear(1024 -> 64), scale
exp(tanh(.)), ActNorm, fixed random permutation], dim 128, the same dense embedder of a 128-d
condition into 128 features, the same inputs. The baseline is FrEIA's ``RNVPCouplingBlock``
(clamp 1, TANH) + ``ActNorm`` + ``PermuteRandom`` in a ``SequenceINN``, trained with PyTorch's default
Adam (betas (0.5, 0.9), amsgrad), which measures like the original code.

Timing: both implementations and a reference float32 matmul (256x1024 @ 1024x1024) are built in one
process and timed interleaved, repeat by repeat, so that the machine's speed drifts (large on shared
machines) hit all three alike; the table gives medians with min/max, ratios to the baseline and the
fraction of the matmul rate achieved. Peak memory: each implementation alone in its own process.

Precision: every implementation is also timed with bf16 mixed precision (``torch.autocast`` around the forward
pass and the loss, float32 master weights and optimiser), sharing the model and optimiser of its float32 rows,
whenever this run measures bf16 products faster than float32 ones (``--precisions 32 bf16`` forces the bf16 rows,
``--precisions 32`` leaves them out). The header states the CPU's bf16 flags read at run time and both matmul rates;
bf16 rows are compared with the bf16 matmul rate measured between their steps.

Sampling is timed for 256 conditions with one sample each, and for 32 conditions with 8 samples each (the
translate use case); in the second, both embed each condition once, and net2net also computes the condition's
part of every subnet's first layer once per condition.

    python benchmarks/flow_speed.py              # full table (~6 minutes on 2 cores)
    python benchmarks/flow_speed.py --repeats 3  # quicker, noisier
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import torch
from torch import nn

from net2net.flows.precision import cpu_bf16_features, matmul_gflops, precision_context

DIM, COND, EMB, HIDDEN, DEPTH, BLOCKS = 128, 128, 128, 1024, 2, 20
DTYPES = {"32": torch.float32, "bf16": torch.bfloat16}
NAMES = {"32": "float32", "bf16": "bf16 mixed"}


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

    def sample(c, n):
        return model.sample(c, n)  # (B, n, D)

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

    def sample(c, n):  # the embedding once per condition, repeated to its n samples
        v = torch.randn(c.shape[0] * n, DIM)
        return inn(v, c=[model["embedder"](c).repeat_interleave(n, 0)], rev=True)[0]

    return model, opt, (forward, sample)


BUILDERS = {"net2net": build_net2net, "FrEIA 0.2": build_freia}
SAMPLES_PER_INPUT = {"sample": 1, "sample x8": 8}  # sampling tasks: samples drawn per condition


def _prepare(impl: str, task: str, batch: int, precisions: Sequence[str] = ("32",)):
    """Build one implementation and return ``({precision: step_fn}, model)`` for the task on fixed inputs; the
    precisions share the model and optimiser."""
    torch.manual_seed(0)
    model, opt, (forward, sample) = BUILDERS[impl]()
    g = torch.Generator().manual_seed(0)
    z = torch.randn(batch, DIM, generator=g)
    c = torch.randn(batch, COND, generator=g)
    forward(z, c)  # ActNorm initialisation on the same data for both

    def train_step(precision: str) -> None:
        with precision_context(precision):
            v, logdet = forward(z, c)
            loss = (0.5 * v.float().square().sum(1) - logdet.float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_input = SAMPLES_PER_INPUT.get(task, 1)

    def sample_step(precision: str) -> None:
        with torch.no_grad(), precision_context(precision):
            sample(c[: batch // per_input], per_input)  # batch rows: batch / n conditions, n samples each

    step = train_step if task == "train" else sample_step
    return {p: functools.partial(step, p) for p in precisions}, model


def time_worker(task: str, batch: int, repeats: int, precisions: Sequence[str]) -> dict:
    """Time every implementation in every precision and the reference matmuls in one process, interleaved repeat by
    repeat, so that drifts in machine speed hit all of them alike."""
    fns = {}
    macs = {}
    for impl in BUILDERS:
        steps, model = _prepare(impl, task, batch, precisions)
        for p, fn in steps.items():
            fns[f"{impl}|{p}"] = fn
        macs[impl] = linear_macs(model)
    for p in precisions:
        a, w = torch.randn(256, 1024).to(DTYPES[p]), torch.randn(1024, 1024).to(DTYPES[p])

        def matmul(a=a, w=w) -> None:  # about 40 products, so that it lasts about as long as a step
            for _ in range(40):
                a @ w

        fns[f"matmul|{p}"] = matmul
    for fn in fns.values():
        for _ in range(2):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(repeats):
        for k in order if r % 2 == 0 else reversed(order):
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    for p in precisions:
        times[f"matmul_gflops|{p}"] = [40 * 2 * 256 * 1024 * 1024 / t / 1e9 for t in times.pop(f"matmul|{p}")]
    return {"times": times, "macs": macs}


def memory_worker(impl: str, task: str, batch: int, precision: str) -> dict:
    """Peak resident memory of one implementation alone in one precision (three steps after warm-up)."""
    steps, model = _prepare(impl, task, batch, (precision,))
    for _ in range(3):
        steps[precision]()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                    help="a subset of: train25 train256 sample sample_x8 (default: all)")  # fmt: skip
    ap.add_argument("--precisions", nargs="+", default=None, choices=list(DTYPES),
                    help="default: 32, and bf16 where this run measures bf16 products faster")  # fmt: skip
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "time":
            result = time_worker(rest[0], int(rest[1]), int(rest[2]), rest[3].split(","))
        else:
            result = memory_worker(rest[0], rest[1], int(rest[2]), rest[3])
        print(json.dumps(result))
        return

    flags = cpu_bf16_features()
    f32, bf16 = matmul_gflops(torch.float32, repeats=30), matmul_gflops(torch.bfloat16, repeats=30)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ATen CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; bf16 flags in /proc/cpuinfo: {', '.join(flags) or 'none'}")
    print(f"matmul 256x1024 @ 1024x1024 (median of 30): float32 {f32:.0f} GFLOP/s, bf16 {bf16:.0f} GFLOP/s "
          f"({bf16 / f32:.2f}x)")  # fmt: skip
    precisions = args.precisions or (["32", "bf16"] if bf16 > f32 else ["32"])
    if args.precisions is None:
        print("bf16 products are " + ("faster here: bf16 mixed-precision rows measured" if bf16 > f32 else
              "slower here: bf16 rows left out (--precisions 32 bf16 measures them anyway)") + "\n")  # fmt: skip
    all_jobs = {"train25": ("train", 25), "train256": ("train", 256), "sample": ("sample", 256),
                "sample_x8": ("sample x8", 256)}  # fmt: skip
    unknown = set(args.tasks or ()) - set(all_jobs)
    if unknown:
        ap.error(f"unknown tasks {sorted(unknown)}; choose from {list(all_jobs)}")
    jobs = [job for name, job in all_jobs.items() if args.tasks is None or name in args.tasks]
    rows = []
    for task, batch in jobs:
        timing = run_worker("time", task, str(batch), str(args.repeats), ",".join(precisions))
        mem = {(impl, p): run_worker("memory", impl, task, str(batch), p) for impl in BUILDERS for p in precisions}
        base32 = statistics.median(timing["times"]["FrEIA 0.2|32"])
        for p in precisions:
            rate = statistics.median(timing["times"][f"matmul_gflops|{p}"])
            base = statistics.median(timing["times"][f"FrEIA 0.2|{p}"])
            for impl in BUILDERS:
                ts = timing["times"][f"{impl}|{p}"]
                t = statistics.median(ts)
                flops = (6 if task == "train" else 2) * timing["macs"][impl] * batch
                n = SAMPLES_PER_INPUT.get(task, 1)
                label = f"{task.split()[0]} step, batch {batch}"
                label += f" ({batch // n} inputs x {n} samples)" if n > 1 else ""
                rows.append(
                    f"| {label} | {impl} | {NAMES[p]} | {t:.3f} ({min(ts):.3f}-{max(ts):.3f}) | {batch / t:.0f} "
                    f"| {flops / t / 1e9:.0f} | {flops / t / 1e9 / rate:.0%} of {rate:.0f} "
                    f"| {mem[impl, p]['peak_rss_mb']:.0f} | {base / t:.2f}x | {base32 / t:.2f}x |"
                )
        print(f"  measured {task} batch {batch}", file=sys.stderr)

    print("| measurement | implementation | precision | median s (min-max) | samples/s | GFLOP/s "
          "| of matmul GFLOP/s in its precision | peak RSS MB | vs FrEIA same precision | vs FrEIA float32 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    p = mem["net2net", "32"]["params"]
    print(f"\nparameters: {p / 1e6:.1f}M; {args.repeats} repeats, interleaved; FLOPs counted as 2 (forward) + "
          "4 (backward) per multiply-accumulate of the dense layers (nominal: with several samples per input, net2net computes the "
          "condition's part of the first subnet layers once per input, so it does fewer); the matmul rates are "
          "measured between the steps of the same run")


if __name__ == "__main__":
    main()
