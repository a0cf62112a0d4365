"""Where settings come from: a YAML file (``--config``, else the user's, else the packaged
default) with overrides on top.

The packaged default is ``config/settings.yaml`` of the repository, installed with the
package (see pyproject.toml), so a normal ``pip install .`` finds it from any directory.
A user's own file lives at ``$XDG_CONFIG_HOME/binance-live/settings.yaml``
(``~/.config/...`` when the variable is unset); ``--config PATH`` wins over both.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError

APP_DIR = "binance-live"
FILE_NAME = "settings.yaml"
DEFAULTS_PACKAGE = "binance_live_config"  # the repository's config/ (pyproject package-dir)


def user_config_path() -> Path:
    """``$XDG_CONFIG_HOME/binance-live/settings.yaml`` (``~/.config/...`` when the
    variable is unset or not absolute, as the XDG spec says)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / APP_DIR / FILE_NAME


def packaged_default() -> Traversable:
    """``config/settings.yaml``: in the checkout (editable install) or site-packages."""
    return resources.files(DEFAULTS_PACKAGE).joinpath(FILE_NAME)


def config_path(explicit: Path | None = None) -> Path | Traversable:
    """The file to read: ``explicit``, else the user's file if present, else the default."""
    if explicit is not None:
        return explicit
    user = user_config_path()
    return user if user.is_file() else packaged_default()


def read_yaml(path: Path | Traversable) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"config: file {str(path)!r} not found") from None
    except OSError as exc:
        raise ConfigError(f"config: cannot read {str(path)!r}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config: {str(path)!r} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config: {str(path)!r} must contain a mapping at the top level")
    return data


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested mapping, creating levels as needed."""
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[keys[-1]] = value


def load_document(path: Path | None = None,
                  overrides: Iterable[tuple[str, Any]] = ()) -> dict[str, Any]:
    """The settings file (see :func:`config_path`) as a mapping, overrides applied."""
    data = read_yaml(config_path(path))
    for key, value in overrides:
        set_path(data, key, value)
    return data
