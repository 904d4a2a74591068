"""The README's screenshot of `net2net serve`'s text tab: start the page on a run (default: the main job's), type a
prompt, generate 16 samples, save the page to docs/figures/serve_text.png.

    .venv/bin/python scripts/serve_screenshot.py                 # after `net2net demo`
    .venv/bin/python scripts/serve_screenshot.py RUN_DIR --out docs/figures/serve_text.png
"""

from __future__ import annotations

import argparse
import socket
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", nargs="?", default=None, help="a text -> image run (default: the main job's)")
    parser.add_argument("--prompt", default="a pair of running shoes")
    parser.add_argument("--out", default="docs/figures/serve_text.png")
    args = parser.parse_args()

    from net2net.serve.app import launch
    from net2net.serve.backend import Backend
    from net2net.serve.browser import gallery_sources, offline_page
    from net2net.serve.discovery import classify_run, main_job_run

    run = Path(args.run) if args.run else main_job_run()
    info = classify_run(run)
    if info is None or info.tab != "text":
        raise SystemExit(f"{run} is not a text -> image run")
    backend = Backend([info])
    backend.load_all()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = launch(backend, port=port, block=False)
    try:
        with offline_page(f"http://127.0.0.1:{port}/", height=900) as page:
            page.wait_for_selector("#text-run")
            page.fill("#text-prompt textarea, #text-prompt input", args.prompt)
            page.click("#text-run")
            gallery_sources(page, "text", 16)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, full_page=True)
            if page.external:
                raise SystemExit(f"the page requested {page.external}")
    finally:
        app.close()
    print(f"{args.out} ({run})")


if __name__ == "__main__":
    main()
