"""The top-level package: lazy public API."""

from __future__ import annotations

import subprocess
import sys

import pytest

import net2net


@pytest.mark.parametrize("name", sorted(set(net2net.__all__) - {"__version__"}))
def test_every_public_name_resolves(name: str) -> None:
    obj = getattr(net2net, name)
    assert getattr(obj, "__name__", name) == name


def test_all_lists_exactly_the_lazy_exports() -> None:
    assert sorted(net2net.__all__) == sorted(["__version__", *net2net._EXPORTS])
    assert len(net2net.__all__) == len(set(net2net.__all__))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nett2Net'"):
        net2net.Nett2Net  # noqa: B018


def test_import_is_lazy() -> None:
    code = "import sys, net2net; print(sorted(m for m in ('torch', 'lightning', 'omegaconf') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
