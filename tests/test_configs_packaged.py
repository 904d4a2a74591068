"""The configs are package data: shipped in the wheel, found by ``shipped_config``, linked from the repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from net2net.config import shipped_config

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "net2net"


def test_repository_configs_link_to_the_package() -> None:
    link = ROOT / "configs"
    assert link.is_symlink() and os.readlink(link) == "src/net2net/configs"  # relative: works in any checkout
    assert (link / "translation" / "text2image.yaml").resolve() == shipped_config("translation/text2image.yaml")


def test_package_data_covers_every_config() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["net2net"]
    covered = {p for pattern in patterns for p in PACKAGE.glob(pattern) if p.is_file()}
    configs = {p for p in (PACKAGE / "configs").rglob("*") if p.is_file()}
    assert len(configs) >= 9 and configs <= covered
    assert shipped_config("demo/digits.yaml").is_file()
    with pytest.raises(FileNotFoundError, match="translation/text2image.yaml"):
        shipped_config("translation/nonexistent.yaml")
    with pytest.raises(FileNotFoundError):
        shipped_config("../pretrained/__init__.py")


def test_built_wheel_contains_the_configs(tmp_path: Path) -> None:
    tree = tmp_path / "tree"  # a clean copy: no build/ folder left from an earlier build can hide a missing file
    tree.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(PACKAGE, tree / "src" / "net2net", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(tree), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "wheel")], check=True, capture_output=True)  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("net2net-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"net2net/{p.relative_to(PACKAGE).as_posix()}" for p in (PACKAGE / "configs").rglob("*.yaml")}
    assert "net2net/configs/translation/text2image.yaml" in expected and expected <= names
    assert "net2net/data/captions.json" in names  # the main job's phrasings are package data too
