"""`net2net reproduce exemplar` on a tiny configuration, its configs, and the one-hot argmax source expert."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from net2net.experts.classifier import SmallResNet, load_classifier
from net2net.experts.label import ClassifierArgmax, classifier_argmax_expert
from net2net.experts.protocols import expert_fingerprint
from net2net.reproduce import diagnosis
from net2net.reproduce.exemplar import FULL, QUICK, ExemplarSettings, argmax_config, logits_config, run_exemplar
from net2net.reproduce.experiment import CLASSIFIER, config_key


def test_argmax_expert_is_the_one_hot_prediction_and_keys_the_cache() -> None:
    expert = classifier_argmax_expert(CLASSIFIER)
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    codes = expert.encode(x)
    logits = load_classifier(CLASSIFIER)(x)
    assert codes.shape == (16, 10) and codes.dtype == torch.float32
    assert torch.equal(codes.sum(1), torch.ones(16)) and torch.equal(codes.argmax(1), logits.argmax(1))
    assert not any(p.requires_grad for p in expert.parameters()) and not expert.train().training
    # the fingerprint follows the classifier's weights (a retrained classifier invalidates cached latents)
    a, b = SmallResNet(), SmallResNet()
    b.load_state_dict(a.state_dict())
    assert expert_fingerprint(classifier_argmax_expert(a)) == expert_fingerprint(classifier_argmax_expert(b))
    with torch.no_grad():
        b.fc.bias[0] += 1.0
    assert expert_fingerprint(classifier_argmax_expert(a)) != expert_fingerprint(classifier_argmax_expert(b))
    assert expert_fingerprint(expert) != expert_fingerprint(classifier_argmax_expert(a))


def test_argmax_expert_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        ClassifierArgmax(nn.Linear(4, 3), 1)
    with pytest.raises(ValueError, match="logits"):
        ClassifierArgmax(nn.Linear(4, 3), 5).encode(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="SmallResNet"):
        classifier_argmax_expert(nn.Linear(4, 3))  # type: ignore[arg-type]


def test_logits_cinn_is_the_diagnosis_run_and_argmax_differs_only_in_the_source() -> None:
    # `reproduce all` reuses diagnosis's last-layer cINN: the configs (hence run folders) must be identical
    for mine, theirs in ((QUICK, diagnosis.QUICK), (FULL, diagnosis.FULL)):
        assert config_key(logits_config(mine)) == config_key(diagnosis.diagnosis_config("fc", "cinn", theirs))
    a, b = logits_config(QUICK), argmax_config(QUICK)
    assert b["data"]["params"]["source"]["target"].endswith("classifier_argmax_expert")
    assert b["model"] == a["model"] and b["lightning"] == a["lightning"]
    assert config_key(a) != config_key(b)
    with pytest.raises(ValueError, match="exemplars"):
        ExemplarSettings(test_images=10, exemplars=20)
    with pytest.raises(ValueError, match="samples"):
        ExemplarSettings(samples=1)


def test_exemplar_tiny_run_writes_its_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NET2NET_CACHE", str(tmp_path / "cache"))
    settings = ExemplarSettings(train_images=128, steps=3, test_images=40, samples=3, class_samples=3, exemplars=12)
    summary = run_exemplar(out_dir=tmp_path / "results", settings=settings)
    page = (tmp_path / "results" / "exemplar.md").read_text()
    assert [r["condition"] for r in summary["translation"]] == ["logits", "argmax"]
    for r in summary["translation"]:
        assert r["diversity"] > 0 and r["fid"] >= 0 and 0 <= r["accuracy_condition"] <= 1
        assert f"| {r['condition']} | {r['diversity']:.3f} |" in page
    l2i = summary["label_to_image"]
    assert len(l2i["classes"]) == 10 and l2i["diversity"] > 0 and 0 <= l2i["accuracy"] <= 1
    assert all(c["accuracy_real"] is None or 0 <= c["accuracy_real"] <= 1 for c in l2i["classes"])
    assert f"| {l2i['classes'][0]['class']} | {100 * l2i['classes'][0]['accuracy']:.1f} % |" in page
    rows = {r["residual"]: r for r in summary["exemplar_guided"]}
    # the cINN is invertible: the exemplar's residual in its own class gives back the autoencoder's reconstruction
    assert rows["exemplar"]["own_class_rms"] == pytest.approx(summary["reconstruction_rms"], abs=1e-3)
    assert rows["random"]["own_class_rms"] > rows["exemplar"]["own_class_rms"]
    assert all(0 <= r["matching"] <= 1 and 0 <= r["swap_accuracy"] <= 1 for r in rows.values())
    for name in ("swap", "label2image", "logits_vs_argmax"):
        assert (tmp_path / "results" / "figures" / f"exemplar_{name}.png").is_file()
        assert f"figures/exemplar_{name}.png" in page
    assert json.loads((tmp_path / "results" / "exemplar.json").read_text())["settings"]["exemplars"] == 12
    # a second call reuses both trained runs (the logits one under diagnosis's name)
    runs = tmp_path / "cache" / "runs" / "reproduce"
    assert len(list(runs.glob("diagnosis-last-cinn-*"))) == 1 and len(list(runs.glob("exemplar-argmax-cinn-*"))) == 1
    again = run_exemplar(out_dir=tmp_path / "results", settings=settings)
    assert set(again["train_seconds"].values()) == {0.0}
