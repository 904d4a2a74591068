"""Response time of `net2net serve`'s text tab: 16 samples of one prompt, split into its stages, against the naive path.

Rows (medians of interleaved repeats, min-max):

- **served**: the page's path in one process, models loaded once and shared by requests
  (:meth:`net2net.serve.backend.Backend.text_to_image`): text expert, cINN, decoder, classifier reading, and the PNG
  encoding of the 16 images;
- **over HTTP**: the same request through the running Gradio server (``gradio_client``: queue, the server writing the
  16 PNGs, the answer with their URLs), then the 16 PNGs fetched over 6 connections as a browser does;
- **in Chromium** (when Debian's chromium and playwright are installed): press Generate in the page and wait until
  16 new images are decoded: what a user of the page waits for;
- **naive, in process**: load the run (``Net2Net.from_run``: text expert, autoencoder, cINN) and the classifier for
  every request, then translate and encode the PNGs (the files are in the OS cache: the cheapest reload);
- **naive, command**: ``net2net translate RUN --text PROMPT -n 16``, how one saw a translation before the page
  (a new process: imports, loading, translating, writing a PNG grid);
- **cINN, condition embedded once / repeated**: the cINN alone, its 16 samples sharing one embedding of the prompt's
  condition, against the condition repeated 16 times.

    .venv/bin/python benchmarks/serve_latency.py                       # the main job's run (net2net demo)
    .venv/bin/python benchmarks/serve_latency.py RUN_DIR --repeats 9
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch


def _png_bytes(images: list) -> int:
    total = 0
    for img in images:
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        total += buf.tell()
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default=None, help="a text -> image run (default: the main job's)")
    parser.add_argument("--prompt", default="a pair of running shoes")
    parser.add_argument("-n", type=int, default=16, help="samples per request (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    from net2net.apps.translate import Net2Net
    from net2net.experts.classifier import load_classifier
    from net2net.serve.app import launch
    from net2net.serve.backend import CLASSIFIER, Backend, display
    from net2net.serve.discovery import classify_run, main_job_run

    run = Path(args.run) if args.run else main_job_run()
    info = classify_run(run)
    if info is None or info.tab != "text":
        raise SystemExit(f"{run} is not a text -> image run")
    t0 = time.perf_counter()
    backend = Backend([info])
    backend.load_all()
    load_s = time.perf_counter() - t0

    port = _free_port()
    app = launch(backend, port=port, block=False)  # the page's server, as `net2net serve` starts it
    from gradio_client import Client

    client = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=False)
    fetcher = ThreadPoolExecutor(6)  # a browser opens up to 6 connections per host
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def served() -> dict[str, float]:
        t = time.perf_counter()
        out = backend.text_to_image(args.prompt, args.n, 1.0, 0)
        t_png = time.perf_counter()
        _png_bytes(out.images)
        stages = dict(out.seconds)
        stages["PNG encoding"] = time.perf_counter() - t_png
        stages["total"] = time.perf_counter() - t
        return stages

    def http() -> dict[str, float]:
        t = time.perf_counter()
        gallery, _ = client.predict(args.prompt, args.n, 1.0, 0, api_name="/text_to_image")
        t_answer = time.perf_counter()
        assert len(gallery) == args.n, f"expected {args.n} images, got {len(gallery)}"
        sizes = list(fetcher.map(lambda item: len(no_proxy.open(item["image"]["url"]).read()), gallery))
        assert all(sizes)
        end = time.perf_counter()
        return {"answer with the URLs": t_answer - t, "16 PNGs fetched": end - t_answer, "total": end - t}

    browser = _Browser(f"http://127.0.0.1:{port}/", args.prompt, args.n)

    def naive() -> dict[str, float]:
        t = time.perf_counter()
        model = Net2Net.from_run(run)
        classifier = load_classifier(CLASSIFIER)
        t_load = time.perf_counter()
        g = torch.Generator().manual_seed(0)
        images = model.translate([args.prompt], n=args.n, generator=g)[0]
        classifier(images)
        _png_bytes(display(images))
        end = time.perf_counter()
        return {"loading": t_load - t, "translate, read, PNG": end - t_load, "total": end - t}

    model = backend.model("text")
    z_src = model.encode_source([args.prompt])  # (1, D_src)

    def cinn_shared() -> dict[str, float]:
        t = time.perf_counter()
        model.tau.sample(z_src, n_samples=args.n, generator=torch.Generator().manual_seed(0))
        return {"total": time.perf_counter() - t}

    def cinn_repeated() -> dict[str, float]:
        t = time.perf_counter()
        model.tau.sample(z_src.expand(args.n, -1), n_samples=1, generator=torch.Generator().manual_seed(0))
        return {"total": time.perf_counter() - t}

    def command() -> dict[str, float]:
        with tempfile.TemporaryDirectory() as out:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "net2net.cli", "translate", str(run), "--text", args.prompt,
                            "-n", str(args.n), "--out", out], check=True, capture_output=True)  # fmt: skip
            return {"total": time.perf_counter() - t}

    cases = {"served": served, "over HTTP": http, "in Chromium": browser.generate, "naive, in process": naive,
             "naive, command": command, "cINN, condition embedded once": cinn_shared,
             "cINN, condition repeated": cinn_repeated}  # fmt: skip
    if not browser.ok:
        del cases["in Chromium"]
    for fn in cases.values():  # warm-up: first calls allocate and fill caches
        fn()
    times: dict[str, list[dict[str, float]]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():  # interleaved: a change of machine load hits every row alike
            times[name].append(fn())
    browser.close()
    app.close()

    def fmt(values: list[float]) -> str:
        return f"{1000 * statistics.median(values):.0f} ({1000 * min(values):.0f}-{1000 * max(values):.0f})"

    print(f"\nrun: {run}\nprompt: {args.prompt!r}, {args.n} samples; {args.repeats} interleaved repeats; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, torch threads {torch.get_num_threads()}; "
          f"load average before/after: {_loadavg()}; loading the models once took {load_s:.1f} s\n")  # fmt: skip
    print("| path | stage | median ms (min-max) |")
    print("|---|---|---|")
    for name, rows in times.items():
        for stage in rows[0]:
            print(f"| {name} | {stage} | {fmt([r[stage] for r in rows])} |")
    total = {k: statistics.median(r["total"] for r in v) for k, v in times.items()}
    page = f"in Chromium {1000 * total['in Chromium']:.0f} ms, " if "in Chromium" in total else ""
    print(f"\n{args.n} samples of one prompt: {page}over HTTP {1000 * total['over HTTP']:.0f} ms, served in process "
          f"{1000 * total['served']:.0f} ms; against reloading per request "
          f"{total['naive, in process'] / total['served']:.1f}x "
          f"and the command {total['naive, command'] / total['served']:.0f}x slower than served; the cINN's samples "
          f"sharing one condition embedding vs the condition repeated: "
          f"{total['cINN, condition repeated'] / total['cINN, condition embedded once']:.2f}x")  # fmt: skip


class _Browser:
    """Headless Chromium on the page (when available): ``generate()`` presses Generate with a new seed and waits
    until the new images are loaded."""

    def __init__(self, url: str, prompt: str, n: int) -> None:
        from net2net.serve.browser import CHROMIUM, offline_page

        self.ok, self.n, self.seed = False, n, 0
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            return
        if not CHROMIUM.is_file():
            return
        self._context = offline_page(url)
        self.page = self._context.__enter__()
        self.page.wait_for_selector("#text-run")
        self.page.fill("#text-prompt textarea, #text-prompt input", prompt)
        self.page.locator("#text-n input[type=number]").fill(str(n))
        self.page.locator("#text-n input[type=number]").press("Enter")
        self.ok = True

    def generate(self) -> dict[str, float]:
        from net2net.serve.browser import time_generate

        self.seed += 1
        return {"total": time_generate(self.page, self.n, self.seed)}

    def close(self) -> None:
        if self.ok:
            assert not self.page.external, f"the page requested {self.page.external}"
            self._context.__exit__(None, None, None)


_LOAD_START = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").is_file() else "?"


def _loadavg() -> str:
    now = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").is_file() else "?"
    return f"{_LOAD_START} / {now}"


if __name__ == "__main__":
    main()
