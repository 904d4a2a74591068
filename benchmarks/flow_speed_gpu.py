"""GPU speed of the cINN at the paper configuration: float32, TF32 and bf16 mixed precision, against FrEIA 0.2.

Same network and inputs as ``flow_speed.py`` (dim 128, 20 blocks, hidden 1024, depth 2, condition and
embedding 128). On one CUDA device, timed interleaved repeat by repeat (CUDA-synchronised wall clock,
medians with min/max over ``--repeats`` rounds of ``--iters`` steps): a training step (forward, NLL, backward,
Adam) at batch 25 and 256 and sampling at batch 256, for

- FrEIA 0.2 in float32 with PyTorch's default Adam (the baseline, as in ``flow_speed.py``),
- net2net in float32 (TF32 matmuls off), with TF32 matmuls, and under ``torch.autocast(dtype=torch.bfloat16)``
  (float32 master weights; the coupling's affine map and log-determinant stay in float32).

Then the bf16 check: two copies of the same initial network train for ``--check-steps`` steps on the same
linear-Gaussian batches, one in float32 and one in bf16 autocast; the table gives their final held-out NLL
(float32 evaluation) and the float32 inversion error of the bf16-trained flow.

    python benchmarks/flow_speed_gpu.py            # needs a CUDA device and FrEIA 0.2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_speed import BUILDERS, COND, DIM  # same networks as the CPU benchmark


def _timed(fn, iters: int) -> float:
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1e3 / iters  # seconds per call


def _prepare(impl: str, mode: str, task: str, batch: int):
    torch.manual_seed(0)
    model, _, (forward, _) = BUILDERS[impl]()  # optimiser rebuilt below for the moved parameters; own sample_step
    model.cuda()
    if impl == "net2net":  # rebuild the optimiser on the moved parameters (fused CUDA Adam)
        from net2net.training.optim import FlowOptimConfig, make_optimizer

        opt, _ = make_optimizer(model.parameters(), FlowOptimConfig(), batch)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9), amsgrad=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    z = torch.randn(batch, DIM, device="cuda", generator=g)
    c = torch.randn(batch, COND, device="cuda", generator=g)
    forward(z, c)

    def ctx():
        if mode == "bf16":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step() -> None:
        with ctx():
            v, logdet = forward(z, c)
            loss = (0.5 * v.float().square().sum(1) - logdet.float()).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    if impl == "FrEIA 0.2":
        def sample_step() -> None:
            with torch.no_grad(), ctx():
                v = torch.randn(batch, DIM, device="cuda")
                model["inn"](v, c=[model["embedder"](c)], rev=True)
    else:
        def sample_step() -> None:
            with torch.no_grad(), ctx():
                model.sample(c, 1)

    return train_step if task == "train" else sample_step


def speed_table(repeats: int, iters: int) -> None:
    variants = [("FrEIA 0.2", "fp32"), ("net2net", "fp32"), ("net2net", "tf32"), ("net2net", "bf16")]
    rows = []
    for task, batch in (("train", 25), ("train", 256), ("sample", 256)):
        fns = {}
        for impl, mode in variants:
            fns[(impl, mode)] = _prepare(impl, mode, task, batch)
        times: dict[tuple[str, str], list[float]] = {k: [] for k in fns}
        for _ in range(repeats + 1):  # the first round warms up (kernels, allocator)
            for (impl, mode), fn in fns.items():
                torch.backends.cuda.matmul.allow_tf32 = mode == "tf32"
                times[(impl, mode)].append(_timed(fn, iters))
        torch.backends.cuda.matmul.allow_tf32 = False
        base = statistics.median(times[("FrEIA 0.2", "fp32")][1:])
        for key, ts in times.items():
            ts = ts[1:]
            med = statistics.median(ts)
            rows.append((f"{task} b{batch}", f"{key[0]} {key[1]}", med * 1e3, min(ts) * 1e3, max(ts) * 1e3, base / med))
        del fns
        torch.cuda.empty_cache()
    print("| task | implementation | median ms | min | max | speed-up vs FrEIA fp32 |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2f} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.2f}x |")


def bf16_check(steps: int, batch: int = 256) -> None:
    from net2net.flows import ConditionalINN, nll
    from net2net.synthetic import LinearGaussian
    from net2net.training.optim import FlowOptimConfig, learning_rate, make_optimizer

    task = LinearGaussian(dim=DIM, cond_dim=COND, seed=0)
    results = {}
    for mode in ("fp32", "bf16"):
        torch.manual_seed(0)
        tau = ConditionalINN(DIM, COND, n_blocks=20, hidden_dim=1024, hidden_depth=2, embedding_dim=128).cuda()
        opt, sched = make_optimizer(tau.parameters(), FlowOptimConfig(), batch)
        g = torch.Generator().manual_seed(1)
        for _ in range(steps):
            z_tgt, z_src = (t.cuda() for t in task.sample(batch, generator=g))
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "bf16"):
                v, logdet = tau(z_tgt, z_src)
                loss = nll(v.float(), logdet.float()).per_sample.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tau.parameters(), 100.0)
            opt.step()
            if sched is not None:
                sched.step()
        tau.eval()
        with torch.no_grad():
            z_tgt, z_src = (t.cuda() for t in task.sample(4096, generator=torch.Generator().manual_seed(2)))
            v, logdet = tau(z_tgt, z_src)
            held_out = float(nll(v, logdet).nats_per_dim.mean())
            back, _ = tau.inverse(v, z_src)
            rel = float((back - z_tgt).norm() / z_tgt.norm())
        results[mode] = (held_out, rel)
    print(f"\nbf16 check, {steps} steps at batch {batch} (learning rate {learning_rate(FlowOptimConfig(), batch):.2e}), "
          f"true conditional entropy {task.conditional_entropy() / DIM:.4f} nats/dim")
    print("| training precision | held-out NLL (nats/dim, fp32 eval) | fp32 inversion rel. error |")
    print("|---|---|---|")
    for mode, (h, r) in results.items():
        print(f"| {mode} | {h:.4f} | {r:.2e} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--iters", type=int, default=20, help="steps per timed round")
    ap.add_argument("--check-steps", type=int, default=1500)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("flow_speed_gpu.py needs a CUDA device")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    speed_table(args.repeats, args.iters)
    bf16_check(args.check_steps)


if __name__ == "__main__":
    main()
