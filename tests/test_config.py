"""Tests for net2net.config: YAML loading, overrides, imports and target/params instantiation."""

from __future__ import annotations

import collections
import doctest
import fractions
import re
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

import net2net.config as config_module
from net2net.config import get_obj_from_str, instantiate_from_config, load_config


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def make_pair(inner: dict, scale: float = 1.0, tags: list | None = None) -> dict:
    """A callee in the CompVis style: it instantiates its own nested ``*_config`` block."""
    assert type(inner) is dict, type(inner)  # plain containers, not DictConfig
    assert tags is None or type(tags) is list, type(tags)
    return {"inner": instantiate_from_config(inner, key="pair.params.inner"), "scale": scale, "tags": tags}


def kw_only(*, alpha: int, beta: int = 2) -> int:
    return alpha + beta


def raises_inside(x: int) -> None:
    raise RuntimeError(f"boom {x}")


BASE = """\
model:
  target: torch.nn.Linear
  params:
    in_features: 4
    out_features: 2
data:
  batch_size: 8
  sizes: [1, 2]
"""


# ---------------------------------------------------------------- load_config


def test_load_and_overrides(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", BASE)
    cfg = load_config(
        f,
        [
            "model.params.out_features=3",
            "model.params.bias=false",
            "data.lr=1e-3",
            "data.scale=0.5",
            "data.sizes=[3,4,5]",
            "new.deep.key=hello",
            "data.note=a=b",
        ],
    )
    assert isinstance(cfg, DictConfig)
    assert cfg.model.params.in_features == 4
    assert cfg.model.params.out_features == 3 and type(cfg.model.params.out_features) is int
    assert cfg.model.params.bias is False
    assert cfg.data.lr == pytest.approx(1e-3) and type(cfg.data.lr) is float
    assert cfg.data.scale == 0.5
    assert isinstance(cfg.data.sizes, ListConfig) and list(cfg.data.sizes) == [3, 4, 5]
    assert cfg.data.batch_size == 8
    assert cfg.new.deep.key == "hello"
    assert cfg.data.note == "a=b"  # only the first '=' splits


def test_load_accepts_str_path_and_no_overrides(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", BASE)
    assert OmegaConf.to_container(load_config(str(f))) == OmegaConf.to_container(OmegaConf.load(f))


def test_empty_file_gives_empty_config(tmp_path: Path) -> None:
    assert load_config(write(tmp_path / "e.yaml", ""), ["a=1"]) == {"a": 1}


def test_merge_files_in_order(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", BASE)
    b = write(tmp_path / "b.yaml", "model:\n  params:\n    out_features: 7\ndata:\n  sizes: [9]\nextra: 1\n")
    cfg = load_config([a, b], ["extra=2"])
    assert cfg.model.target == "torch.nn.Linear"
    assert cfg.model.params.in_features == 4
    assert cfg.model.params.out_features == 7
    assert list(cfg.data.sizes) == [9]  # lists are replaced, not concatenated
    assert cfg.extra == 2  # overrides come after all files
    reverse = load_config([b, a])
    assert reverse.model.params.out_features == 2 and list(reverse.data.sizes) == [1, 2]


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config(missing)
    good = write(tmp_path / "a.yaml", BASE)
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_config([good, missing])


def test_bad_yaml(tmp_path: Path) -> None:
    f = write(tmp_path / "bad.yaml", "model:\n  params: [1, 2\n  x: :\n")
    with pytest.raises(ValueError, match=r"invalid YAML.*bad\.yaml"):
        load_config(f)


def test_duplicate_key_is_bad_yaml(tmp_path: Path) -> None:
    f = write(tmp_path / "dup.yaml", "a: 1\na: 2\n")
    with pytest.raises(ValueError, match=r"dup\.yaml"):
        load_config(f)


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "3\n"])
def test_top_level_must_be_mapping(tmp_path: Path, text: str) -> None:
    f = write(tmp_path / "list.yaml", text)
    with pytest.raises(ValueError, match=r"list\.yaml.*mapping"):
        load_config(f)


@pytest.mark.parametrize("override", ["model.params.n_blocks", "=3", "a..b=3", "a.=1"])
def test_malformed_override(tmp_path: Path, override: str) -> None:
    f = write(tmp_path / "a.yaml", BASE)
    with pytest.raises(ValueError, match=rf"malformed override '{re.escape(override)}'.*key\.path=value"):
        load_config(f, [override])


def test_unparsable_override_value(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", BASE)
    with pytest.raises(ValueError, match=r"malformed override 'a=\[1,'"):
        load_config(f, ["a=[1,"])


# ---------------------------------------------------------------- get_obj_from_str


def test_get_obj_from_str() -> None:
    assert get_obj_from_str("torch.nn.Linear") is torch.nn.Linear
    assert get_obj_from_str("collections.OrderedDict") is collections.OrderedDict
    assert get_obj_from_str("fractions.Fraction.from_float") == fractions.Fraction.from_float
    assert get_obj_from_str("net2net.config.load_config") is load_config


def test_get_obj_unknown_module() -> None:
    with pytest.raises(ValueError, match=r"'no_such_pkg_xyz\.mod\.Thing'.*no module named 'no_such_pkg_xyz'"):
        get_obj_from_str("no_such_pkg_xyz.mod.Thing")


def test_get_obj_unknown_attribute() -> None:
    with pytest.raises(ValueError, match=r"'torch\.nn\.Lineer'.*module 'torch\.nn' has no attribute 'Lineer'"):
        get_obj_from_str("torch.nn.Lineer")
    with pytest.raises(ValueError, match=r"object 'fractions\.Fraction' has no attribute 'nope'"):
        get_obj_from_str("fractions.Fraction.nope")


@pytest.mark.parametrize("name", ["Linear", "torch..nn", ".torch.nn", ""])
def test_get_obj_malformed(name: str) -> None:
    with pytest.raises(ValueError, match="package.module.attr"):
        get_obj_from_str(name)


# ---------------------------------------------------------------- instantiate_from_config


def test_instantiate_torch_linear_from_yaml(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path / "a.yaml", BASE), ["model.params.bias=false"])
    layer = instantiate_from_config(cfg.model, key="model")
    assert isinstance(layer, torch.nn.Linear)
    assert layer.in_features == 4 and layer.out_features == 2 and layer.bias is None
    assert layer(torch.zeros(5, 4)).shape == (5, 2)


def test_instantiate_plain_dict_and_no_params() -> None:
    assert instantiate_from_config({"target": "collections.OrderedDict"}) == collections.OrderedDict()
    assert instantiate_from_config({"target": "collections.OrderedDict", "params": None}) == {}
    frac = instantiate_from_config({"target": "fractions.Fraction", "params": {"numerator": 3, "denominator": 6}})
    assert frac == fractions.Fraction(1, 2)


def test_instantiate_nested_callee_instantiates() -> None:
    yaml_text = f"""
    pair:
      target: {__name__}.make_pair
      params:
        scale: ${{factor}}
        tags: [a, b]
        inner:
          target: fractions.Fraction
          params: {{numerator: 1, denominator: 4}}
    factor: 2.5
    """
    cfg = OmegaConf.create(yaml_text)
    out = instantiate_from_config(cfg.pair, key="pair")
    assert out == {"inner": fractions.Fraction(1, 4), "scale": 2.5, "tags": ["a", "b"]}
    assert type(out["tags"]) is list


def test_missing_target() -> None:
    with pytest.raises(ValueError, match=r"^model: expected a 'target' key.*'params'"):
        instantiate_from_config({"params": {"a": 1}}, key="model")
    with pytest.raises(ValueError, match=r"^<root>: expected a 'target' key"):
        instantiate_from_config(OmegaConf.create({}))


def test_not_a_mapping() -> None:
    with pytest.raises(TypeError, match=r"^model: expected a mapping"):
        instantiate_from_config(["torch.nn.Linear"], key="model")  # type: ignore[arg-type]


def test_unknown_target_module() -> None:
    with pytest.raises(ValueError, match=r"^model: unknown target 'nosuchpkg_q\.Model'.*no module named 'nosuchpkg_q'"):
        instantiate_from_config({"target": "nosuchpkg_q.Model"}, key="model")


def test_unknown_target_attribute() -> None:
    with pytest.raises(ValueError, match=r"^model\.first: unknown target 'torch\.nn\.Nope'.*has no attribute 'Nope'"):
        instantiate_from_config({"target": "torch.nn.Nope"}, key="model.first")


def test_params_must_be_mapping() -> None:
    with pytest.raises(ValueError, match=r"^model\.params: expected a mapping"):
        instantiate_from_config({"target": "torch.nn.Linear", "params": [4, 2]}, key="model")


def test_unexpected_keyword() -> None:
    cfg = OmegaConf.create({"target": "torch.nn.Linear", "params": {"in_features": 4, "out_feature": 2}})
    with pytest.raises(TypeError) as info:
        instantiate_from_config(cfg, key="model")
    msg = str(info.value)
    assert msg.startswith("model: ")
    assert "'torch.nn.Linear'" in msg
    assert "unexpected parameter(s) 'out_feature'" in msg
    assert "missing required parameter(s) 'out_features'" in msg
    assert "accepted parameters: in_features, out_features, bias=True" in msg


def test_missing_keyword() -> None:
    pattern = r"^model: .*'torch\.nn\.Linear'.*missing required parameter\(s\) 'out_features'.*accepted"
    with pytest.raises(TypeError, match=pattern):
        instantiate_from_config({"target": "torch.nn.Linear", "params": {"in_features": 4}}, key="model")


def test_unexpected_keyword_keyword_only_function() -> None:
    pattern = r"^f: .*kw_only.*unexpected parameter\(s\) 'gamma'; accepted parameters: alpha, beta=2"
    with pytest.raises(TypeError, match=pattern):
        instantiate_from_config({"target": f"{__name__}.kw_only", "params": {"alpha": 1, "gamma": 3}}, key="f")
    assert instantiate_from_config({"target": f"{__name__}.kw_only", "params": {"alpha": 1}}) == 3


def test_unexpected_keyword_builtin_without_signature() -> None:
    # int() has no inspect.signature: the TypeError raised by the call itself is wrapped.
    with pytest.raises(TypeError, match=r"^n: .*'builtins\.int'.*bogus"):
        instantiate_from_config({"target": "builtins.int", "params": {"bogus": 1}}, key="n")


def test_other_errors_propagate_with_note() -> None:
    with pytest.raises(RuntimeError, match="boom 3") as info:
        instantiate_from_config({"target": f"{__name__}.raises_inside", "params": {"x": 3}}, key="model")
    notes = getattr(info.value, "__notes__", None)
    if notes is not None:
        assert any("model" in n and "raises_inside" in n for n in notes)


def test_unresolvable_interpolation() -> None:
    cfg = OmegaConf.create({"m": {"target": "collections.OrderedDict", "params": {"a": "${missing}"}}})
    with pytest.raises(ValueError, match=r"^m\.params: cannot resolve"):
        instantiate_from_config(cfg.m, key="m")


def test_docstring_examples() -> None:
    result = doctest.testmod(config_module, verbose=False)
    assert result.attempted >= 3 and result.failed == 0


def test_load_config_accepts_mappings_and_merges_them_with_files(tmp_path):
    from omegaconf import OmegaConf

    from net2net.config import load_config

    f = tmp_path / "a.yaml"
    f.write_text("model:\n  params:\n    n_blocks: 2\n    width: 8\n")
    given = {"model": {"params": {"n_blocks": 3}}}
    cfg = load_config([f, given, OmegaConf.create({"seed": 5})], ["model.params.width=16"])
    assert OmegaConf.to_container(cfg) == {"model": {"params": {"n_blocks": 3, "width": 16}}, "seed": 5}
    assert given == {"model": {"params": {"n_blocks": 3}}}  # the caller's mapping is not changed
    assert load_config({"x": 1}).x == 1


def test_train_from_config_mapping_needs_a_log_dir():
    import pytest

    from net2net.config import ConfigError
    from net2net.training.run import default_log_dir

    with pytest.raises(ConfigError, match="log_dir"):
        default_log_dir({"model": {}})
