"""The main job (``net2net demo``) phase by phase, for the old recipe and the new one (and candidates) in one run.

Phases, each timed in this process: the text expert (loading all-MiniLM-L6-v2 and embedding the main job's ~2260
phrasings, as the first run does); image encoding with the autoencoder's encoder, the old path (batch 256,
channels_last, BatchNorm as separate layers) against the current one (``AutoencoderTarget.encode_dist``), interleaved,
as images/s on a subset and extrapolated to the 60k training images; training each recipe's cINN to its final held-out
NLL; sampling and decoding 10 prompts x 8; the project's evaluation (``evaluate_text2image``: the shipped classifier's
accuracy on ``--eval-samples`` images from each of the 60 held-out phrasings at temperatures 1 and 0.7, and the
samples' diversity). Where it applies, the achieved FLOP/s (counted with ``torch.utils.flop_counter``) is set against
the machine's matmul rate measured at the start.

Training: every recipe's cINN is trained in this process on the same cached latents with a plain loop (the recipe's
optimiser, schedule and precision), interleaved step by step so that each advances by the same fraction of its run
(the machine's drifting load hits all alike); every 1/8 of its run the held-out NLL (nats/dim, float32 forward, 2048
fixed validation pairs; the final one on all 10k) is recorded against its own cumulative training seconds. Sampling
and evaluation run in float32 for every model. On a shared machine compare seconds as ratios to the old recipe.

    OMP_NUM_THREADS=1 python benchmarks/main_job.py --json out.json --png nll_vs_seconds.png
    python benchmarks/main_job.py --phases-only                  # text expert and encoding only
    python benchmarks/main_job.py --recipes old new --seed 1     # a second seed (for the seed-to-seed spread)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

# the recipe `net2net demo` trained until 2026-12-03 (float32, batch 128, 4000 steps): the baseline
OLD = {"batch": 128, "steps": 4000, "max_lr": 1.5e-3, "warmup": 200, "precision": "32",
       "n_blocks": 12, "hidden_dim": 256, "hidden_depth": 2, "embedding_dim": 64}  # fmt: skip
# candidates tried against it (name -> changes to OLD); "new" is the shipped config's recipe. A name may end in
# "@SEED" to train that recipe with its own seed in the same run (e.g. `--recipes old c6x256-bf16 c6x256-bf16@1`).
CANDIDATES: dict[str, dict[str, Any]] = {
    "b128-2000-bf16": {"steps": 2000, "warmup": 100, "precision": "bf16"},
    "b128-2500-bf16": {"steps": 2500, "warmup": 150, "precision": "bf16"},
    "b128-3000-bf16": {"steps": 3000, "warmup": 150, "precision": "bf16"},
    "b512-1000-bf16": {"batch": 512, "steps": 1000, "max_lr": 3e-3, "warmup": 100, "precision": "bf16"},
    "b512-600-bf16": {"batch": 512, "steps": 600, "max_lr": 3e-3, "warmup": 60, "precision": "bf16"},
    # smaller cINNs (blocks x subnet width; the dense embedder is as wide as the subnets), 4000 steps
    "c8x192-bf16": {"n_blocks": 8, "hidden_dim": 192, "precision": "bf16"},
    "c6x256-bf16": {"n_blocks": 6, "hidden_dim": 256, "precision": "bf16"},
    "c6x192-bf16": {"n_blocks": 6, "hidden_dim": 192, "precision": "bf16"},
    "c8x128-bf16": {"n_blocks": 8, "hidden_dim": 128, "precision": "bf16"},
    "c12x128-bf16": {"hidden_dim": 128, "precision": "bf16"},
    "c8x256-e32-bf16": {"n_blocks": 8, "embedding_dim": 32, "precision": "bf16"},
    "c12x256x1-bf16": {"hidden_depth": 1, "precision": "bf16"},
}


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def new_recipe() -> dict[str, Any]:
    """The recipe of the shipped main-job config (``text2image_config()``), in the keys of :data:`OLD`."""
    from net2net.apps.main_job import text2image_config
    from net2net.training.precision import trainer_precision

    cfg = text2image_config()
    m, flow = cfg["model"]["params"], cfg["model"]["params"]["flow_config"]["params"]
    prec = trainer_precision(cfg["lightning"]["trainer"].get("precision", "32-true"), "cpu")
    return {"batch": m["batch_size"], "steps": cfg["lightning"]["trainer"]["max_steps"],
            "max_lr": m["optim"]["max_lr"], "warmup": m["optim"]["warmup_steps"],
            "precision": "bf16" if str(prec).startswith("bf16") else "32",
            "n_blocks": flow["n_blocks"], "hidden_dim": flow["hidden_dim"], "hidden_depth": flow["hidden_depth"],
            "embedding_dim": flow["embedding_dim"]}  # fmt: skip


def recipe(name: str) -> dict[str, Any]:
    """The recipe ``name`` (old, new, a candidate), with ``"seed"`` set where the name ends in ``@SEED``."""
    base, at, seed = name.partition("@")
    if at:
        if not seed.isdigit():
            raise SystemExit(f"recipe {name!r}: expected NAME@SEED with an integer seed")
        return {**recipe(base), "seed": int(seed)}
    if name == "old":
        return dict(OLD)
    if name == "new":
        return new_recipe()
    if name in CANDIDATES:
        return {**OLD, **CANDIDATES[name]}
    raise SystemExit(f"unknown recipe {name!r}: expected old, new or one of {sorted(CANDIDATES)}")


def _flow(r: dict[str, Any]) -> dict[str, Any]:
    return {"target": "net2net.flows.ConditionalINN",
            "params": {"dim": 64, "cond_dim": 384, "n_blocks": r["n_blocks"], "hidden_dim": r["hidden_dim"],
                       "hidden_depth": r["hidden_depth"], "embedding_dim": r["embedding_dim"]}}  # fmt: skip


def _flops(fn: Any) -> float:
    """FLOPs of one call of ``fn`` (matrix products and convolutions, as ``torch.utils.flop_counter`` counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def _time_commands(run: Path, prompts: list[str], repeats: int = 3) -> dict[str, float]:
    """Wall seconds of ``net2net translate`` (10 prompts x 8; median of ``repeats``, target 3 s) and of a
    ``net2net demo`` rerun on ``run``, each a new process as a user starts it (imports, loading the experts and the
    run included)."""
    import subprocess
    import sys
    import tempfile

    cli = [sys.executable, "-c", "import sys; from net2net.cli import main; sys.exit(main())"]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv, n in (
            (f"`net2net translate` 10 prompts x 8 (new process, median of {repeats}; target 3 s)",
             ["translate", str(run), "--text", *prompts, "-n", "8", "--out", f"{tmp}/translate"], repeats),
            ("`net2net demo` rerun on the trained run (new process)", ["demo", "--run-dir", str(run), "--out",
                                                                      f"{tmp}/demo"], 1),
        ):  # fmt: skip
            times = []
            for _ in range(n):
                t = time.perf_counter()
                subprocess.run([*cli, *argv], check=True, capture_output=True)
                times.append(time.perf_counter() - t)
            out[name] = statistics.median(times)
            print(f"{name}: {out[name]:.1f} s (all: {', '.join(f'{x:.1f}' for x in times)})", flush=True)
    return out


def plot(runs: list[dict[str, Any]], png: str) -> None:
    """Held-out NLL against training seconds relative to the old recipe of the same run, for all recipes of ``runs``
    (the old recipe drawn once)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    drawn: set[str] = set()
    for run in runs:
        results = run["results"]
        base = results["old"]["train_seconds"] if "old" in results else next(iter(results.values()))["train_seconds"]
        for name, r in results.items():
            if name in drawn:
                continue
            drawn.add(name)
            _, secs, nlls = zip(*r["curve"], strict=True)
            ax.plot([x / base for x in secs], nlls, marker="o", ms=3, label=f"{name} ({r['steps']} steps)")
    ax.set_xlabel("training seconds / the old recipe's (same run, interleaved)")
    ax.set_ylabel("held-out NLL (nats/dim)")
    ax.set_title(f"main job's cINN, {runs[0]['header']['threads']} thread(s)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def main() -> None:
    from net2net.apps.main_job import DEMO_PROMPTS, evaluate_text2image, text2image_config
    from net2net.apps.translate import Net2Net
    from net2net.config import instantiate_from_config
    from net2net.data import FASHION_MNIST_CAPTIONS
    from net2net.data.captions import CaptionedDataset
    from net2net.experts.classifier import load_classifier
    from net2net.flows import nll, precision_context
    from net2net.flows.precision import cpu_bf16_features, matmul_gflops
    from net2net.training.optim import FlowOptimConfig, make_optimizer
    from net2net.training.translation import TranslationDataModule

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", nargs="+", default=["old", "new"], help=f"old, new, {', '.join(CANDIDATES)}")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps-scale", type=float, default=1.0, help="scale every recipe's steps (a quick check)")
    ap.add_argument("--cap", nargs="*", default=[], metavar="NAME=STEPS",
                    help="train recipe NAME only STEPS steps (its schedule stays that of the full run): its training "
                    "time is extrapolated from them and its quality taken from --reference")
    ap.add_argument("--reference", default=None, help="JSON of a full run of a capped recipe: {'curve': [[step, s, "
                    "NLL], ...], 'held_out_nll', 'accuracy_T1', 'accuracy_T0.7', 'diversity_T1', 'diversity_real'}")
    ap.add_argument("--eval-samples", type=int, default=100, help="images per held-out phrasing (default 100)")
    ap.add_argument("--encode-images", type=int, default=4096, help="images encoded for the encoding rate")
    ap.add_argument("--phases-only", action="store_true", help="time the phases before training, train nothing")
    ap.add_argument("--no-phases", action="store_true", help="train and evaluate only (e.g. a second seed)")
    ap.add_argument("--run", default=None, help="a trained main-job run folder: also time `net2net translate` of the "
                    "10 demo prompts x 8 and a `net2net demo` rerun on it, each a new process (start-up included)")
    ap.add_argument("--json", default=None, help="write all measurements here")
    ap.add_argument("--png", default=None, help="figure: held-out NLL against training seconds")
    ap.add_argument("--replot", nargs="+", default=None, metavar="JSON", help="only draw --png from these --json files")
    args = ap.parse_args()
    if args.replot:
        plot([json.loads(Path(f).read_text()) for f in args.replot], args.png or "main_job_nll_vs_seconds.png")
        return
    recipes = {name: recipe(name) for name in args.recipes}
    for r in recipes.values():
        r["steps"] = max(8, round(r["steps"] * args.steps_scale))
        r["warmup"] = min(r["warmup"], r["steps"] // 4)
    caps = {name: int(n) for name, n in (c.split("=", 1) for c in args.cap)}
    if set(caps) - set(recipes) or (caps and args.reference is None):
        ap.error("--cap names recipes of --recipes and needs --reference")
    reference = json.loads(Path(args.reference).read_text()) if args.reference else None

    cfg = text2image_config(seed=args.seed)
    threads = torch.get_num_threads()
    rate = {"32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
    header = {
        "torch": torch.__version__, "threads": threads, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpu_bf16_flags": cpu_bf16_features(), "matmul_gflops_f32": round(rate["32"], 1),
        "matmul_gflops_bf16": round(rate["bf16"], 1), "loadavg_start": _loadavg(), "seed": args.seed,
        "recipes": recipes,
    }  # fmt: skip
    print(json.dumps(header), flush=True)
    phases: dict[str, float] = {}

    t = time.perf_counter()
    source = instantiate_from_config(cfg["data"]["params"]["source"])
    phases["text expert: load"] = time.perf_counter() - t
    dm = TranslationDataModule(**cfg["data"]["params"])
    dm._source = source  # the expert built above (the data module would build its own)
    train_data = dm.dataset("train")
    assert isinstance(train_data, CaptionedDataset)
    held_out = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]]
    phrasings = sorted({c for caps in train_data.captions.values() for c in caps} | set(held_out))
    encoding: dict[str, Any] = {}
    if not args.no_phases:
        t = time.perf_counter()
        for i in range(0, len(phrasings), 256):
            source.encode(phrasings[i : i + 256])
        phases[f"text expert: embed {len(phrasings)} phrasings"] = time.perf_counter() - t

        # image encoding: the old path against the current one, interleaved; rates extrapolated to 60k images
        target = dm.target
        images = torch.stack([train_data[i]["image"] for i in range(args.encode_images)])  # (N, 1, 28, 28)
        old_encoder = copy.deepcopy(target.encoder).eval()

        def old_path() -> None:  # the encoder until 2026-12-03: batch 256, BatchNorm as its own layers
            for i in range(0, len(images), 256):
                y = images[i : i + 256].contiguous(memory_format=torch.channels_last)
                old_encoder.head(old_encoder.stages(old_encoder.stem(y)).mean(dim=(2, 3)))

        def new_path() -> None:
            for i in range(0, len(images), dm.encode_batch_size):
                target.encode_dist(images[i : i + dm.encode_batch_size])

        paths = {"old: BatchNorm layers": old_path, "new: BatchNorm folded into the convolutions": new_path}
        times: dict[str, list[float]] = {k: [] for k in paths}
        for r in range(3):
            for name in paths if r % 2 == 0 else reversed(list(paths)):
                t = time.perf_counter()
                with torch.inference_mode():
                    paths[name]()
                times[name].append(time.perf_counter() - t)
        with torch.inference_mode():
            per_image = _flops(lambda: target.encode_dist(images[:64])) / 64
        for name, ts in times.items():
            ips = args.encode_images / statistics.median(ts)
            encoding[name] = {"images_per_s": round(ips, 1), "seconds_60k": round(60000 / ips, 1),
                              "gflops": round(per_image * ips / 1e9, 1)}  # fmt: skip
        print(f"encoding (median of 3, {args.encode_images} images): {encoding}", flush=True)
        if args.run is not None:
            phases.update(_time_commands(Path(args.run), [p for p, _, _ in DEMO_PROMPTS]))
        if args.phases_only:
            print(json.dumps({"phases": phases, "encoding": encoding, "loadavg_end": _loadavg()}, indent=1))
            return

    t = time.perf_counter()
    dm.prepare_data()  # a cache hit after `net2net demo` / `net2net encode`, else the full encoding
    dm.setup("fit")
    phases["latent cache: fingerprints + load (or encode)"] = time.perf_counter() - t
    train, val = dm.pairs["train"], dm.pairs["validation"]
    target = dm.target

    torch.manual_seed(1234)  # fixed held-out pairs: every validation example with one phrasing and z_tgt sample
    vb = val[torch.arange(len(val))]
    sub = {k: v[:2048] for k, v in vb.items()}

    def held_out_nll(tau: Any, pairs: dict[str, torch.Tensor]) -> float:
        tau.eval()
        with torch.no_grad(), precision_context("32"):
            out = float(nll(*tau(pairs["z_tgt"], pairs["z_src"])).nats_per_dim.mean())
        tau.train()
        return out

    state: dict[str, dict[str, Any]] = {}
    for name, r in recipes.items():
        seed = r.get("seed", args.seed)
        torch.manual_seed(seed)
        tau = instantiate_from_config(_flow(r)).train()
        optim = FlowOptimConfig(base_lr=1.2e-5, max_lr=r["max_lr"], warmup_steps=r["warmup"], decay_steps=r["steps"])
        opt, sched = make_optimizer(tau.parameters(), optim, r["batch"])
        probe = instantiate_from_config(_flow(r)).train()  # FLOPs of one training step, on a throwaway copy
        z, c = torch.randn(r["batch"], 64), torch.randn(r["batch"], 384)
        step_flops = _flops(lambda: nll(*probe(z, c)).per_sample.mean().backward())  # noqa: B023
        state[name] = {"tau": tau, "opt": opt, "sched": sched, "step": 0, "seconds": 0.0, "times": [], "curve": [],
                       "loader": iter(()), "gen": torch.Generator().manual_seed(seed), "flops": step_flops,
                       "params": sum(p.numel() for p in tau.parameters())}  # fmt: skip
    while True:
        last = {n: min(recipes[n]["steps"], caps.get(n, recipes[n]["steps"])) for n in state}
        todo = [n for n in state if state[n]["step"] < last[n]]
        if not todo:
            break
        name = min(todo, key=lambda n: state[n]["step"] / last[n])  # the one furthest behind (capped: spread out too)
        s, r = state[name], recipes[name]
        try:
            b = next(s["loader"])
        except StopIteration:
            s["loader"] = iter(train.loader(r["batch"], generator=s["gen"]))
            b = next(s["loader"])
        t = time.perf_counter()
        with precision_context(r["precision"]):
            loss = nll(*s["tau"](b["z_tgt"], b["z_src"])).per_sample.mean()
        s["opt"].zero_grad(set_to_none=True)
        loss.backward()
        s["opt"].step()  # ClippedAdam: clips the gradient norm itself
        s["sched"].step()
        dt = time.perf_counter() - t
        s["seconds"] += dt
        s["times"].append(dt)
        s["step"] += 1
        if s["step"] % max(1, r["steps"] // 8) == 0 or s["step"] == r["steps"]:
            final = s["step"] == r["steps"]
            s["curve"].append((s["step"], round(s["seconds"], 2), round(held_out_nll(s["tau"], vb if final else sub), 4)))
            print(f"{name} step {s['step']}: {s['seconds']:.0f} s, NLL {s['curve'][-1][2]:.4f} (load {_loadavg()})",
                  flush=True)  # fmt: skip

    classifier = load_classifier("pretrained:fashion_mnist_classifier")
    prompts = [p for p, _, _ in DEMO_PROMPTS]
    results: dict[str, dict[str, Any]] = {}
    for name, s in state.items():
        r = recipes[name]
        median_step = statistics.median(s["times"][1:])
        if name in caps:  # trained only caps[name] steps: time extrapolated, quality from the reference run
            assert reference is not None
            results[name] = {k: reference[k] for k in ("held_out_nll", "accuracy_T1", "accuracy_T0.7", "diversity_T1",
                                                        "diversity_real", "sample_10x8_s", "evaluation_s")}
            results[name].update(
                train_seconds=round(s["seconds"] * r["steps"] / s["step"], 1), steps=r["steps"], measured_steps=s["step"],
                median_step_s=round(median_step, 4), params=s["params"], gflops_per_step=round(s["flops"] / 1e9, 2),
                gflops_per_s=round(s["flops"] / median_step / 1e9, 1),
                curve=[(st, round(st * s["seconds"] / s["step"], 1), v) for st, _, v in reference["curve"]],
            )  # fmt: skip
            print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'curve'})}", flush=True)
            continue
        seed = r.get("seed", args.seed)
        net = Net2Net(source, target, s["tau"].eval())
        t = time.perf_counter()
        net.translate(prompts, n=8, generator=torch.Generator().manual_seed(seed + 1))
        sample_s = time.perf_counter() - t
        t = time.perf_counter()
        metrics = evaluate_text2image(net, classifier, samples_per_caption=args.eval_samples, seed=seed + 2)
        eval_s = time.perf_counter() - t
        results[name] = {
            "train_seconds": round(s["seconds"], 1), "steps": r["steps"], "median_step_s": round(median_step, 4),
            "params": s["params"], "gflops_per_step": round(s["flops"] / 1e9, 2),
            "gflops_per_s": round(s["flops"] / median_step / 1e9, 1),
            "held_out_nll": s["curve"][-1][2],
            "accuracy_T1": metrics["held_out_accuracy"],
            "accuracy_T0.7": metrics["by_temperature"]["0.7"]["held_out_accuracy"],
            "diversity_T1": metrics["diversity_mean"], "diversity_real": metrics["diversity_real_mean"],
            "sample_10x8_s": round(sample_s, 3), "evaluation_s": round(eval_s, 1), "curve": s["curve"],
        }  # fmt: skip
        print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'curve'})}", flush=True)
    header["loadavg_end"] = _loadavg()

    print(f"\nload average at start {header['loadavg_start']}, at end {header['loadavg_end']}; {threads} threads "
          f"(OMP_NUM_THREADS={header['OMP_NUM_THREADS']}); CPU bf16 flags: {', '.join(header['cpu_bf16_flags']) or 'none'}; "
          f"matmul 256x1024 @ 1024x1024: float32 {rate['32']:.0f} GFLOP/s, bf16 {rate['bf16']:.0f} GFLOP/s\n")  # fmt: skip
    base = results[next(iter(results))]
    enc = list(encoding.values())
    if caps:
        print(f"{', '.join(caps)}: training time extrapolated from the steps trained here; NLL, accuracy, diversity, "
              f"sampling and evaluation seconds from {args.reference} (marked *)\n")
    print("| phase | " + " | ".join(n + ("*" if n in caps else "") for n in results) + " |\n|---|" + "---|" * len(results))
    for ph, sec in phases.items():
        print(f"| {ph} | " + " | ".join(f"{sec:.1f} s" for _ in results) + " |")
    if len(enc) == 2:  # old recipe: old encoding path; every other: the current one
        cells = [enc[0] if i == 0 else enc[1] for i in range(len(results))]
        print("| encode 60k images (extrapolated) | " + " | ".join(
            f"{e['seconds_60k']:.0f} s ({e['images_per_s']:.0f} img/s, {e['gflops']:.0f} GFLOP/s)" for e in cells) + " |")
    print("| training to the final held-out NLL | " + " | ".join(
        f"{r['train_seconds']:.0f} s = {r['train_seconds'] / base['train_seconds']:.2f}x ({r['steps']} steps x "
        f"{r['median_step_s']:.3f} s, {r['gflops_per_s']:.0f} GFLOP/s)" for r in results.values()) + " |")
    print("| sampling + decoding 10 x 8 | " + " | ".join(f"{r['sample_10x8_s']:.2f} s" for r in results.values()) + " |")
    print("| evaluation | " + " | ".join(f"{r['evaluation_s']:.0f} s" for r in results.values()) + " |")
    print("| held-out NLL (nats/dim) | " + " | ".join(f"{r['held_out_nll']:.4f}" for r in results.values()) + " |")
    print("| accuracy T=1 / T=0.7 | " + " | ".join(
        f"{r['accuracy_T1']:.1%} / {r['accuracy_T0.7']:.1%}" for r in results.values()) + " |")
    print("| diversity (real) | " + " | ".join(
        f"{r['diversity_T1']:.3f} ({r['diversity_real']:.3f})" for r in results.values()) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"header": header, "phases": phases, "encoding": encoding,
                                               "results": results}, indent=1))
    if args.png:
        plot([{"header": header, "results": results}], args.png)

if __name__ == "__main__":
    main()
