"""Settings: YAML file + CLI overrides, validated strictly into frozen dataclasses.

Every error is a ``ConfigError`` whose message is one line naming the key, the bad
value and what is allowed; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.binance.streams import (
    DEPTH_SPEEDS_MS,
    KLINE_INTERVALS,
    PARTIAL_DEPTH_LEVELS,
    SNAPSHOT_LIMITS,
    STREAM_KINDS,
    SYMBOL_RE,
    stream_name,
)
from engine.binance.weights import (
    DEFAULT_WEIGHT_LIMIT,
    POLL_SHARE,
    depth_weight,
    polling_weight_per_minute,
    smallest_polling_interval,
)

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parents[2] / "config" / "settings.yaml"
LIVE_WS_URL = "wss://stream.binance.com:9443"
LIVE_REST_URL = "https://api.binance.com"


class ConfigError(ValueError):
    """A bad setting; ``str()`` is the one-line message shown to the user."""


def _choices(*values: object) -> dict[str, Any]:
    return {"choices": tuple(values)}


@dataclass(frozen=True)
class StreamToggle:
    enabled: bool = True


@dataclass(frozen=True)
class KlineStream:
    enabled: bool = True
    interval: str = field(default="1m", metadata=_choices(*KLINE_INTERVALS))


@dataclass(frozen=True)
class PartialDepthStream:
    enabled: bool = True
    levels: int = field(default=20, metadata=_choices(*PARTIAL_DEPTH_LEVELS))
    speed_ms: int = field(default=100, metadata=_choices(*DEPTH_SPEEDS_MS))


@dataclass(frozen=True)
class DiffDepthStream:
    enabled: bool = False
    speed_ms: int = field(default=100, metadata=_choices(*DEPTH_SPEEDS_MS))


@dataclass(frozen=True)
class Streams:
    trade: StreamToggle = StreamToggle()
    aggTrade: StreamToggle = StreamToggle()  # noqa: N815 - Binance's stream name
    kline: KlineStream = KlineStream()
    bookTicker: StreamToggle = StreamToggle()  # noqa: N815
    depthPartial: PartialDepthStream = PartialDepthStream()  # noqa: N815
    depthUpdate: DiffDepthStream = DiffDepthStream()  # noqa: N815
    miniTicker: StreamToggle = StreamToggle(enabled=False)  # noqa: N815


@dataclass(frozen=True)
class Storage:
    enabled: bool = True
    directory: str = "data"
    flush_interval_s: float = field(default=2.0, metadata={"min": 0.05, "max": 300.0})
    flush_rows: int = field(default=50_000, metadata={"min": 1})
    rotate_minutes: float = field(default=60.0, metadata={"min": 0.01, "max": 1440.0})
    rotate_mb: float = field(default=256.0, metadata={"min": 0.001})
    raw: bool = False
    # fill trade/aggTrade id gaps and missed klines from REST (engine.backfill)
    backfill: bool = True


@dataclass(frozen=True)
class OrderBook:
    """REST snapshot polling (the seed's ``--order-book-snapshot``)."""

    enabled: bool = False
    limit: int = field(default=1000, metadata=_choices(*SNAPSHOT_LIMITS))
    interval_s: float = field(default=5.0, metadata={"min": 0.1})
    # depth of the snapshot a diff-depth book is (re)built from; Binance accepts 1..5000
    sync_limit: int = field(default=5000, metadata={"min": 5, "max": 5000})


@dataclass(frozen=True)
class Connection:
    ws_url: str = LIVE_WS_URL
    rest_url: str = LIVE_REST_URL
    backoff_initial_s: float = field(default=0.5, metadata={"min": 0.01})
    backoff_max_s: float = field(default=30.0, metadata={"min": 0.01})
    backoff_reset_after_s: float = field(default=60.0, metadata={"min": 0.0})
    idle_ping_after_s: float = field(default=5.0, metadata={"min": 0.25})
    stale_after_s: float = field(default=15.0, metadata={"min": 0.1})
    connect_timeout_s: float = field(default=10.0, metadata={"min": 0.1})
    max_streams_per_connection: int = field(default=1024, metadata={"min": 1, "max": 1024})
    max_messages_per_s: int = field(default=4, metadata={"min": 1, "max": 5})
    clock_sync_interval_s: float = field(default=300.0, metadata={"min": 1.0, "max": 86400.0})
    # make-before-break replacement of each connection before Binance's 24 h close
    rollover_after_s: float = field(default=84600.0, metadata={"max": 86400.0})
    rollover_at: str = ""  # "HH:MM" UTC: also roll every connection over daily then; "" = off
    redundancy: int = field(default=1, metadata=_choices(1, 2))  # connections per shard


@dataclass(frozen=True)
class Ui:
    refresh_hz: float = field(default=15.0, metadata={"min": 1.0, "max": 60.0})
    theme: str = field(default="dark", metadata=_choices("dark", "light", "colorblind"))
    status_interval_s: float = field(default=5.0, metadata={"min": 0.1})
    # a trade is "large" (highlighted on the tape) at this notional (0 = off) ...
    large_trade_notional: float = field(default=0.0, metadata={"min": 0.0})
    # ... or at this multiple of the rolling median notional (0 = off)
    large_trade_multiple: float = field(default=10.0, metadata={"min": 0.0, "max": 10_000.0})
    ladder_levels: int = field(default=30, metadata={"min": 5, "max": 500})
    keymap: tuple[str, ...] = ()  # "binding_id=key" items, e.g. "record=R" (see README)


@dataclass(frozen=True)
class Settings:
    symbols: tuple[str, ...] = ("BTCUSDT",)
    streams: Streams = Streams()
    storage: Storage = Storage()
    order_book: OrderBook = OrderBook()
    connection: Connection = Connection()
    ui: Ui = Ui()
    verbose: bool = False

    def stream_names(self) -> list[str]:
        """Wire names of every enabled stream for every symbol."""
        return [name for kind in STREAM_KINDS if self.stream_enabled(kind)
                for name in self.names_for(kind)]

    def stream_enabled(self, kind: str) -> bool:
        return bool(getattr(self.streams, kind).enabled)

    def names_for(self, kind: str, symbols: typing.Iterable[str] | None = None, *,
                  interval: str | None = None) -> list[str]:
        """Wire names of one stream kind for the given (default: configured) symbols.

        ``interval`` overrides the configured kline interval (the engine switches it at
        runtime; settings are frozen).
        """
        spec = getattr(self.streams, kind)
        kwargs: dict[str, Any] = {}
        if kind == "kline":
            kwargs["interval"] = interval or spec.interval
        elif kind == "depthPartial":
            kwargs.update(levels=spec.levels, speed_ms=spec.speed_ms)
        elif kind == "depthUpdate":
            kwargs["speed_ms"] = spec.speed_ms
        return [stream_name(kind, sym, **kwargs) for sym in (symbols or self.symbols)]


# --- validation ----------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(path: str, value: Any, tp: Any, meta: typing.Mapping[str, Any]) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
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


def build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and bad values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"{path}: unknown key; allowed keys: {', '.join(fields)}")
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


def from_mapping(data: dict[str, Any]) -> Settings:
    """Validate a full settings mapping (file contents merged with overrides)."""
    conn_data = data.get("connection")
    at = conn_data.get("rollover_at") if isinstance(conn_data, dict) else None
    if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
        # YAML 1.1 reads an unquoted 12:30 as the sexagesimal int 750: give it back
        data = {**data, "connection": {**conn_data, "rollover_at": f"{at // 60:02d}:{at % 60:02d}"}}
    settings: Settings = build(Settings, data)
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


def read_yaml(path: Path) -> dict[str, Any]:
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


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with a YAML-typed value (``true``, ``5``, ``[a, b]``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set: {text!r} is not allowed; expected KEY=VALUE, "
                          "e.g. streams.kline.interval=5m")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def load_settings(path: Path | None = None, overrides: typing.Iterable[tuple[str, Any]] = ()
                  ) -> Settings:
    """Defaults ← YAML file ← overrides, then validation."""
    if path is None:
        data = read_yaml(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.exists() else {}
    else:
        data = read_yaml(path)
    for key, value in overrides:
        set_path(data, key, value)
    return from_mapping(data)
