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


def test_metrics_package_exports_its_modules_public_names() -> None:
    from net2net import metrics
    from net2net.metrics import fid, information, quality

    modules = (fid, information, quality)
    assert sorted(metrics.__all__) == sorted(n for m in modules for n in m.__all__)
    assert len(metrics.__all__) == len(set(metrics.__all__))
    for m in modules:
        for name in m.__all__:
            assert getattr(metrics, name) is getattr(m, name), name
    # the names the rest of the package and the docs import from net2net.metrics
    for name in ("compute_fid", "domain_fid", "frechet_distance", "heldout_nll", "information_estimate", "psnr",
                 "mean_pairwise_distance", "classifier_accuracy", "InceptionFeatures", "FID_INCEPTION_PACKAGE"):
        assert name in metrics.__all__, name
