"""The main job (``net2net demo``) phase by phase, and its cINN trained in float32 and in bf16 mixed precision.

Phases, each timed in this run: loading the text expert (all-MiniLM-L6-v2) and embedding the 60 held-out phrasings;
the latent cache (a hit when ``net2net demo`` or ``net2net encode`` ran before; else the full encoding); encoding
Fashion-MNIST images with the autoencoder's encoder (a subset, as images/s); training the main job's cINN
(``apps/main_job.py``'s config: 12 blocks, hidden 256, batch 128, its optimiser and schedule, gradient clipping)
once per precision; sampling and decoding 10 prompts x 8 samples; the project's evaluation (``evaluate_text2image``:
the shipped classifier's accuracy on 100 images from each of the 60 held-out phrasings at temperatures 1 and 0.7,
and the samples' diversity).

The precisions are trained side by side in one process from the same initialisation on the same batches, step by
step in alternating order, so that the machine's drifting speed hits them alike; every ``--eval-every`` steps the
held-out NLL (nats/dim, float32 forward, the same 10k validation pairs for all) is recorded against each one's own
cumulative training seconds. Sampling and the evaluation run in float32 for every model, so that they compare what
training produced; the held-out NLL of each model is also computed with a bf16 forward.

    python benchmarks/main_job.py                              # 4000 steps, float32 and bf16 (~25 min idle)
    python benchmarks/main_job.py --steps 500 --eval-every 100 # quick look
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def main() -> None:
    from net2net.apps.main_job import DEMO_PROMPTS, evaluate_text2image, text2image_config
    from net2net.apps.translate import Net2Net
    from net2net.config import instantiate_from_config
    from net2net.data import FASHION_MNIST_CAPTIONS
    from net2net.experts.classifier import load_classifier
    from net2net.flows import nll, precision_context
    from net2net.flows.precision import cpu_bf16_features, matmul_gflops
    from net2net.training.optim import FlowOptimConfig, clip_gradients, make_optimizer
    from net2net.training.translation import TranslationDataModule

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the main job's 4000)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precisions", nargs="+", default=["32", "bf16"], choices=["32", "bf16"])
    ap.add_argument("--eval-samples", type=int, default=100, help="images per held-out phrasing (default 100)")
    ap.add_argument("--encode-images", type=int, default=2048, help="images encoded for the encoding rate")
    ap.add_argument("--phases-only", action="store_true", help="time the phases before training, train nothing")
    ap.add_argument("--json", default=None, help="write all measurements here")
    ap.add_argument("--png", default=None, help="figure: held-out NLL against training seconds")
    args = ap.parse_args()
    if args.steps is not None and args.steps < 1 or args.eval_every < 1:
        ap.error("--steps and --eval-every must be positive")

    cfg = text2image_config(args.steps, args.seed)
    steps = cfg["lightning"]["trainer"]["max_steps"]
    flow_cfg = cfg["model"]["params"]["flow_config"]
    batch = cfg["model"]["params"]["batch_size"]
    f32_rate, bf16_rate = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    header = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_bf16_flags": cpu_bf16_features(),
        "matmul_gflops_f32": round(f32_rate, 1), "matmul_gflops_bf16": round(bf16_rate, 1),
        "loadavg_start": _loadavg(), "steps": steps, "seed": args.seed,
    }  # fmt: skip
    print(json.dumps(header), flush=True)
    phases: dict[str, float] = {}

    t = time.perf_counter()
    source = instantiate_from_config(cfg["data"]["params"]["source"])
    held_out = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]]
    source.encode(held_out)
    phases["text expert: load + embed 60 phrasings"] = time.perf_counter() - t

    t = time.perf_counter()
    params = dict(cfg["data"]["params"])
    dm = TranslationDataModule(**params)
    dm._source = source  # the expert built above (the data module would build its own)
    dm.prepare_data()  # a cache hit after `net2net demo` / `net2net encode`, else the full encoding
    dm.setup("fit")
    phases["latent cache: fingerprints + load (or encode)"] = time.perf_counter() - t
    train, val = dm.pairs["train"], dm.pairs["validation"]
    target = dm.target

    # the encoding path before (plain NCHW layout, no_grad) and now (channels_last, inference_mode), interleaved
    images = torch.stack([dm.dataset("train")[i]["image"] for i in range(args.encode_images)])
    plain = copy.deepcopy(target).to(memory_format=torch.contiguous_format)
    paths = {"before: NCHW, no_grad": (plain, torch.no_grad),
             "now: channels_last, inference_mode": (target, torch.inference_mode)}
    enc_times: dict[str, list[float]] = {k: [] for k in paths}
    for r in range(3):
        for name in paths if r % 2 == 0 else reversed(list(paths)):
            expert, mode = paths[name]
            t = time.perf_counter()
            with mode():
                for i in range(0, len(images), dm.encode_batch_size):
                    expert.encode_dist(images[i : i + dm.encode_batch_size])
            enc_times[name].append(time.perf_counter() - t)
    encoding = {name: round(args.encode_images / statistics.median(ts), 1) for name, ts in enc_times.items()}
    print(f"encoding, images/s (median of 3, batch {dm.encode_batch_size}): {encoding}", flush=True)

    if args.phases_only:
        print(json.dumps({"phases": phases, "encoding_images_per_s": encoding, "loadavg_end": _loadavg()}))
        return

    # fixed held-out pairs for the NLL curve: every validation example with one drawn phrasing and z_tgt sample
    torch.manual_seed(1234)
    vb = val[torch.arange(len(val))]

    def held_out_nll(tau, precision: str = "32") -> float:
        tau.eval()
        with torch.no_grad(), precision_context(precision):
            out = float(nll(*tau(vb["z_tgt"], vb["z_src"])).nats_per_dim.mean())
        tau.train()
        return out

    optim_cfg = FlowOptimConfig(**cfg["model"]["params"]["optim"])
    models, opts = {}, {}
    for p in args.precisions:
        torch.manual_seed(args.seed)
        models[p] = instantiate_from_config(flow_cfg).train()
        opts[p] = make_optimizer(models[p].parameters(), optim_cfg, batch)
    train_seconds = {p: 0.0 for p in models}
    step_times: dict[str, list[float]] = {p: [] for p in models}
    curve: dict[str, list[tuple[int, float, float]]] = {p: [] for p in models}
    loader = train.loader(batch, generator=torch.Generator().manual_seed(args.seed))
    step = 0
    order = list(models)
    while step < steps:
        for b in loader:
            for p in order if step % 2 == 0 else reversed(order):
                tau, (opt, sched) = models[p], opts[p]
                t = time.perf_counter()
                with precision_context(p):
                    loss = nll(*tau(b["z_tgt"], b["z_src"])).per_sample.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                clip_gradients(tau.parameters(), optim_cfg)
                opt.step()
                sched.step()
                dt = time.perf_counter() - t
                train_seconds[p] += dt
                step_times[p].append(dt)
            step += 1
            if step % args.eval_every == 0 or step == steps:
                for p in models:
                    curve[p].append((step, round(train_seconds[p], 2), round(held_out_nll(models[p]), 4)))
                print(f"step {step}: " + ", ".join(f"{p}: {curve[p][-1][1]:.0f} s, NLL {curve[p][-1][2]:.4f}"
                                                   for p in models) + f" (load {_loadavg()})", flush=True)  # fmt: skip
            if step >= steps:
                break

    classifier = load_classifier("pretrained:fashion_mnist_classifier")
    prompts = [p for p, _, _ in DEMO_PROMPTS]
    results = {}
    for p, tau in models.items():
        net = Net2Net(source, target, tau)
        t = time.perf_counter()
        net.translate(prompts, n=8, generator=torch.Generator().manual_seed(args.seed + 1))
        sample_s = time.perf_counter() - t
        t = time.perf_counter()
        metrics = evaluate_text2image(net, classifier, samples_per_caption=args.eval_samples, seed=args.seed + 2)
        eval_s = time.perf_counter() - t
        results[p] = {
            "train_seconds": round(train_seconds[p], 1),
            "median_step_s": round(statistics.median(step_times[p][1:]), 4),
            "held_out_nll": held_out_nll(tau), "held_out_nll_bf16_forward": held_out_nll(tau, "bf16"),
            "accuracy_T1": metrics["held_out_accuracy"],
            "accuracy_T0.7": metrics["by_temperature"]["0.7"]["held_out_accuracy"],
            "diversity_T1": metrics["diversity_mean"], "diversity_real": metrics["diversity_real_mean"],
            "sample_10x8_s": round(sample_s, 3), "evaluation_s": round(eval_s, 1), "curve": curve[p],
        }  # fmt: skip
    header["loadavg_end"] = _loadavg()

    print(f"\nload average at start {header['loadavg_start']}, at end {header['loadavg_end']}; "
          f"{header['threads']} threads; CPU bf16 flags: {', '.join(header['cpu_bf16_flags']) or 'none'}; "
          f"matmul 256x1024 @ 1024x1024: float32 {f32_rate:.0f} GFLOP/s, bf16 {bf16_rate:.0f} GFLOP/s\n")  # fmt: skip
    print("| phase | seconds |\n|---|---|")
    for name, s in phases.items():
        print(f"| {name} | {s:.1f} |")
    for name, rate in encoding.items():
        print(f"| image encoding, {name} | {args.encode_images / rate:.1f} ({rate:.0f} images/s) |")
    print(f"\n| training precision | {steps} steps: s (median s/step) | speed-up | held-out NLL nats/dim (f32 forward; "
          "bf16 forward) | accuracy T=1 / T=0.7 | diversity (real) | sample 10x8 s | evaluation s |")
    print("|---|---|---|---|---|---|---|---|")
    base = results[args.precisions[0]]["train_seconds"]
    for p, r in results.items():
        print(f"| {p} | {r['train_seconds']:.0f} ({r['median_step_s']:.3f}) | {base / r['train_seconds']:.2f}x "
              f"| {r['held_out_nll']:.4f}; {r['held_out_nll_bf16_forward']:.4f} | {r['accuracy_T1']:.1%} / "
              f"{r['accuracy_T0.7']:.1%} | {r['diversity_T1']:.3f} ({r['diversity_real']:.3f}) "
              f"| {r['sample_10x8_s']:.3f} | {r['evaluation_s']:.0f} |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "phases": phases, "encoding_images_per_s": encoding,
                                               "results": results}, indent=1))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for p, r in results.items():
            _, secs, nlls = zip(*r["curve"])
            ax.plot(secs, nlls, marker="o", label=f"{'float32' if p == '32' else 'bf16 mixed'} training")
        ax.set_xlabel("training seconds (this run, interleaved)")
        ax.set_ylabel("held-out NLL (nats/dim)")
        ax.set_title(f"main job's cINN, {os.cpu_count()} CPU cores, {header['threads']} threads")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)


if __name__ == "__main__":
    main()
