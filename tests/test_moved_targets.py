"""Old dotted names (before the issue-13 moves) still resolve: configs and run folders on disk keep loading."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from net2net.config import MOVED_TARGETS, get_obj_from_str, instantiate_from_config, trusted_modules


@pytest.mark.parametrize("old", sorted(MOVED_TARGETS))
def test_every_old_name_resolves_to_its_new_name(old: str) -> None:
    new = MOVED_TARGETS[old]
    assert old != new and new not in MOVED_TARGETS  # one hop, no cycle
    assert get_obj_from_str(old) == get_obj_from_str(new)  # == : a classmethod is a new bound method each time


def test_old_names_resolve_under_the_trust_rules_of_run_folders() -> None:
    from net2net.training.translator import CINNModule

    with trusted_modules(()):  # a run folder from elsewhere: only net2net may be imported
        assert get_obj_from_str("net2net.training.cinn.CINNModule") is CINNModule


def test_a_run_config_with_the_old_names_builds_and_loads_its_checkpoint(tmp_path: Path) -> None:
    """The model block of a run written before the move (the main job's, shrunk) builds the same module, and the
    state of a checkpoint of the new module loads into it (the same parameter names: ``tau.*``)."""
    from net2net.training.translator import CINNModule

    flow = {"target": "net2net.flows.ConditionalINN",
            "params": {"dim": 4, "cond_dim": 3, "n_blocks": 1, "hidden_dim": 8, "embedding_dim": 2}}  # fmt: skip
    old = yaml.safe_load(yaml.safe_dump({"target": "net2net.training.cinn.CINNModule",
                                         "params": {"flow_config": flow, "batch_size": 8}}))  # fmt: skip
    module = instantiate_from_config(old)
    assert type(module) is CINNModule
    fresh = CINNModule(flow, batch_size=8)
    fresh.tau(torch.randn(16, 4), torch.randn(16, 3))  # ActNorm initialised
    module.load_state_dict(fresh.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), fresh.state_dict().values(), strict=True))


def test_old_autoencoder_config_name_builds() -> None:
    from net2net.training.autoencoder_module import AutoencoderModule

    assert get_obj_from_str("net2net.training.autoencoder.AutoencoderModule") is AutoencoderModule
