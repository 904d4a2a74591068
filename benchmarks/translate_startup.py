"""``net2net translate`` start-up and the text expert, an old install against this one (issue 17).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/translate_startup.py --run RUN_DIR --old /work/main/.venv/bin/python

Times, in new processes as a user starts them, interleaved (old, new, new, old, ...) so that the machine's load hits
both alike: ``net2net translate RUN --text <the main job's 10 prompts> -n 8`` (target: 3 s including start-up), a bare
``python -c "import torch"`` (the floor every command pays), and, in one process each, loading the text expert and
embedding the main job's training and held-out phrasings (about 2260) in chunks of 256 as the main job does. Each
``--threads`` value sets ``OMP_NUM_THREADS`` for the children. Prints medians (and all repeats) of the wall time and
of the children's CPU time (user + system: with one thread, about the wall time on an idle machine) as JSON with the
load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_S = 3.0

# run by each interpreter: load the text expert, then embed the phrasings as benchmarks/main_job.py does
EMBED = """
import json, sys, time
t = time.perf_counter()
from net2net.experts.text import SentenceEncoder
encoder = SentenceEncoder(device="cpu")
load = time.perf_counter() - t
from net2net.data.captions import FASHION_MNIST_CAPTIONS, caption_table, generated_captions
held = [c for parts in FASHION_MNIST_CAPTIONS.values() for c in parts["held_out"]]
train = caption_table(FASHION_MNIST_CAPTIONS, "train")
phrasings = {c for k, v in train.items() for c in [*v, *generated_captions(k, 200, 0, exclude=[*held, *v])]}
phrasings = sorted(phrasings | set(held))
t = time.perf_counter()
for i in range(0, len(phrasings), 256):
    encoder.encode(phrasings[i : i + 256])
print(json.dumps({"load_s": load, "embed_s": time.perf_counter() - t, "phrasings": len(phrasings),
                  "model": type(encoder.model).__name__}))
"""


def _loadavg() -> str:
    """The 1, 5 and 15 minute load averages (Linux)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _wall(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of a child process. On a loaded machine the CPU time of a
    one-thread command stays close to its wall time on an idle one, which the wall time here is not."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=env)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a trained main-job (text2image) run folder")
    ap.add_argument("--old", required=True, help="the Python of the old install (e.g. /work/main/.venv/bin/python)")
    ap.add_argument("--new", default=sys.executable, help="the Python of this install (default: this one)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="OMP_NUM_THREADS values")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-embed", action="store_true", help="time translate only")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()

    from net2net.apps.main_job import DEMO_PROMPTS

    prompts = [p for p, _, _ in DEMO_PROMPTS]
    pythons = {"old": args.old, "new": args.new}
    out: dict[str, Any] = {"loadavg_start": _loadavg(), "run": args.run, "pythons": pythons, "target_s": TARGET_S}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in args.threads:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NET2NET_CACHE": f"{tmp}/cache"}
            times: dict[str, list[float]] = {"old": [], "new": [], "import torch": []}
            cpu: dict[str, list[float]] = {k: [] for k in times}
            embeds: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
            for r in range(args.repeats):
                for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
                    cli = [pythons[name], "-c", "import sys; from net2net.cli import main; sys.exit(main())"]
                    argv = [*cli, "translate", args.run, "--text", *prompts, "-n", "8", "--out", f"{tmp}/{name}{r}"]
                    for d, x in zip((times, cpu), _wall(argv, env), strict=True):
                        d[name].append(x)
                for d, x in zip((times, cpu), _wall([args.new, "-c", "import torch"], env), strict=True):
                    d["import torch"].append(x)
                if not args.no_embed:
                    for name in ("old", "new") if r % 2 == 0 else ("new", "old"):
                        res = subprocess.run([pythons[name], "-c", EMBED], check=True, capture_output=True, text=True,
                                             env=env).stdout  # fmt: skip
                        embeds[name].append(json.loads(res.strip().splitlines()[-1]))
                print(f"threads {threads}, repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f} s (CPU {cpu[k][-1]:.2f} s)"
                                                               for k, v in times.items()),
                      flush=True)  # fmt: skip
            result: dict[str, Any] = {
                f"translate 10 x 8, {name}" if name != "import torch" else name: {
                    "median_s": round(statistics.median(v), 2), "all_s": [round(x, 2) for x in v],
                    "cpu_median_s": round(statistics.median(cpu[name]), 2),
                    "cpu_all_s": [round(x, 2) for x in cpu[name]]}
                for name, v in times.items()
            }  # fmt: skip
            for name, runs in embeds.items():
                if runs:
                    result[f"text expert, {name} ({runs[0]['model']})"] = {
                        "load_median_s": round(statistics.median(x["load_s"] for x in runs), 2),
                        "embed_median_s": round(statistics.median(x["embed_s"] for x in runs), 2),
                        "phrasings": runs[0]["phrasings"],
                        "embed_all_s": [round(x["embed_s"], 2) for x in runs]}  # fmt: skip
            new = result["translate 10 x 8, new"]["median_s"]
            result["target met (translate <= 3 s)"] = new <= TARGET_S
            out[f"OMP_NUM_THREADS={threads}"] = result
    out["loadavg_end"] = _loadavg()
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
