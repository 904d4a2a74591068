"""The page: a Gradio app with one tab per kind of translation, over a :class:`~net2net.serve.backend.Backend`.

Gradio (not Streamlit, which the original code used) because the server is an ordinary Python object in this
process: the models are loaded once and every request calls the same functions, which the tests call directly;
uploads are limited by the server before they reach the code; and the page works offline: the theme uses system
fonts (no font files fetched), telemetry and the version check are off (``GRADIO_ANALYTICS_ENABLED=False``,
``analytics_enabled=False``), no share link, no server-side rendering (no Node process).
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from .backend import MAX_SAMPLES, MAX_TEMPERATURE, MAX_UPLOAD_BYTES, Backend, InputError, Output
from .discovery import TABS

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # (the environment above must be set first)
from gradio.utils import get_upload_folder

__all__ = ["build_app", "is_loopback", "launch", "png_file"]

log = logging.getLogger(__name__)

CSS = ".n2n-gallery img { image-rendering: pixelated; }"  # 28 px images shown large stay sharp


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def png_file(image: Image.Image, folder: Path) -> Path:
    """``image`` as a PNG file in ``folder`` named by its content, written once and atomically.

    Gradio's own cache rewrites a returned PIL image's file in place when the same image comes back (the same seed
    and settings again, or the temperature's release event and the button running one after the other); a browser
    still fetching the file then gets a truncated one and shows a broken image. A file here never changes once
    it exists, and Gradio serves a file already inside its cache folder as it is.
    """
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data = buffer.getvalue()
    path = folder / f"{hashlib.sha256(data).hexdigest()[:32]}.png"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, staging = tempfile.mkstemp(dir=folder, prefix=".png-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(staging, path)
    return path


def _handler(fn: Callable[..., Output]) -> Callable[..., tuple[Any, str]]:
    """Wrap a backend method: its output as gallery items (PNG files, see :func:`png_file`) and a note; a bad input
    as a message in the note (the gallery keeps what it showed), so that the page says what was wrong and the server
    keeps serving."""

    def handle(*args: Any) -> tuple[Any, str]:
        try:
            out = fn(*args)
        except InputError as e:
            return gr.skip(), f"**Input error:** {e}"
        stages = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in out.seconds.items())
        timing = f"\n\n{len(out.images)} images; {stages}." if stages else ""
        folder = Path(get_upload_folder()) / "net2net"  # inside Gradio's cache: served as is, aged by delete_cache
        files = [str(png_file(image, folder)) for image in out.images]
        return list(zip(files, out.captions, strict=True)), out.note + timing

    handle.__name__ = fn.__name__
    return handle


def _missing(backend: Backend, tab: str) -> None:
    gr.Markdown(backend.missing_note(tab), elem_id=f"{tab}-missing")


def _image_inputs(tab: str) -> tuple[Any, Any]:
    upload = gr.File(label="Upload an image (optional; a bright object on a dark background, as Fashion-MNIST)",
                     file_types=["image"], type="binary", elem_id=f"{tab}-upload")  # fmt: skip
    index = gr.Number(value=0, precision=0, minimum=0, label="or a test image (number)", elem_id=f"{tab}-index")
    return upload, index


def _sampling_inputs(tab: str, n: int, n_max: int = MAX_SAMPLES, n_label: str = "Samples",
                     temperature: bool = True) -> list[Any]:  # fmt: skip
    """The number of samples, the temperature (unless ``temperature`` is false) and the seed of a tab."""
    inputs: list[Any] = [gr.Slider(1, n_max, value=n, step=1, label=n_label, elem_id=f"{tab}-n")]
    if temperature:
        inputs.append(gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature",
                                elem_id=f"{tab}-temperature"))  # fmt: skip
    inputs.append(gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id=f"{tab}-seed"))
    return inputs


def _outputs(tab: str, columns: int = 8) -> tuple[Any, Any]:
    gallery = gr.Gallery(label="Images", columns=columns, format="png", object_fit="contain", height="auto",
                         elem_id=f"{tab}-gallery", elem_classes="n2n-gallery")  # fmt: skip
    note = gr.Markdown(elem_id=f"{tab}-note")
    return gallery, note


def _image_tab(backend: Backend, tab: str, available: bool, intro: str, inputs: Callable[[], list[Any]], button: str,
               fn: Callable[..., Output], api_name: str, columns: int = 6) -> None:  # fmt: skip
    """Tab ``tab``: if ``available``, ``intro``, the controls ``inputs()`` builds (returned in the order of ``fn``'s
    arguments) and a button on the left, the gallery and its note on the right, the button calling ``fn`` (API
    name ``api_name``); else the note saying which command makes its run."""
    with gr.Tab(TABS[tab][0], id=tab):
        if not available:
            _missing(backend, tab)
            return
        gr.Markdown(intro)
        with gr.Row():
            with gr.Column(scale=1):
                components = inputs()
                run = gr.Button(button, variant="primary", elem_id=f"{tab}-run")
            with gr.Column(scale=3):
                gallery, note = _outputs(tab, columns=columns)
        run.click(_handler(fn), components, [gallery, note], api_name=api_name)


def build_app(backend: Backend) -> gr.Blocks:
    """The page: tabs for text → image, exemplar-guided synthesis, layer diagnosis, unpaired transfer and
    super-resolution; a tab without a run says which command makes it."""
    from ..apps.main_job import DEMO_PROMPTS
    from ..data import FASHION_MNIST_CLASSES

    with gr.Blocks(title="net2net", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# net2net\nTranslations between frozen networks with a conditional INN "
                    "(Rombach, Esser, Ommer, NeurIPS 2020).")  # fmt: skip
        with gr.Tabs():
            with gr.Tab(TABS["text"][0], id="text"):
                if backend.has("text"):
                    with gr.Row():
                        prompt = gr.Textbox(label="Prompt", value=DEMO_PROMPTS[0][0], max_lines=2, scale=4,
                                            elem_id="text-prompt")  # fmt: skip
                        run = gr.Button("Generate", variant="primary", scale=1, elem_id="text-run")
                    with gr.Row():
                        n, temperature, seed = _sampling_inputs("text", 16)
                    gr.Examples([[p] for p, _, _ in DEMO_PROMPTS], inputs=[prompt], label="Prompts (some never seen "
                                "in training)")  # fmt: skip
                    gallery, note = _outputs("text")
                    inputs, fn = [prompt, n, temperature, seed], _handler(backend.text_to_image)
                    run.click(fn, inputs, [gallery, note], api_name="text_to_image")
                    prompt.submit(fn, inputs, [gallery, note], api_visibility="private")
                    temperature.release(fn, inputs, [gallery, note], api_visibility="private")
                else:
                    _missing(backend, "text")


            def exemplar_inputs() -> list[Any]:
                upload, index = _image_inputs("exemplar")
                target = gr.Dropdown(["all classes", *FASHION_MNIST_CLASSES], value="all classes", label="Class",
                                     elem_id="exemplar-class")  # fmt: skip
                return [upload, index, target]

            _image_tab(backend, "exemplar", backend.has("exemplar"),
                       "Pick an exemplar and a class: the exemplar's residual with the new class (Eq. 6).",
                       exemplar_inputs, "Recombine", backend.exemplar, "exemplar")  # fmt: skip

            def diagnosis_inputs() -> list[Any]:
                upload, index = _image_inputs("diagnosis")
                layer = gr.Radio(backend.layers(), value=backend.layers()[0], label="Classifier layer",
                                 elem_id="diagnosis-layer")  # fmt: skip
                return [upload, index, layer, *_sampling_inputs("diagnosis", 11, temperature=False)]

            _image_tab(backend, "diagnosis", bool(backend.layers()),
                       "What a layer of the Fashion-MNIST classifier keeps of an image: samples of images with the "
                       "same activation at that layer.", diagnosis_inputs, "Sample", backend.diagnosis, "diagnosis")  # fmt: skip

            def unpaired_inputs() -> list[Any]:
                domains = backend.domains()
                domain = gr.Radio(domains, value=domains[0], label="Domain of the input", elem_id="unpaired-domain")
                upload, index = _image_inputs("unpaired")
                n, temperature, seed = _sampling_inputs("unpaired", 4, 16, "Samples per domain")
                return [domain, index, upload, temperature, seed, n]  # the order of Backend.transfer

            _image_tab(backend, "unpaired", backend.has("unpaired"),
                       "An image of one domain carried into the others through its residual (Sec. D).",
                       unpaired_inputs, "Transfer", backend.transfer, "transfer", columns=4)  # fmt: skip

            def superres_inputs() -> list[Any]:
                return [*_image_inputs("superres"), *_sampling_inputs("superres", 11)]

            _image_tab(backend, "superres", backend.has("superres"),
                       "Samples at 28 px of an image seen at low resolution (Fig. 4).", superres_inputs, "Sample",
                       backend.superres, "superres")  # fmt: skip
    return app


def launch(backend: Backend, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> Any:
    """Serve the page of ``backend`` on ``host:port`` (a warning when ``host`` is not loopback).

    Returns the Gradio app (``block=False``: at once, serving in a background thread; else when stopped).
    """
    if not is_loopback(host):
        warnings.warn(f"serving on {host}: anyone who can reach this machine on port {port} can use the page "
                      "(there is no login); use --host 127.0.0.1 to keep it local", stacklevel=2)  # fmt: skip
    app = build_app(backend)
    app.queue(default_concurrency_limit=1)  # one translation at a time: the cores are shared by all requests
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "monospace"])  # system fonts: nothing fetched  # fmt: skip
    app.launch(server_name=host, server_port=port, prevent_thread_lock=not block, share=False, theme=theme, css=CSS,
               max_file_size=MAX_UPLOAD_BYTES, ssr_mode=False, pwa=False, mcp_server=False, enable_monitoring=False,
               footer_links=["api", "settings"], inbrowser=False)  # fmt: skip
    return app
