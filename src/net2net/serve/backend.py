"""What the page computes, without the web framework: models loaded once per process, checked inputs, images.

:class:`Backend` holds one :class:`~net2net.apps.translate.Net2Net` per run (loaded on first use, under a lock, and
then shared by every request) and the shipped Fashion-MNIST classifier that reads the generated images. Each tab's
method checks its inputs (an :class:`InputError` says what was expected and what was received; the page shows it)
and returns an :class:`Output`: PIL images with captions, a Markdown note and the seconds spent per stage.
Inputs are values only: a prompt, numbers, an index into a test split, or the bytes of an upload; no path typed
into the page is ever opened.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from ..images import to_pil
from .discovery import TABS, RunInfo

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_SAMPLES",
    "MAX_TEMPERATURE",
    "MAX_UPLOAD_BYTES",
    "SCALE",
    "Backend",
    "InputError",
    "Output",
    "check_int",
    "check_prompt",
    "check_temperature",
    "load_upload",
]

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 500
MAX_SAMPLES = 64
MAX_TEMPERATURE = 2.0
MAX_UPLOAD_BYTES = 10 * 2**20  # also the web server's upload limit
MAX_UPLOAD_PIXELS = 4096 * 4096  # larger images are refused before they are decoded
SCALE = 4  # 28 px images are shown at 112 px (nearest neighbour)
IMAGE_SIZE = 28
CLASSIFIER = "pretrained:fashion_mnist_classifier"
FASHION_AUTOENCODER = "pretrained:fashion_mnist_autoencoder"
RESULTS = Path(__file__).resolve().parents[3] / "docs" / "results"  # the repository's results pages (a clone)


class InputError(ValueError):
    """An input the page cannot use; the message is shown to the user as it is."""


def check_prompt(prompt: object) -> str:
    """A non-empty prompt of at most :data:`MAX_PROMPT_CHARS` characters, stripped."""
    if not isinstance(prompt, str):
        raise InputError(f"the prompt must be text, got {type(prompt).__name__}")
    text = prompt.strip()
    if not text:
        raise InputError("the prompt is empty: describe a piece of clothing, e.g. 'a pair of running shoes'")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"the prompt has {len(text)} characters; at most {MAX_PROMPT_CHARS} are accepted")
    return text


def check_int(value: object, name: str, low: int, high: int) -> int:
    """``value`` as an int in ``[low, high]`` (integral floats, as a web form sends them, are accepted)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    if float(value) != int(value) or not low <= value <= high:
        raise InputError(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


def check_temperature(value: object) -> float:
    """A temperature in ``[0, MAX_TEMPERATURE]``: samples ``v ~ N(0, T² I)``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_TEMPERATURE:
        raise InputError(f"the temperature must be a number from 0 to {MAX_TEMPERATURE:g}, got {value!r}")
    return float(value)


def load_upload(data: object) -> Tensor:
    """The bytes of an uploaded image as a grey ``(1, 1, 28, 28)`` image in [-1, 1] (resized, as Fashion-MNIST)."""
    if not isinstance(data, (bytes, bytearray)):
        raise InputError(f"expected the bytes of an uploaded image, got {type(data).__name__}")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"the upload has {len(data) / 2**20:.1f} MB; at most {MAX_UPLOAD_BYTES // 2**20} MB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_UPLOAD_PIXELS:
                raise InputError(f"the image has {img.width}x{img.height} pixels; at most {MAX_UPLOAD_PIXELS} in all")
            grey = img.convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    except Image.DecompressionBombError as e:
        raise InputError(f"the image has too many pixels ({e}); at most {MAX_UPLOAD_PIXELS} in all") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        if isinstance(e, InputError):
            raise
        raise InputError("the upload is not an image that can be read (expected PNG, JPEG, GIF, BMP or WebP)") from e
    x = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8).float()
    return (x / 127.5 - 1).view(1, 1, IMAGE_SIZE, IMAGE_SIZE)


@dataclass
class Output:
    """What one request returns: images (PIL, upscaled ×:data:`SCALE`) with captions, a note, seconds per stage."""

    images: list[Image.Image]
    captions: list[str]
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


def display(images: Tensor) -> list[Image.Image]:
    """``(N, C, H, W)`` images in [-1, 1] as PIL images upscaled ×:data:`SCALE` (nearest neighbour)."""
    out = []
    for image in images:
        pil = to_pil(image)
        out.append(pil.resize((pil.width * SCALE, pil.height * SCALE), Image.Resampling.NEAREST))
    return out


class _Timer:
    """Seconds per named stage: ``with timer("decoder"): ...``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> _Timer:
        self._name = name
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.seconds[self._name] = self.seconds.get(self._name, 0.0) + time.perf_counter() - self._t0


class Backend:
    """The models behind the page, each loaded once and shared by all requests.

    Arguments:
        runs: the runs to serve (:func:`net2net.serve.discovery.find_runs`); one per tab, one per layer for diagnosis.

    Example:
        >>> backend = Backend(find_runs())  # doctest: +SKIP
        >>> out = backend.text_to_image("a pair of running shoes", n=16, temperature=1.0, seed=0)  # doctest: +SKIP
        >>> len(out.images), out.images[0].size  # doctest: +SKIP
        (16, (112, 112))
    """

    def __init__(self, runs: Sequence[RunInfo]) -> None:
        self.runs = {(r.tab, r.layer): r for r in runs}
        self._models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._classifier: Any = None
        self._datasets: dict[Any, Any] = {}
        self._fashion: dict[tuple[str, str], bool] = {}  # whether a run decodes to Fashion-MNIST images

    # -- what exists ------------------------------------------------------------------------------------
    def has(self, tab: str) -> bool:
        """Whether a run of ``tab`` is served."""
        return any(t == tab for t, _ in self.runs)

    def layers(self) -> list[str]:
        """The diagnosis layers with a run, early to last."""
        return [name for name in ("early", "middle", "last") if ("diagnosis", name) in self.runs]

    def missing_note(self, tab: str) -> str:
        """Markdown for a tab without a run: the command that makes it."""
        title, command = TABS[tab]
        return (f"**No trained run for {title.lower()} yet.** Make it with\n\n```\n{command}\n```\n\n"
                "then restart `net2net serve` (or pass the run folder: `net2net serve RUN_DIR ...`).")  # fmt: skip

    def load_all(self) -> None:
        """Load every served run (and the classifier) now, so that the first request does not wait."""
        for tab, layer in self.runs:
            self.model(tab, layer)
        self.classifier()

    # -- models, loaded once ----------------------------------------------------------------------------
    def model(self, tab: str, layer: str = "") -> Any:
        """The :class:`~net2net.apps.translate.Net2Net` of a served run (loaded on first use)."""
        from ..apps.translate import Net2Net

        key = (tab, layer)
        if key not in self.runs:
            raise InputError(f"no run for {TABS[tab][0]}{f' ({layer} layer)' if layer else ''}; "
                             f"make it with: {TABS[tab][1]}")  # fmt: skip
        with self._lock:
            if key not in self._models:
                t0 = time.perf_counter()
                self._models[key] = Net2Net.from_run(self.runs[key].path)
                log.info("loaded %s in %.1f s", self.runs[key].path, time.perf_counter() - t0)
            return self._models[key]

    def classifier(self) -> Any:
        """The shipped Fashion-MNIST classifier that reads the generated images."""
        from ..experts.classifier import load_classifier

        with self._lock:
            if self._classifier is None:
                self._classifier = load_classifier(CLASSIFIER)
            return self._classifier

    def _dataset(self, key: Any, build: Any) -> Any:
        with self._lock:
            if key not in self._datasets:
                self._datasets[key] = build()
            return self._datasets[key]

    @torch.no_grad()
    def readings(self, images: Tensor) -> list[str]:
        """The classifier's reading of ``(N, 1, 28, 28)`` Fashion-MNIST images: ``"Sneaker 93%"`` each."""
        from ..data import FASHION_MNIST_CLASSES

        probs = self.classifier()(images).softmax(1)
        p, c = probs.max(1)
        return [f"{FASHION_MNIST_CLASSES[int(k)]} {100 * float(q):.0f}%" for k, q in zip(c, p, strict=True)]

    def _reads_fashion(self, tab: str, layer: str = "") -> bool:
        """Whether the run's target is the Fashion-MNIST autoencoder (so the classifier can read its images)."""
        from omegaconf import OmegaConf

        key = (tab, layer)
        if key not in self._fashion:
            cfg = OmegaConf.load(self.runs[key].path / "config.yaml")
            self._fashion[key] = OmegaConf.select(cfg, "data.params.target.params.path") == FASHION_AUTOENCODER
        return self._fashion[key]

    def _captioned(self, images: Tensor, tab: str, layer: str = "") -> list[str]:
        return self.readings(images) if self._reads_fashion(tab, layer) else [""] * len(images)

    # -- input images --------------------------------------------------------------------------------------
    def fashion_test_image(self, index: object) -> Tensor:
        """Fashion-MNIST test image ``index`` (0-9999), ``(1, 1, 28, 28)`` in [-1, 1]."""
        from ..data import FashionMNIST

        test = self._dataset("fashion_mnist", lambda: FashionMNIST(split="test"))
        i = check_int(index, "the test image number", 0, len(test) - 1)
        return test[i]["image"][None]

    def input_image(self, upload: object, index: object) -> Tensor:
        """The uploaded image if there is one, else Fashion-MNIST test image ``index``."""
        return load_upload(upload) if upload is not None else self.fashion_test_image(index)

    # -- the tabs --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def text_to_image(self, prompt: object, n: object, temperature: object, seed: object) -> Output:
        """``n`` images for one prompt: text expert, cINN, decoder (Eq. 7), read by the classifier."""
        text = check_prompt(prompt)
        n_, t_ = check_int(n, "the number of samples", 1, MAX_SAMPLES), check_temperature(temperature)
        g = torch.Generator().manual_seed(check_int(seed, "the seed", 0, 2**31 - 1))
        model, timer = self.model("text"), _Timer()
        with timer("text expert"):
            z_src = model.encode_source([text])  # (1, 384)
        with timer("cINN"):
            z = model.tau.sample(z_src, n_samples=n_, temperature=t_, generator=g)[0]  # (n, D)
        with timer("decoder"):
            images = model.decode(z)  # (n, 1, 28, 28)
        with timer("classifier"):
            captions = self._captioned(images, "text")
        with timer("display"):
            pils = display(images)
        return Output(pils, captions, _reading_note(captions), timer.seconds)

    @torch.no_grad()
    def exemplar(self, upload: object, index: object, target_class: object) -> Output:
        """Eq. 6 with the argmax cINN: the exemplar's residual under the chosen class (or every class)."""
        from ..data import FASHION_MNIST_CLASSES

        names = ["all classes", *FASHION_MNIST_CLASSES]
        if target_class not in names:
            raise InputError(f"the class must be one of {names}, got {target_class!r}")
        y = self.input_image(upload, index)
        model = self.model("exemplar")
        classes = list(range(10)) if target_class == "all classes" else [FASHION_MNIST_CLASSES.index(target_class)]
        v = model.residual(y)  # (1, D): τ⁻¹(Θ(y) | onehot(argmax Φ(y)))
        onehot = torch.eye(10)[classes]  # (k, 10)
        z, _ = model.tau.inverse(v.expand(len(classes), -1), onehot)  # (k, D)
        images = torch.cat([y, model.decode(z)])  # exemplar first
        readings = self.readings(images)
        own = readings[0]
        captions = [f"exemplar (classifier: {own})"] + [
            f"→ {FASHION_MNIST_CLASSES[c]} (classifier: {r})"
            for c, r in zip(classes, readings[1:], strict=True)]  # fmt: skip
        note = ("The exemplar's residual `v = τ⁻¹(Θ(y) | argmax Φ(y))` under each new class: the class comes "
                "from the condition, the rest (shape, brightness, pose) from the exemplar.")  # fmt: skip
        return Output(display(images), captions, note)

    @torch.no_grad()
    def diagnosis(self, upload: object, index: object, layer: object, n: object, seed: object) -> Output:
        """Samples of what one classifier layer keeps of an image, and its information in nats (results page)."""
        if not self.layers():
            raise InputError(f"no run for layer diagnosis; make it with: {TABS['diagnosis'][1]}")
        if layer not in self.layers():
            raise InputError(f"the layer must be one of {self.layers()}, got {layer!r}")
        y = self.input_image(upload, index)
        n_ = check_int(n, "the number of samples", 1, MAX_SAMPLES)
        g = torch.Generator().manual_seed(check_int(seed, "the seed", 0, 2**31 - 1))
        model = self.model("diagnosis", str(layer))
        images = torch.cat([y, model.translate(y, n=n_, generator=g)[0]])  # input, then (n, 1, 28, 28)
        captions = self.readings(images)
        captions = [f"input ({captions[0]})", *captions[1:]]
        return Output(display(images), captions, _information_note(str(layer)) + "\n\n" + _reading_note(captions[1:]))

    @torch.no_grad()
    def superres(self, upload: object, index: object, n: object, temperature: object, seed: object) -> Output:
        """Samples at 28 px given the image at the low-res autoencoder's size (shown upscaled)."""
        y = self.input_image(upload, index)
        n_, t_ = check_int(n, "the number of samples", 1, MAX_SAMPLES), check_temperature(temperature)
        g = torch.Generator().manual_seed(check_int(seed, "the seed", 0, 2**31 - 1))
        model = self.model("superres")
        low = model.source.prepare(y)  # (1, 1, h, w): what the source expert sees
        shown = F.interpolate(low, size=y.shape[-2:], mode="nearest")
        samples = model.translate(y, n=n_, temperature=t_, generator=g)[0]  # (n, 1, 28, 28)
        readings = self.readings(samples)
        captions = [f"input at {low.shape[-1]} px", *readings]
        return Output(display(torch.cat([shown, samples])), captions, _reading_note(readings))

    @torch.no_grad()
    def transfer(self, domain: object, index: object, upload: object, temperature: object, seed: object,
                 n: object) -> Output:  # fmt: skip
        """Unpaired transfer (Sec. D): the image's residual in every domain, and fresh samples of each domain."""
        from ..config import instantiate_from_config

        model = self.model("unpaired")
        domains = self.domains()
        if domain not in domains:
            raise InputError(f"the domain must be one of {domains}, got {domain!r}")
        a = domains.index(str(domain))
        if upload is not None:
            y = load_upload(upload)
        else:
            cfg = self._domain_configs()[a]
            test = self._dataset(("unpaired", a), lambda: instantiate_from_config(cfg, key=f"domain {domain}"))
            y = test[check_int(index, "the test image number", 0, len(test) - 1)]["image"][None]
        n_, t_ = check_int(n, "the number of samples", 1, MAX_SAMPLES), check_temperature(temperature)
        g = torch.Generator().manual_seed(check_int(seed, "the seed", 0, 2**31 - 1))
        moved = torch.cat([model.transfer(y, a, b) for b in range(len(domains))])  # (K, 1, 28, 28)
        z = model.tau.sample(torch.eye(len(domains)), n_samples=n_, temperature=t_, generator=g)  # (K, n, D)
        samples = model.decode(z.flatten(0, 1))  # (K * n, 1, 28, 28)
        captions = [f"input ({domain})", *[f"→ {d}" for d in domains],
                    *[f"sample of {d}" for d in domains for _ in range(n_)]]  # fmt: skip
        note = ("The input's residual `v = τ⁻¹(Θ(y) | a)` decoded in every domain `b` (→ its own domain: the "
                "reconstruction), then fresh samples `τ(v | b)`, `v ~ N(0, T² I)`, of each domain.")  # fmt: skip
        return Output(display(torch.cat([y, moved, samples])), captions, note)

    def _domain_configs(self) -> list[dict[str, Any]]:
        """The test splits of the unpaired run's domains, in its label order (from its own config)."""
        from omegaconf import OmegaConf

        cfg = OmegaConf.load(self.runs[("unpaired", "")].path / "config.yaml")
        datasets = OmegaConf.to_container(OmegaConf.select(cfg, "data.params.train.params.datasets"))
        if not isinstance(datasets, dict):
            raise InputError("the unpaired run's config names no domains (data.params.train.params.datasets)")
        out = []
        for block in datasets.values():
            block = dict(block)
            block["params"] = {**(block.get("params") or {}), "split": "test"}
            out.append(block)
        return out

    def domains(self) -> list[str]:
        """The unpaired run's domain names, in its label order."""
        from omegaconf import OmegaConf

        if not self.has("unpaired"):
            return []
        cfg = OmegaConf.load(self.runs[("unpaired", "")].path / "config.yaml")
        datasets = OmegaConf.select(cfg, "data.params.train.params.datasets")
        return [str(k) for k in datasets] if datasets is not None else []


def _reading_note(captions: Sequence[str]) -> str:
    """``"... reads the samples as: Sneaker ×12, Sandal ×3."`` from captions ``"<class> <probability>%"``."""
    counts: dict[str, int] = {}
    for c in captions:
        if c:
            name = c.rsplit(" ", 1)[0]
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return ""
    parts = [f"{k} ×{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    return "The Fashion-MNIST classifier reads the samples as: " + ", ".join(parts) + "."


def _information_note(layer: str) -> str:
    """The layer's information about the image code from ``docs/results/diagnosis.json``, where it exists."""
    page = RESULTS / "diagnosis.json"
    if not page.is_file():
        return f"Information of the {layer} layer: no results page here (run `net2net reproduce diagnosis --quick`)."
    summary = json.loads(page.read_text(encoding="utf-8"))
    row = next((r for r in summary.get("layers", []) if r.get("layer") == layer), None)
    if row is None:
        return f"The results page has no row for the {layer} layer."
    s = summary.get("settings", {})
    return (f"The **{layer}** layer ({row['module']}, {'×'.join(map(str, row['shape']))}) holds "
            f"**{row['information_nats']:.1f} ± {row['information_stderr']:.1f} nats** about the image code "
            f"(docs/results/diagnosis.md: {s.get('steps')} steps on {s.get('train_images')} images"
            f"{', --quick' if summary.get('quick') else ''}).")  # fmt: skip
