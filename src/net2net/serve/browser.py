"""Driving the page in Debian's headless Chromium with playwright (the tests, the latency benchmark, the README's
screenshot). No browser is downloaded: ``playwright`` is told where ``/usr/bin/chromium`` is.

Every request the page makes that does not go to the served URL is aborted and recorded in ``page.external``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "gallery_sources", "offline_page", "time_generate"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]


@contextmanager
def offline_page(url: str, width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A playwright page on ``url`` in headless Chromium; requests elsewhere are aborted and listed in
    ``page.external``.

    Raises:
        FileNotFoundError: no ``/usr/bin/chromium`` (``apt-get install chromium``).
        ImportError: playwright is not installed (``pip install "net2net[test]"``).
    """
    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    external: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith((url, "data:", "blob:")):
            r.continue_()
        else:
            external.append(r.request.url)
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("**/*", route)
            page.external = external  # type: ignore[attr-defined]  # read by the tests: requests that left localhost
            page.goto(url)
            yield page
        finally:
            browser.close()


def gallery_sources(page: Any, tab: str, n: int, previous: list[str] | None = None, timeout: float = 60) -> list[str]:
    """The URLs of the ``n`` images of ``tab``'s gallery once all are loaded (and none is among ``previous``).

    Raises:
        TimeoutError: not so within ``timeout`` seconds; it says what the gallery shows and what the note says.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    old = list(previous or [])
    sel = f"#{tab}-gallery img"
    try:
        page.wait_for_function(
            "([sel, n, old]) => { const imgs = [...document.querySelectorAll(sel)];"
            " return imgs.length === n && imgs.every(i => !old.includes(i.src) && i.complete && i.naturalWidth > 0); }",
            arg=[sel, n, old], timeout=timeout * 1000, polling=10)  # fmt: skip
    except PlaywrightTimeout:
        state = page.eval_on_selector_all(sel, "els => els.map(e => [e.src, e.complete, e.naturalWidth])")
        kept = sum(src in old for src, _, _ in state)
        note = page.inner_text(f"#{tab}-note") if page.query_selector(f"#{tab}-note") else ""
        raise TimeoutError(f"the {tab} gallery did not show {n} new loaded images within {timeout:g} s: it shows "
                           f"{len(state)} ({kept} of them already shown before, "
                           f"{sum(not c or w == 0 for _, c, w in state)} not loaded); the note says {note!r}") from None
    return page.eval_on_selector_all(sel, "els => els.map(e => e.src)")


def time_generate(page: Any, n: int, seed: int) -> float:
    """Seconds from pressing Generate on the text tab (with ``seed``) until its ``n`` new images are loaded."""
    before = page.eval_on_selector_all("#text-gallery img", "els => els.map(e => e.src)")
    page.locator("#text-seed input").fill(str(seed))
    t = time.perf_counter()
    page.click("#text-run")
    gallery_sources(page, "text", n, previous=before)
    return time.perf_counter() - t
