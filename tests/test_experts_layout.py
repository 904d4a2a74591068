"""The experts' modules after issue 13: public names still importable, old import paths of configs resolve."""

from __future__ import annotations

import importlib

import pytest
import yaml

import net2net.experts as experts
from net2net.config import MOVED_TARGETS, get_obj_from_str, instantiate_from_config, moved_target, trusted_modules


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("net2net.experts.base.FrozenExpert", "net2net.experts.protocols.FrozenExpert"),
        ("net2net.experts.base.expert_fingerprint", "net2net.experts.protocols.expert_fingerprint"),
        ("net2net.experts.encoder.deformed_encoder", "net2net.experts.encoder_source.deformed_encoder"),
        ("net2net.experts.encoder.EncoderSource", "net2net.experts.encoder_source.EncoderSource"),
        ("net2net.experts.classifier.ClassifierModule", "net2net.training.classifier_module.ClassifierModule"),
        ("net2net.experts.classifier.augment_batch", "net2net.training.classifier_module.augment_batch"),
    ],
)
def test_old_import_paths_resolve(old: str, new: str) -> None:
    assert moved_target(old) == new
    assert get_obj_from_str(old) is get_obj_from_str(new)
    with trusted_modules():  # a run folder's config: the moved name is still inside net2net
        assert get_obj_from_str(old) is get_obj_from_str(new)


def test_moved_targets_table() -> None:
    # every new path exists, no old module is still importable (the table would hide a stale file), and names
    # that did not move, or only share a prefix with a moved module, are left alone
    for old, new in MOVED_TARGETS.items():
        if old.count(".") == 2:  # a module: net2net.<package>.<module>
            importlib.import_module(new)
            with pytest.raises(ModuleNotFoundError):
                importlib.import_module(old)
        else:
            assert get_obj_from_str(new) is not None
    assert moved_target("net2net.experts.classifier.SmallResNet") == "net2net.experts.classifier.SmallResNet"
    assert moved_target("net2net.experts.encoders.X") == "net2net.experts.encoders.X"
    assert moved_target("net2net.experts.base") == "net2net.experts.protocols"


def test_old_config_instantiates(tmp_path) -> None:
    """A config written before the move (as in a saved run folder's config.yaml) still builds its objects."""
    cfg = yaml.safe_load(
        "model:\n  target: net2net.experts.classifier.ClassifierModule\n"
        "  params: {architecture: {widths: [4, 8], blocks_per_stage: 1}, lr: 0.05}\n"
    )
    with trusted_modules():
        module = instantiate_from_config(cfg["model"])
    from net2net.training.classifier_module import ClassifierModule

    assert type(module) is ClassifierModule and module.model.widths == (4, 8) and module.hparams.lr == 0.05


def test_public_names_stay_importable() -> None:
    import net2net.experts.biggan as biggan
    from net2net.experts.biggan.dequantization import DequantizationVAE
    from net2net.experts.biggan.expert import BigGANTarget
    from net2net.experts.biggan.generator import BigGAN, BigGANConfig

    for name in experts.__all__:
        assert getattr(experts, name) is not None
    assert experts.BigGANTarget is biggan.BigGANTarget is BigGANTarget
    assert experts.DequantizationVAE is biggan.DequantizationVAE is DequantizationVAE
    assert experts.BigGAN is biggan.BigGAN is BigGAN and experts.BigGANConfig is BigGANConfig
    for name in biggan.__all__:
        assert getattr(biggan, name) is not None
    # the dotted names that configs may hold for BigGAN are unchanged (the package exports them)
    assert get_obj_from_str("net2net.experts.biggan.BigGANTarget.from_pretrained") == BigGANTarget.from_pretrained
    # the classifier's training left the experts package: no Lightning in net2net.experts.classifier
    assert "ClassifierModule" not in experts.__all__ and not hasattr(importlib.import_module(
        "net2net.experts.classifier"), "ClassifierModule")  # fmt: skip
