"""Validation: a mapping (file ← overrides) becomes frozen settings, or one ``ConfigError``.

Every error is one line naming the key, the bad value and what is allowed; the CLI
prints it and exits with code 2. :func:`build` is generic (any dataclass schema with
``choices`` / ``min`` / ``max`` metadata), so front-ends validate their own sections the
same way.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Collection, Mapping
from typing import Any

from engine.binance.streams import SYMBOL_RE
from engine.binance.weights import (
    DEFAULT_WEIGHT_LIMIT,
    POLL_SHARE,
    depth_weight,
    polling_weight_per_minute,
    smallest_polling_interval,
)
from engine.config.schema import FRONT_END_KEYS, OrderBook, Settings
from engine.errors import ConfigError


def _type_name(tp: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(path: str, value: Any, tp: Any, meta: typing.Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {value!r}")
        return build(tp, value, path)
    if origin is tuple:  # tuple[str, ...]: symbol lists
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        if not isinstance(value, list | tuple) or (not value and path == "symbols"):
            raise ConfigError(f"{path}: expected a non-empty list, got {value!r}")
        return tuple(_convert(path, v, typing.get_args(tp)[0], meta) for v in value)
    if origin in (typing.Union, types.UnionType):
        raise TypeError("unions are not used in settings")  # pragma: no cover
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {value!r} is not allowed; expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path}: {value!r} is not allowed; expected {_type_name(int)}"
                              + _allowed_suffix(meta))
        converted: Any = value
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: {value!r} is not allowed; expected a number"
                              + _allowed_suffix(meta))
        converted = float(value)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path}: {value!r} is not allowed; expected a string"
                              + _allowed_suffix(meta))
        converted = value
    else:  # pragma: no cover - schema bug
        raise TypeError(f"unsupported setting type {tp}")
    if "choices" in meta and converted not in meta["choices"]:
        raise ConfigError(f"{path}: {value!r} is not allowed; allowed: "
                          + ", ".join(str(c) for c in meta["choices"]))
    if "min" in meta and converted < meta["min"]:
        raise ConfigError(f"{path}: {value!r} is too small; minimum is {meta['min']}")
    if "max" in meta and converted > meta["max"]:
        raise ConfigError(f"{path}: {value!r} is too large; maximum is {meta['max']}")
    return converted


def _allowed_suffix(meta: typing.Mapping[str, Any]) -> str:
    if "choices" in meta:
        return "; allowed: " + ", ".join(str(c) for c in meta["choices"])
    return ""


def build(cls: type, data: Mapping[str, Any], prefix: str = "",
          also_allowed: Collection[str] = ()) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values.

    ``also_allowed``: keys another layer validates (skipped here, named in the error).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key in also_allowed:
            continue
        if key not in fields:
            allowed = ", ".join([*fields, *also_allowed])
            raise ConfigError(f"{path}: unknown key; allowed keys: {allowed}")
        kwargs[key] = _convert(path, value, hints[key], fields[key].metadata)
    return cls(**kwargs)


def _validate_symbols(symbols: tuple[str, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for raw in symbols:
        sym = raw.strip().upper()
        if not SYMBOL_RE.match(sym):
            raise ConfigError(f"symbols: {raw!r} is not a valid symbol; expected 2-20 letters "
                              "or digits such as BTCUSDT")
        if sym not in out:
            out.append(sym)
    return tuple(out)


def _validate_url(path: str, url: str, schemes: tuple[str, ...]) -> None:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in schemes or not rest:
        raise ConfigError(f"{path}: {url!r} is not allowed; expected a URL starting with "
                          + " or ".join(f"{s}://" for s in schemes))


def settings_from(data: Mapping[str, Any], front_end: Collection[str] = FRONT_END_KEYS
                  ) -> Settings:
    """Validate a full settings mapping (file contents merged with overrides); the
    ``front_end`` top-level keys belong to a front-end and are skipped."""
    conn_data = data.get("connection")
    at = conn_data.get("rollover_at") if isinstance(conn_data, dict) else None
    if isinstance(conn_data, dict) and isinstance(at, int) and not isinstance(at, bool) \
            and at >= 0:
        # YAML 1.1 reads an unquoted 12:30 as the sexagesimal int 750: give it back
        data = {**data, "connection": {**conn_data, "rollover_at": f"{at // 60:02d}:{at % 60:02d}"}}
    settings: Settings = build(Settings, data, also_allowed=front_end)
    symbols = _validate_symbols(settings.symbols)
    conn = settings.connection
    _validate_url("connection.ws_url", conn.ws_url, ("ws", "wss"))
    _validate_url("connection.rest_url", conn.rest_url, ("http", "https"))
    if conn.backoff_max_s < conn.backoff_initial_s:
        raise ConfigError(f"connection.backoff_max_s: {conn.backoff_max_s} is smaller than "
                          f"connection.backoff_initial_s ({conn.backoff_initial_s})")
    _check_polling_budget(settings.order_book, len(symbols))
    if conn.rollover_after_s <= 0:
        raise ConfigError(f"connection.rollover_after_s: {conn.rollover_after_s:g} is not "
                          "allowed; expected seconds > 0 (default 84600 = 23.5 h)")
    if conn.rollover_at and parse_hhmm(conn.rollover_at) is None:
        raise ConfigError(f"connection.rollover_at: {conn.rollover_at!r} is not allowed; "
                          "expected HH:MM (UTC, 00:00 to 23:59) or \"\" (off)")
    if conn.stale_after_s <= conn.idle_ping_after_s:
        raise ConfigError(f"connection.stale_after_s: {conn.stale_after_s} must be larger than "
                          f"connection.idle_ping_after_s ({conn.idle_ping_after_s})")
    return dataclasses.replace(settings, symbols=symbols)


def parse_hhmm(text: str) -> tuple[int, int] | None:
    """``"HH:MM"`` (24 h clock) as (hour, minute); None when malformed."""
    hh, sep, mm = text.strip().partition(":")
    if not sep or len(mm) != 2 or not (hh.isdigit() and mm.isdigit()) or len(hh) > 2:
        return None
    h, m = int(hh), int(mm)
    return (h, m) if h < 24 and m < 60 else None


def _check_polling_budget(ob: OrderBook, symbols: int) -> None:
    """Reject snapshot polling that could never fit Binance's REST weight budget."""
    if not ob.enabled:
        return
    need = polling_weight_per_minute(symbols, ob.limit, ob.interval_s)
    allowed = DEFAULT_WEIGHT_LIMIT * POLL_SHARE
    if need > allowed:
        shortest = smallest_polling_interval(symbols, ob.limit)
        raise ConfigError(
            f"order_book.interval_s: polling {symbols} symbol(s) at limit {ob.limit} "
            f"(weight {depth_weight(ob.limit)}) every {ob.interval_s:g}s needs {need:,.0f} "
            f"weight/min, over the {allowed:,.0f} polling may use of Binance's "
            f"{DEFAULT_WEIGHT_LIMIT:,}/min; use order_book.interval_s >= {shortest:.3g} "
            "or a smaller order_book.limit")


