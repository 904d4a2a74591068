"""The results pages are a function of their JSON summaries: each experiment's page code, given the summary of
``docs/results/NAME.json``, writes exactly ``docs/results/NAME.md`` and the same JSON (so the experiment skeleton
and any change to it keep the pages byte for byte)."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import pytest

from net2net.reproduce import EXPERIMENTS
from net2net.reproduce.experiment import Experiment, Settings, check_ints, write_page

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PAGES = [name for name in EXPERIMENTS if name != "text2image"]


@pytest.mark.parametrize("name", PAGES)
def test_page_of_a_fixed_summary_is_the_published_page(name: str, tmp_path: Path) -> None:
    summary = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    module = importlib.import_module(f"net2net.reproduce.{name}")
    exp = Experiment(name, Settings(), summary["quick"], tmp_path, tmp_path / "runs")
    page = exp.write(summary, module._page)
    assert page.read_text(encoding="utf-8") == (RESULTS / f"{name}.md").read_text(encoding="utf-8")
    assert (tmp_path / f"{name}.json").read_bytes() == (RESULTS / f"{name}.json").read_bytes()


def test_text2image_page_of_a_fixed_summary_is_the_published_page(tmp_path: Path) -> None:
    from net2net.reproduce.text2image import _page

    summary = json.loads((RESULTS / "text2image.json").read_text(encoding="utf-8"))
    write_page(tmp_path, "text2image", _page(summary, quick=False), summary)
    assert (tmp_path / "text2image.md").read_bytes() == (RESULTS / "text2image.md").read_bytes()
    assert (tmp_path / "text2image.json").read_bytes() == (RESULTS / "text2image.json").read_bytes()
    assert "reproduce text2image --quick`" in "\n".join(_page(summary, quick=True))


def _before_moves(cfg: object) -> object:
    """``cfg`` with every ``target`` written as it was before the moves of ``config.MOVED_TARGETS`` (new -> old)."""
    from net2net.config import MOVED_TARGETS

    if isinstance(cfg, dict):
        out = {k: _before_moves(v) for k, v in cfg.items()}
        name = out.get("target")
        if isinstance(name, str):
            for old, new in MOVED_TARGETS.items():
                if name == new or name.startswith(new + "."):
                    out["target"] = old + name[len(new) :]
                    break
        return out
    if isinstance(cfg, list):
        return [_before_moves(v) for v in cfg]
    return cfg


def _key(cfg: object) -> str:
    """The hash of a config's canonical JSON with its targets named as before the moves (computed here, not by the
    package): an unchanged value means the experiment trains what it trained before the refactor."""
    return hashlib.sha256(json.dumps(_before_moves(cfg), sort_keys=True).encode()).hexdigest()[:12]


def test_training_configs_are_those_of_the_existing_runs() -> None:
    from net2net.reproduce import diagnosis, disentangle, exemplar, inpaint, superres, translators, unpaired

    # the configs of the quick settings as written before the experiment skeleton (commit d2dd090)
    data = diagnosis.diagnosis_config("fc", "cinn", diagnosis.QUICK)["data"]
    got = {
        "diagnosis/stage1/cinn": _key(diagnosis.diagnosis_config("stage1", "cinn", diagnosis.QUICK)),
        "diagnosis/fc/mlp": _key(diagnosis.diagnosis_config("fc", "mlp", diagnosis.QUICK)),
        "exemplar/argmax": _key(exemplar.argmax_config(exemplar.QUICK)),
        "superres/ae": _key(superres.low_res_autoencoder_config(superres.QUICK)),
        "superres/fashion": _key(superres.fashion_config("/x/autoencoder.safetensors", superres.QUICK)),
        "superres/face": _key(superres.face_config(superres.QUICK)),
        "inpaint/_blocks.10": _key(inpaint.inpaint_config("_blocks.10", inpaint.QUICK)),
        "disentangle": _key(disentangle.disentangle_config(disentangle.QUICK)),
        "unpaired": _key(unpaired.unpaired_config(unpaired.QUICK)),
        "translators/spline": _key(translators.translator_config("spline", {"cond_dim": 10}, data, translators.QUICK)),
    }
    assert got == EXPECTED_KEYS


EXPECTED_KEYS = {
    "diagnosis/stage1/cinn": "ff9d8b9f068a",
    "diagnosis/fc/mlp": "566bf560462e",  # the MLP is a TranslatorModule(translator="mlp") block (was 1d71ad1c6d36)
    "exemplar/argmax": "39409e9eb39c",
    "superres/ae": "2fb4038a2496",
    "superres/fashion": "20933f37f811",
    "superres/face": "da0e2dad15cf",
    "inpaint/_blocks.10": "ac6da2503bf3",
    "disentangle": "73ae655efc43",
    "unpaired": "ad642ee26bbf",
    "translators/spline": "05b05cb28f6c",
}


def test_settings_base_checks_its_minimums() -> None:
    from net2net.reproduce.diagnosis import DiagnosisSettings
    from net2net.reproduce.superres import SuperresSettings

    with pytest.raises(ValueError, match=r"DiagnosisSettings.samples must be an int >= 2, got 1"):
        DiagnosisSettings(samples=1)
    with pytest.raises(ValueError, match=r"SuperresSettings.face_steps must be an int >= 1, got 0"):
        SuperresSettings(face_steps=0)
    with pytest.raises(ValueError, match="train_images must be <= 60000"):  # a subclass's own check
        SuperresSettings(train_images=60001)
    with pytest.raises(ValueError, match=r"DiagnosisSettings.seed must be an int >= 0, got True"):
        DiagnosisSettings(seed=True)  # type: ignore[arg-type]
    check_ints(DiagnosisSettings(), {"seed": 0, "steps": 6000})  # at the minimum: accepted


def test_every_int_field_of_every_settings_is_checked() -> None:
    """A field typed int must be an int >= 1 (``seed`` >= 0) unless the class's MINIMUMS say otherwise; the
    exceptions of FashionSettings hold in its subclasses."""
    import dataclasses
    import importlib

    from net2net.reproduce.experiment import FashionSettings, Settings

    for name in ("diagnosis", "disentangle", "exemplar", "inpaint", "superres", "translators", "unpaired"):
        importlib.import_module(f"net2net.reproduce.{name}")
    classes, todo = [], [Settings]
    while todo:
        classes += (subs := todo.pop().__subclasses__())
        todo += subs
    assert len(classes) == 8, classes  # FashionSettings and the seven experiments'
    assert dict(FashionSettings.MINIMUMS) == {"samples": 2}
    checked = 0
    for cls in classes:
        if issubclass(cls, FashionSettings):
            assert cls.MINIMUMS["samples"] == 2, cls.__name__
        for field in dataclasses.fields(cls):
            if field.type == "int":
                minimum = cls.MINIMUMS.get(field.name, 0 if field.name == "seed" else 1)
                with pytest.raises(ValueError, match=rf"{cls.__name__}.{field.name} must be an int >= {minimum}, "):
                    cls(**{field.name: minimum - 1})
                with pytest.raises(ValueError, match=rf"{cls.__name__}.{field.name} must be an int"):
                    cls(**{field.name: 2.5})
                checked += 1
    assert checked >= 40


def test_settings_maximums_bound_the_fashion_mnist_sizes() -> None:
    from net2net.reproduce.experiment import FASHION_MNIST_SIZES
    from net2net.reproduce.superres import SuperresSettings
    from net2net.reproduce.translators import TranslatorsSettings

    assert dict(FASHION_MNIST_SIZES) == {"train_images": 60000, "test_images": 10000}
    for cls in (SuperresSettings, TranslatorsSettings):
        assert cls.MAXIMUMS is FASHION_MNIST_SIZES
        cls(train_images=60000, test_images=10000)  # at the maximum: accepted
        with pytest.raises(ValueError, match=rf"^{cls.__name__}.train_images must be <= 60000, got 60001$"):
            cls(train_images=60001)
        with pytest.raises(ValueError, match=rf"^{cls.__name__}.test_images must be <= 10000, got 10001$"):
            cls(test_images=10001)
    assert not Settings.MAXIMUMS  # nothing bounded unless a subclass says so


def test_experiment_start_picks_settings_and_writes_figures(tmp_path: Path) -> None:
    import torch

    from net2net.reproduce.diagnosis import FULL, QUICK, DiagnosisSettings

    mine = DiagnosisSettings(steps=7)
    assert Experiment.start("diagnosis", tmp_path, True, None, None, QUICK, FULL).settings is QUICK
    assert Experiment.start("diagnosis", tmp_path, False, None, None, QUICK, FULL).settings is FULL
    exp = Experiment.start("diagnosis", tmp_path, True, tmp_path / "runs", mine, QUICK, FULL)
    assert exp.settings is mine and exp.runs == tmp_path / "runs" and exp.quick
    assert exp.generator(2).initial_seed() == mine.seed + 2
    path = exp.figure(torch.zeros(3, 1, 4, 4), "grid", nrow=3)
    assert path == tmp_path / "figures" / "grid.png" and path.is_file()
    summary = exp.summary(a=1)
    assert list(summary) == ["settings", "quick", "a"] and summary["settings"]["steps"] == 7
