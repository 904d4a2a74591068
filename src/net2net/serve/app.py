"""The page: a Gradio app with one tab per kind of translation, over a :class:`~net2net.serve.backend.Backend`.

Gradio (not Streamlit, which the original code used) because the server is an ordinary Python object in this
process: the models are loaded once and every request calls the same functions, which the tests call directly;
uploads are limited by the server before they reach the code; and the page works offline: the theme uses system
fonts (no font files fetched), telemetry and the version check are off (``GRADIO_ANALYTICS_ENABLED=False``,
``analytics_enabled=False``), no share link, no server-side rendering (no Node process).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from .backend import MAX_SAMPLES, MAX_TEMPERATURE, MAX_UPLOAD_BYTES, Backend, InputError, Output
from .runs import TABS

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported: no telemetry, no version check
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr  # noqa: E402  (the environment above must be set first)

__all__ = ["build_app", "is_loopback", "launch"]

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


def _handler(fn: Callable[..., Output]) -> Callable[..., tuple[Any, str]]:
    """Wrap a backend method: its output as gallery items and a note; a bad input as a message in the note (the
    gallery keeps what it showed), so that the page says what was wrong and the server keeps serving."""

    def handle(*args: Any) -> tuple[Any, str]:
        try:
            out = fn(*args)
        except InputError as e:
            return gr.skip(), f"**Input error:** {e}"
        stages = ", ".join(f"{k} {1000 * v:.0f} ms" for k, v in out.seconds.items())
        timing = f"\n\n{len(out.images)} images; {stages}." if stages else ""
        return list(zip(out.images, out.captions)), out.note + timing

    handle.__name__ = fn.__name__
    return handle


def _missing(backend: Backend, tab: str) -> None:
    gr.Markdown(backend.missing_note(tab), elem_id=f"{tab}-missing")


def _image_inputs(tab: str) -> tuple[Any, Any]:
    upload = gr.File(label="Upload an image (optional; a bright object on a dark background, as Fashion-MNIST)",
                     file_types=["image"], type="binary", elem_id=f"{tab}-upload")  # fmt: skip
    index = gr.Number(value=0, precision=0, minimum=0, label="or a test image (number)", elem_id=f"{tab}-index")
    return upload, index


def _outputs(tab: str, columns: int = 8) -> tuple[Any, Any]:
    gallery = gr.Gallery(label="Images", columns=columns, format="png", object_fit="contain", height="auto",
                         elem_id=f"{tab}-gallery", elem_classes="n2n-gallery")  # fmt: skip
    note = gr.Markdown(elem_id=f"{tab}-note")
    return gallery, note


def build_app(backend: Backend) -> gr.Blocks:
    """The page: tabs for text → image, exemplar-guided synthesis, layer diagnosis, unpaired transfer and
    super-resolution; a tab without a run says which command makes it."""
    from ..apps.text2image import DEMO_PROMPTS
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
                        n = gr.Slider(1, MAX_SAMPLES, value=16, step=1, label="Samples", elem_id="text-n")
                        temperature = gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature",
                                                elem_id="text-temperature")  # fmt: skip
                        seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="text-seed")
                    gr.Examples([[p] for p, _, _ in DEMO_PROMPTS], inputs=[prompt], label="Prompts (some never seen "
                                "in training)")  # fmt: skip
                    gallery, note = _outputs("text")
                    inputs, fn = [prompt, n, temperature, seed], _handler(backend.text_to_image)
                    run.click(fn, inputs, [gallery, note], api_name="text_to_image")
                    prompt.submit(fn, inputs, [gallery, note], api_name=False)
                    temperature.release(fn, inputs, [gallery, note], api_name=False)
                else:
                    _missing(backend, "text")

            with gr.Tab(TABS["exemplar"][0], id="exemplar"):
                if backend.has("exemplar"):
                    gr.Markdown("Pick an exemplar and a class: the exemplar's residual with the new class (Eq. 6).")
                    with gr.Row():
                        with gr.Column(scale=1):
                            upload, index = _image_inputs("exemplar")
                            target = gr.Dropdown(["all classes", *FASHION_MNIST_CLASSES], value="all classes",
                                                 label="Class", elem_id="exemplar-class")  # fmt: skip
                            run = gr.Button("Recombine", variant="primary", elem_id="exemplar-run")
                        with gr.Column(scale=3):
                            gallery, note = _outputs("exemplar", columns=6)
                    run.click(_handler(backend.exemplar), [upload, index, target], [gallery, note], api_name="exemplar")
                else:
                    _missing(backend, "exemplar")

            with gr.Tab(TABS["diagnosis"][0], id="diagnosis"):
                if backend.layers():
                    gr.Markdown("What a layer of the Fashion-MNIST classifier keeps of an image: samples of images "
                                "with the same activation at that layer.")  # fmt: skip
                    with gr.Row():
                        with gr.Column(scale=1):
                            upload, index = _image_inputs("diagnosis")
                            layer = gr.Radio(backend.layers(), value=backend.layers()[0], label="Classifier layer",
                                             elem_id="diagnosis-layer")  # fmt: skip
                            n = gr.Slider(1, MAX_SAMPLES, value=11, step=1, label="Samples", elem_id="diagnosis-n")
                            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="diagnosis-seed")
                            run = gr.Button("Sample", variant="primary", elem_id="diagnosis-run")
                        with gr.Column(scale=3):
                            gallery, note = _outputs("diagnosis", columns=6)
                    run.click(_handler(backend.diagnosis), [upload, index, layer, n, seed], [gallery, note],
                              api_name="diagnosis")  # fmt: skip
                else:
                    _missing(backend, "diagnosis")

            with gr.Tab(TABS["unpaired"][0], id="unpaired"):
                if backend.has("unpaired"):
                    domains = backend.domains()
                    gr.Markdown("An image of one domain carried into the others through its residual (Sec. D).")
                    with gr.Row():
                        with gr.Column(scale=1):
                            domain = gr.Radio(domains, value=domains[0], label="Domain of the input",
                                              elem_id="unpaired-domain")  # fmt: skip
                            upload, index = _image_inputs("unpaired")
                            n = gr.Slider(1, 16, value=4, step=1, label="Samples per domain", elem_id="unpaired-n")
                            temperature = gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature",
                                                    elem_id="unpaired-temperature")  # fmt: skip
                            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="unpaired-seed")
                            run = gr.Button("Transfer", variant="primary", elem_id="unpaired-run")
                        with gr.Column(scale=3):
                            gallery, note = _outputs("unpaired", columns=4)
                    run.click(_handler(backend.transfer), [domain, index, upload, temperature, seed, n],
                              [gallery, note], api_name="transfer")  # fmt: skip
                else:
                    _missing(backend, "unpaired")

            with gr.Tab(TABS["superres"][0], id="superres"):
                if backend.has("superres"):
                    gr.Markdown("Samples at 28 px of an image seen at low resolution (Fig. 4).")
                    with gr.Row():
                        with gr.Column(scale=1):
                            upload, index = _image_inputs("superres")
                            n = gr.Slider(1, MAX_SAMPLES, value=11, step=1, label="Samples", elem_id="superres-n")
                            temperature = gr.Slider(0, MAX_TEMPERATURE, value=1.0, step=0.05, label="Temperature",
                                                    elem_id="superres-temperature")  # fmt: skip
                            seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="superres-seed")
                            run = gr.Button("Sample", variant="primary", elem_id="superres-run")
                        with gr.Column(scale=3):
                            gallery, note = _outputs("superres", columns=6)
                    run.click(_handler(backend.superres), [upload, index, n, temperature, seed], [gallery, note],
                              api_name="superres")  # fmt: skip
                else:
                    _missing(backend, "superres")
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
