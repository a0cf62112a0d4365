"""A normal (non-editable) install: every package is in it, and so is the default
settings file, found from any directory."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

from setuptools import find_namespace_packages

from tests.helpers import ROOT


def test_the_listed_packages_are_exactly_the_source_packages() -> None:
    """pyproject lists its packages (the config folder is mapped in by name), so a new
    sub-package must be added there: an editable install would not notice it missing."""
    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]
    found = find_namespace_packages(ROOT, include=["engine", "engine.*", "tui", "tui.*"])
    assert sorted(listed) == sorted([*found, "binance_live_config"])


def test_an_installed_wheel_finds_its_default_settings_from_anywhere(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(wheels), str(ROOT)],
                   check=True, timeout=300, capture_output=True)
    [wheel] = wheels.glob("binance_live-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "binance_live_config/settings.yaml" in names
    assert "engine/exchange/server.py" in names and "tui/panels/ladder.py" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--target", str(target), str(wheel)], check=True, timeout=300,
                   capture_output=True)
    probe = ("from engine.config.files import packaged_default; import engine.config as c; "
             "print(packaged_default()); print(c.load_settings().symbols)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60, check=True,
                         env={"PYTHONPATH": str(target), "HOME": str(tmp_path),
                              "XDG_CONFIG_HOME": str(tmp_path / "xdg")}).stdout.split("\n")
    assert Path(out[0]) == target / "binance_live_config" / "settings.yaml"
    assert out[1] == "('BTCUSDT',)"
