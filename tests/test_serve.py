"""``net2net serve``: run discovery, checked inputs and the models behind the page, then the page itself in a real
headless Chromium (Debian's ``chromium`` driven by ``playwright``), from tiny runs trained here on the shipped
experts. Every request the browser makes that leaves localhost fails the test, and so does any connection the
server process tries to make through a proxy (it gets one that records what it is asked for)."""

from __future__ import annotations

import io
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from net2net.cli import main
from net2net.serve.backend import (
    MAX_PROMPT_CHARS,
    MAX_UPLOAD_BYTES,
    SCALE,
    Backend,
    InputError,
    _reading_note,
    check_int,
    check_prompt,
    check_temperature,
    load_upload,
)
from net2net.serve.browser import CHROMIUM, gallery_sources, offline_page
from net2net.serve.discovery import TABS, RunInfo, classify_run, find_runs

sys.path.insert(0, str(Path(__file__).parent))
from serve_helpers import (
    tiny_diagnosis_run,
    tiny_exemplar_run,
    tiny_superres_run,
    tiny_text_run,
    tiny_unpaired_run,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("serve")
    return {"text": tiny_text_run(root / "text"), "exemplar": tiny_exemplar_run(root / "exemplar")}


@pytest.fixture(scope="module")
def backend(runs: dict[str, Path]) -> Backend:
    return Backend(find_runs([runs["text"], runs["exemplar"]]))


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- inputs ------------------------------------------------------------------------------------------------------
def test_bad_inputs_get_messages_that_say_what_was_expected() -> None:
    assert check_prompt("  a warm coat ") == "a warm coat"
    with pytest.raises(InputError, match="prompt is empty"):
        check_prompt("   ")
    with pytest.raises(InputError, match=f"100000 characters; at most {MAX_PROMPT_CHARS}"):
        check_prompt("x" * 100_000)
    with pytest.raises(InputError, match="must be text, got int"):
        check_prompt(3)
    assert check_int(16.0, "n", 1, 64) == 16
    for bad in (10**6, 0, 2.5, True, "8", float("nan")):
        with pytest.raises(InputError, match="n must be a whole number from 1 to 64"):
            check_int(bad, "n", 1, 64)
    assert check_temperature(0) == 0.0
    for bad in (-0.5, 2.5, "1", None):
        with pytest.raises(InputError, match="temperature must be a number from 0 to 2"):
            check_temperature(bad)


def test_uploads_are_decoded_from_bytes_or_refused() -> None:
    img = Image.new("RGB", (60, 40), (200, 100, 50))
    x = load_upload(_png(img))
    assert x.shape == (1, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    torch.testing.assert_close(x, torch.full_like(x, round(0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 127.5 - 1))
    with pytest.raises(InputError, match="not an image"):
        load_upload(b"%PDF-1.4 not an image at all")
    with pytest.raises(InputError, match=f"50.0 MB; at most {MAX_UPLOAD_BYTES // 2**20} MB"):
        load_upload(b"\0" * (50 * 2**20))
    with pytest.raises(InputError, match="5000x5000 pixels"):  # refused before the pixels are decoded
        load_upload(_png(Image.new("1", (5000, 5000))))
    with pytest.raises(InputError, match="too many pixels"):  # beyond PIL's own decompression-bomb limit
        load_upload(_png(Image.new("1", (20000, 20000))))
    with pytest.raises(InputError, match="bytes of an uploaded image, got str"):
        load_upload("/etc/passwd")  # a path is never opened


# -- runs ----------------------------------------------------------------------------------------------------------
def _fake_run(path: Path, source: str, **params: object) -> Path:
    path.mkdir(parents=True)
    extra = "".join(f"\n    {k}: {v}" for k, v in params.items())
    (path / "config.yaml").write_text(f"data:\n  params:\n    source:\n      target: {source}{extra}\n")
    (path / "cinn.safetensors").write_bytes(b"")
    return path


def test_runs_are_classified_by_their_config_and_the_newest_of_a_tab_wins(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    old = _fake_run(root / "reproduce" / "exemplar-argmax-cinn-a", "net2net.experts.label.classifier_argmax_expert")
    new = _fake_run(root / "reproduce" / "exemplar-argmax-cinn-b", "net2net.experts.label.classifier_argmax_expert")
    os.utime(old / "cinn.safetensors", (1, 1))
    domains = _fake_run(root / "reproduce" / "unpaired-x", "net2net.experts.label.LabelEncoder", source_key="domain")
    classes = _fake_run(root / "labels", "net2net.experts.label.LabelEncoder", source_key="label")
    layer = tmp_path / "layer"
    layer.mkdir()
    (layer / "config.yaml").write_text("data:\n  params:\n    source:\n      target: "
                                       "net2net.experts.layer.classifier_expert\n      params: {layer: stage3}\n")
    (layer / "cinn.safetensors").write_bytes(b"")
    assert classify_run(layer) == RunInfo("diagnosis", layer, "middle")
    assert classify_run(domains) == RunInfo("unpaired", domains)
    assert classify_run(classes) is None  # class labels, not domains: no tab
    assert find_runs(root=tmp_path / "nothing here") == []  # a fresh machine: every tab names its command
    found = find_runs(root=root)
    assert {(r.tab, r.path) for r in found} == {("exemplar", new), ("unpaired", domains)}
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        classify_run(tmp_path)
    with pytest.raises(ValueError, match="not a run of any tab"):
        find_runs([classes])


# -- the models behind the page -------------------------------------------------------------------------------------
def test_text_to_image_shares_its_model_and_follows_seed_and_temperature(backend: Backend) -> None:
    out = backend.text_to_image("a pair of running shoes", 16, 1.0, 0)
    assert len(out.images) == 16 and out.images[0].size == (28 * SCALE, 28 * SCALE)
    assert all(c.endswith("%") for c in out.captions) and "classifier reads the samples as" in out.note
    assert _reading_note(["Ankle boot 94%", "Sneaker 3%", "Ankle boot 50%"]).endswith(": Ankle boot ×2, Sneaker ×1.")
    assert set(out.seconds) >= {"text expert", "cINN", "decoder"}
    model = backend.model("text")
    again = backend.text_to_image("a pair of running shoes", 16, 1.0, 0)
    assert backend.model("text") is model  # loaded once, shared by the requests
    assert [i.tobytes() for i in again.images] == [i.tobytes() for i in out.images]
    cooler = backend.text_to_image("a pair of running shoes", 16, 0.3, 0)
    assert [i.tobytes() for i in cooler.images] != [i.tobytes() for i in out.images]
    with pytest.raises(InputError, match="net2net reproduce diagnosis"):  # no run: the command that makes it
        backend.diagnosis(None, 0, "early", 4, 0)


def test_exemplar_recombines_an_exemplar_with_every_class(backend: Backend) -> None:
    out = backend.exemplar(None, 3, "all classes")
    assert len(out.images) == 11 and out.captions[0].startswith("exemplar")
    assert [c.split(" (")[0] for c in out.captions[1:3]] == ["→ T-shirt/top", "→ Trouser"]
    one = backend.exemplar(_png(Image.new("L", (28, 28), 0)), 0, "Bag")
    assert len(one.images) == 2 and one.captions[1].startswith("→ Bag")
    with pytest.raises(InputError, match="test image number must be a whole number from 0 to 9999"):
        backend.exemplar(None, 10_000, "Bag")
    with pytest.raises(InputError, match="class must be one of"):
        backend.exemplar(None, 0, "../../etc/passwd")


def test_diagnosis_transfer_and_superres_tabs(tmp_path: Path) -> None:
    runs = [tiny_diagnosis_run(tmp_path / "d"), tiny_unpaired_run(tmp_path / "u"), tiny_superres_run(tmp_path / "s")]
    backend = Backend(find_runs(runs))
    assert backend.layers() == ["last"] and backend.domains() == ["mnist", "fashion_mnist", "digits"]
    out = backend.diagnosis(None, 5, "last", 6, 0)  # the input, then 6 samples of what the logits keep
    assert len(out.images) == 7 and out.captions[0].startswith("input (") and "nats" in out.note
    with pytest.raises(InputError, match=r"layer must be one of \['last'\]"):
        backend.diagnosis(None, 5, "early", 6, 0)
    out = backend.transfer("digits", 3, None, 1.0, 0, 2)  # input, into each of 3 domains, 2 samples of each
    assert len(out.images) == 1 + 3 + 6 and out.captions[1:4] == ["→ mnist", "→ fashion_mnist", "→ digits"]
    x = backend.transfer("digits", 3, None, 1.0, 0, 2).images
    assert [i.tobytes() for i in x] == [i.tobytes() for i in out.images]  # seeded
    with pytest.raises(InputError, match="domain must be one of"):
        backend.transfer("faces", 0, None, 1.0, 0, 2)
    out = backend.superres(None, 4, 5, 1.0, 0)
    assert len(out.images) == 6 and out.captions[0] == "input at 14 px"
    assert all(i.size == (28 * SCALE, 28 * SCALE) for i in out.images)


def test_cli_refuses_what_it_cannot_serve(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path)]) == 2
    assert "not a finished translation run" in capsys.readouterr().err
    pytest.importorskip("gradio")
    from net2net.serve.app import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")



def test_png_file_is_written_once_and_named_by_its_content(tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from net2net.serve.app import png_file

    a, b = Image.new("L", (4, 4), 10), Image.new("L", (4, 4), 20)
    path = png_file(a, tmp_path / "png")
    before = path.stat()
    assert png_file(a.copy(), tmp_path / "png") == path  # the same image again: the same file, not written again
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    other = png_file(b, tmp_path / "png")
    assert other != path and Image.open(path).tobytes() == a.tobytes() and Image.open(other).tobytes() == b.tobytes()
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == sorted([path.name, other.name])  # no staging file

# -- the page in a browser --------------------------------------------------------------------------------------------
class _Recorder(socketserver.ThreadingTCPServer):
    """A "proxy" that records the first line of every request it gets (and answers nothing)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.seen: list[str] = []
        recorder = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                recorder.seen.append(self.rfile.readline(500).decode(errors="replace").strip())

        super().__init__(("127.0.0.1", 0), Handler)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, _Recorder]]:
    pytest.importorskip("gradio")
    proxy = _Recorder()
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    port, proxy_url = _free_port(), f"http://127.0.0.1:{proxy.server_address[1]}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_TEMP_DIR": str(tmp_path_factory.mktemp("gradio")),
           "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "ALL_PROXY": proxy_url,
           "http_proxy": proxy_url, "https_proxy": proxy_url, "NO_PROXY": "127.0.0.1,localhost",
           "no_proxy": "127.0.0.1,localhost"}  # fmt: skip
    log = tmp_path_factory.mktemp("log") / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "net2net.cli", "serve", str(runs["text"]), str(runs["exemplar"]),
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"net2net serve did not start:\n{log.read_text()[-3000:]}") from None
                time.sleep(0.5)
        yield url, proxy
        assert proc.poll() is None, f"the server died:\n{log.read_text()[-3000:]}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proxy.shutdown()


@pytest.fixture(scope="module")
def page(server: tuple[str, _Recorder]) -> Iterator[Any]:
    if not CHROMIUM.is_file():
        if os.environ.get("NET2NET_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium); NET2NET_REQUIRE_BROWSER is set")
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    pytest.importorskip("playwright.sync_api")
    with offline_page(server[0]) as pg:
        pg.wait_for_selector("#text-run")
        yield pg


def _gallery(pg: Any, tab: str, previous: list[str] | None = None, n: int = 16) -> tuple[list[str], list[bytes]]:
    """The URLs and PNG bytes of the gallery's ``n`` images once loaded (and not among the URLs ``previous``)."""
    srcs = gallery_sources(pg, tab, n, previous)
    return srcs, [pg.request.get(s).body() for s in srcs]


def test_page_generates_pngs_and_temperature_changes_them(page: Any, tmp_path: Path) -> None:
    pg = page
    pg.fill("#text-prompt textarea, #text-prompt input", "a warm coat for the winter")
    pg.click("#text-run")
    urls, first = _gallery(pg, "text")
    for data in first:
        img = Image.open(io.BytesIO(data))
        assert img.format == "PNG" and img.size == (28 * SCALE, 28 * SCALE)
    assert "16 images" in pg.inner_text("#text-note")
    temperature = pg.locator("#text-temperature input[type=number]")
    temperature.fill("0.3")
    temperature.press("Enter")
    pg.click("#text-run")
    _, second = _gallery(pg, "text", previous=urls)
    assert len({*second} - {*first}) >= 15  # (nearly) every image changed
    pg.screenshot(path=str(tmp_path / "text.png"), full_page=True)
    assert Image.open(tmp_path / "text.png").size[0] == 1280


def test_typing_a_temperature_then_generating_never_breaks_an_image(page: Any) -> None:
    """Typing a temperature and pressing Generate runs twice with the same result (the slider's release event on
    blur, then the button). Gradio rewrote a returned image's file in place, so a browser still fetching it got a
    truncated file: a broken image or an aborted download within a few rounds (CI, 2026-12-03)."""
    pg = page
    pg.get_by_role("tab", name=TABS["text"][0]).click()
    pg.fill("#text-prompt textarea, #text-prompt input", "a pair of sandals")
    temperature = pg.locator("#text-temperature input[type=number]")
    urls: list[str] = []
    for value in ["0.4", "0.6", "0.8", "1"] * 3:
        temperature.fill(value)
        temperature.press("Enter")
        pg.click("#text-run")
        urls, images = _gallery(pg, "text", previous=urls)
        assert all(Image.open(io.BytesIO(data)).size == (28 * SCALE, 28 * SCALE) for data in images)


def test_page_shows_bad_input_messages_and_keeps_serving(page: Any, server: tuple[str, _Recorder],
                                                        tmp_path: Path) -> None:  # fmt: skip
    pg = page
    note = pg.locator("#text-note")
    pg.fill("#text-prompt textarea, #text-prompt input", "")
    pg.click("#text-run")
    note.get_by_text("the prompt is empty").wait_for(timeout=30_000)
    pg.fill("#text-prompt textarea, #text-prompt input", "x" * 100_000)
    pg.click("#text-run")
    note.get_by_text("100000 characters").wait_for(timeout=30_000)
    samples = pg.locator("#text-n input[type=number]")
    samples.fill("1000000")
    samples.press("Enter")
    pg.fill("#text-prompt textarea, #text-prompt input", "a coat")
    pg.click("#text-run")
    note.get_by_text("64 images").wait_for(timeout=60_000)  # the page clamps 10^6 to the maximum, 64
    assert samples.input_value() == "64"  # the server refuses 10^6 (below)
    from gradio_client import Client

    with pytest.raises(Exception, match="1000000 is greater than maximum value 64"):
        Client(server[0], verbose=False).predict("a coat", 10**6, 1.0, 0, api_name="/text_to_image")
    with pytest.raises(Exception, match="less than minimum value 0"):
        Client(server[0], verbose=False).predict("a coat", 4, -1.0, 0, api_name="/text_to_image")

    pg.get_by_role("tab", name="Exemplar-guided synthesis").click()
    upload = pg.locator("#exemplar-upload input[type=file]")
    upload.set_input_files({"name": "notes.png", "mimeType": "image/png", "buffer": b"not an image"})
    pg.click("#exemplar-run")
    pg.locator("#exemplar-note").get_by_text("not an image").wait_for(timeout=30_000)
    pg.locator("#exemplar-upload button[aria-label='Clear']").click()
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (50 * 2**20))
    upload.set_input_files(str(big))
    pg.get_by_text("exceed the maximum allowed size of 10.0 Mb").wait_for(timeout=30_000)
    pg.fill("#exemplar-index input", "3")
    pg.click("#exemplar-run")
    for data in _gallery(pg, "exemplar", n=11)[1]:  # the exemplar and its 10 recombinations: still serving
        assert Image.open(io.BytesIO(data)).size == (28 * SCALE, 28 * SCALE)

    pg.get_by_role("tab", name="Layer diagnosis").click()
    missing = pg.locator("#diagnosis-missing")
    missing.get_by_text("net2net reproduce diagnosis --quick").wait_for(timeout=10_000)


def test_server_serves_no_file_it_did_not_write(server: tuple[str, _Recorder]) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for path in ("/etc/passwd", str(Path(__file__).resolve()), "README.md"):
        with pytest.raises(urllib.error.HTTPError) as e:
            opener.open(f"{server[0]}gradio_api/file={path}", timeout=10)
        assert e.value.code == 403


def test_nothing_left_localhost(page: Any, server: tuple[str, _Recorder]) -> None:
    assert page.external == []  # the browser: no fonts, scripts, analytics
    assert server[1].seen == []  # the server process: no connection through the proxy
