"""Real Binance frames and the official doc examples, through every decode path.

Each check runs on each entry of ``PATHS``: ``decode`` (``FrameDecoder.decode``, one call per
frame) and ``receive``, the path the engine runs: the frames as server WebSocket bytes,
split into reads at arbitrary points, through ``FrameReader`` and ``Receiver.receive``
(``decode_batch`` → ``IdGate`` → ``Bus``), collected by a consumer on the bus.

Sources (see ``shared/realdata/INDEX.md``; nobody on the team wrote them):

- ``hftbacktest/``: four long 2024 combined-stream recordings, ``<recv_ns> <json>`` per line,
  with the REST depth snapshot inline as a bare ``{"lastUpdateId":...}`` line;
- ``cryptofeed/``: 2021 captures, lines ``<ws_url> <-> <ts>``, ``<recv_s>: <frame>`` and
  ``<url> -> <recv_s>: <body>`` (REST);
- ``tardis-node``, ``crypto-msg-parser``, ``nautilus_trader``: single frames and REST bodies;
- ``shared/fixtures/binance-doc-examples.json``: the documented examples as strict JSON.

Every market event is compared field by field with ``json.loads`` of the same frame, using a
wire-key table written here independently of the models' ``msgspec.field(name=...)`` (so a wrong
wire name in a model is caught): strings become ``float()``, ids and times must come out as
exact ``int`` (ids around 5e10 must never pass through a float), booleans as ``bool``.
Expected values come from the JSON, never from a decoder; the few decoder-to-decoder comparisons
only show that a variation of one frame (extra keys, spacing, key order) changes nothing.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from engine.binance.control import ControlReply
from engine.binance.rest_rows import decode_depth
from engine.bus import Bus
from engine.events import (
    MARKET_EVENT_TYPES,
    AggTrade,
    AvgPrice,
    BlockTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    KlineBar,
    LedgerEntry,
    MiniTicker,
    OrderBookSnapshot,
    PartialDepth,
    ReferencePrice,
    ServerShutdown,
    Ticker,
    Trade,
)
from engine.feed.decode import DecodeStats, FrameDecoder
from engine.feed.frames import OP_BINARY, OP_CONT, OP_PING, OP_TEXT, FrameReader
from engine.feed.gate import IdGate
from engine.feed.receiver import Receiver
from tests.helpers import SHARED

REALDATA = SHARED / "realdata"
FIXTURES = SHARED / "fixtures" / "binance-doc-examples.json"

if not REALDATA.is_dir() or not FIXTURES.is_file():
    pytest.skip(f"shared real data not found under {SHARED}", allow_module_level=True)


# --- the wire-key table: model field -> (JSON key, kind[, value when the key is absent]) ---------

SPEC: dict[type, dict[str, tuple]] = {
    Trade: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "trade_id": ("t", "int"),
        "price": ("p", "float"), "qty": ("q", "float"), "trade_time": ("T", "int"),
        "buyer_is_maker": ("m", "bool"), "best_match": ("M", "bool", True),
        "buyer_order_id": ("b", "int", None), "seller_order_id": ("a", "int", None),
    },
    AggTrade: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "agg_id": ("a", "int"),
        "price": ("p", "float"), "qty": ("q", "float"), "first_trade_id": ("f", "int"),
        "last_trade_id": ("l", "int"), "trade_time": ("T", "int"),
        "buyer_is_maker": ("m", "bool"), "best_match": ("M", "bool", True),
    },
    BlockTrade: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "trade_id": ("t", "int"),
        "price": ("p", "float"), "qty": ("q", "float"), "trade_time": ("T", "int"),
        "buyer_is_maker": ("m", "bool"),
    },
    KlineBar: {
        "open_time": ("t", "int"), "close_time": ("T", "int"), "symbol": ("s", "str"),
        "interval": ("i", "str"), "first_trade_id": ("f", "int"), "last_trade_id": ("L", "int"),
        "open": ("o", "float"), "close": ("c", "float"), "high": ("h", "float"),
        "low": ("l", "float"), "volume": ("v", "float"), "trades": ("n", "int"),
        "closed": ("x", "bool"), "quote_volume": ("q", "float"),
        "taker_buy_volume": ("V", "float"), "taker_buy_quote_volume": ("Q", "float"),
    },
    Kline: {"event_time": ("E", "int"), "symbol": ("s", "str"), "bar": ("k", "bar")},
    BookTicker: {
        "update_id": ("u", "int"), "symbol": ("s", "str"), "bid_price": ("b", "float"),
        "bid_qty": ("B", "float"), "ask_price": ("a", "float"), "ask_qty": ("A", "float"),
        "event_time": ("E", "int", 0), "transaction_time": ("T", "int", 0),
    },
    PartialDepth: {
        "last_update_id": ("lastUpdateId", "int"), "bids": ("bids", "levels"),
        "asks": ("asks", "levels"),
    },
    DepthUpdate: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "first_update_id": ("U", "int"),
        "final_update_id": ("u", "int"), "bids": ("b", "levels"), "asks": ("a", "levels"),
        "prev_final_update_id": ("pu", "int", None), "transaction_time": ("T", "int", 0),
    },
    MiniTicker: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "close": ("c", "float"),
        "open": ("o", "float"), "high": ("h", "float"), "low": ("l", "float"),
        "volume": ("v", "float"), "quote_volume": ("q", "float"),
    },
    Ticker: {
        "event_type": ("e", "str"), "event_time": ("E", "int"), "symbol": ("s", "str"),
        "price_change": ("p", "float"), "price_change_pct": ("P", "float"),
        "weighted_avg": ("w", "float"), "open": ("o", "float"), "high": ("h", "float"),
        "low": ("l", "float"), "close": ("c", "float"), "volume": ("v", "float"),
        "quote_volume": ("q", "float"), "open_time": ("O", "int"), "close_time": ("C", "int"),
        "first_trade_id": ("F", "int"), "last_trade_id": ("L", "int"), "trades": ("n", "int"),
        "prev_close": ("x", "float", None), "last_qty": ("Q", "float", None),
        "bid_price": ("b", "float", None), "bid_qty": ("B", "float", None),
        "ask_price": ("a", "float", None), "ask_qty": ("A", "float", None),
    },
    AvgPrice: {
        "event_time": ("E", "int"), "symbol": ("s", "str"), "interval": ("i", "str"),
        "price": ("w", "float"), "trade_time": ("T", "int"),
    },
    ReferencePrice: {
        "symbol": ("s", "str"), "price": ("r", "float|null"), "engine_time": ("t", "int"),
    },
    ServerShutdown: {"event_time": ("E", "int")},
    OrderBookSnapshot: {
        "last_update_id": ("lastUpdateId", "int"), "bids": ("bids", "levels"),
        "asks": ("asks", "levels"),
    },
}

# Fields that are never on the wire; filled in by the decoder or by decode_depth.
LOCAL_FIELDS: dict[type, set[str]] = {
    PartialDepth: {"symbol"},
    OrderBookSnapshot: {"symbol", "limit"},
    Trade: {"backfilled"},  # set by engine.gapfill on rows fetched from REST
    AggTrade: {"backfilled"},
    Kline: {"backfilled"},
}
EVENT_LOCAL = {"recv_ns", "conn"}


def _same(kind: str, got: object, raw: object) -> bool:
    if kind == "int":
        return type(got) is int and type(raw) is int and got == raw
    if kind == "float":
        return type(got) is float and got == float(raw)  # type: ignore[arg-type]
    if kind == "float|null":
        return got is None if raw is None else type(got) is float and got == float(raw)
    if kind == "str":
        return type(got) is str and got == raw
    if kind == "bool":
        return type(got) is bool and got is raw
    if kind == "levels":
        want = [(float(p), float(q)) for p, q in raw]  # type: ignore[union-attr]
        # == on lists of tuples also rejects lists-of-lists; check the element type once.
        return got == want and (not got or type(got[0][0]) is float)
    raise AssertionError(kind)


def field_diffs(ev: object, data: dict, where: str = "") -> list[str]:
    """Every difference between a decoded struct and the JSON object it came from."""
    spec = SPEC.get(type(ev))
    if spec is None:
        return [f"{where}unexpected type {type(ev).__name__}"]
    out: list[str] = []
    for name, (key, kind, *absent) in spec.items():
        got = getattr(ev, name)
        if key not in data:
            if not absent:
                out.append(f"{where}{name}: required key {key!r} missing in JSON")
            elif got != absent[0] or type(got) is not type(absent[0]):
                out.append(f"{where}{name}: {got!r}, want default {absent[0]!r}")
            continue
        raw = data[key]
        if kind == "bar":
            out += field_diffs(got, raw, f"{where}{name}.")
        elif absent and absent[0] is None and raw is None:
            if got is not None:
                out.append(f"{where}{name}: {got!r}, want None")
        elif not _same(kind, got, raw):
            out.append(f"{where}{name}: got {got!r}, JSON {key!r}={raw!r}")
    return out


def assert_fields(ev: object, data: dict) -> None:
    assert field_diffs(ev, data) == []


# --- what a stream name implies (written here, independent of engine.streams) -------------

_STREAM_RULES: list[tuple[re.Pattern[str], type, bool]] = [
    (re.compile(r"[a-z0-9]+@trade"), Trade, False),
    (re.compile(r"[a-z0-9]+@aggTrade"), AggTrade, False),
    (re.compile(r"[a-z0-9]+@blockTrade"), BlockTrade, False),
    (re.compile(r"[a-z0-9]+@kline_(1s|[13518]m|30m|15m|[1-8]h|12h|[13]d|1w|1M)(@\+08:00)?"),
     Kline, False),
    (re.compile(r"([a-z0-9]+@|!)bookTicker"), BookTicker, False),
    (re.compile(r"[a-z0-9]+@depth(@100ms|@1000ms)?"), DepthUpdate, False),
    (re.compile(r"[a-z0-9]+@depth(5|10|20)(@100ms|@1000ms)?"), PartialDepth, False),
    (re.compile(r"[a-z0-9]+@miniTicker"), MiniTicker, False),
    (re.compile(r"!miniTicker@arr"), MiniTicker, True),
    (re.compile(r"[a-z0-9]+@ticker(_1h|_4h|_1d)?"), Ticker, False),
    (re.compile(r"!ticker(_1h|_4h|_1d)?@arr"), Ticker, True),
    (re.compile(r"[a-z0-9]+@avgPrice"), AvgPrice, False),
    (re.compile(r"[a-z0-9]+@referencePrice"), ReferencePrice, False),
    (re.compile(r"!serverShutdown"), ServerShutdown, False),
]


@cache
def implied(stream: str) -> tuple[type, bool]:
    for rx, typ, is_array in _STREAM_RULES:
        if rx.fullmatch(stream):
            return typ, is_array
    raise AssertionError(f"test table does not know stream {stream!r}")


# --- the decode paths: every check below runs on each --------------------------------------


class Run(NamedTuple):
    events: list[Any]  # every event delivered, in order (array streams flattened)
    stamps: list[int]  # per input frame: the recv_ns it was handed to the decoder with
    replies: list[ControlReply]  # control replies, set aside for the connection


class FramePath(Protocol):
    name: str
    stats: DecodeStats  # the decoder's own counters

    def run(self, frames: Sequence[tuple[int, bytes]], conn: int) -> Run:
        """Deliver ``(recv_ns, frame)`` pairs in order."""
        ...

    def decode(self, frame: bytes, recv_ns: int = 0, conn: int = 0) -> object:
        """One frame, shaped like ``FrameDecoder.decode``: an event, a list (array stream),
        a ControlReply, or None."""
        ...


class DecodePath:
    """``FrameDecoder.decode``, one call per frame."""

    name = "decode"

    def __init__(self, decoder: FrameDecoder) -> None:
        self.decoder = decoder
        self.stats = decoder.stats

    def run(self, frames: Sequence[tuple[int, bytes]], conn: int) -> Run:
        events: list[Any] = []
        replies: list[ControlReply] = []
        for ns, frame in frames:
            ev = self.decoder.decode(frame, ns, conn)
            if type(ev) is list:
                events += ev
            elif type(ev) is ControlReply:
                replies.append(ev)
            elif ev is not None:
                events.append(ev)
        return Run(events, [ns for ns, _ in frames], replies)

    def decode(self, frame: bytes, recv_ns: int = 0, conn: int = 0) -> object:
        return self.decoder.decode(frame, recv_ns, conn)


def ws_frame(payload: bytes, opcode: int = OP_TEXT, fin: bool = True) -> bytes:
    """A server-to-client WebSocket frame (unmasked, RFC 6455 5.2), built here."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((b0, n)) + payload
    if n < 1 << 16:
        return bytes((b0, 126)) + n.to_bytes(2, "big") + payload
    return bytes((b0, 127)) + n.to_bytes(8, "big") + payload


def wire(messages: Sequence[bytes]) -> bytes:
    """The bytes a server sends for ``messages``: every 50th split into three fragments
    with a ping between them, every 7th sent as a binary message."""
    parts: list[bytes] = []
    for i, m in enumerate(messages):
        opcode = OP_BINARY if i % 7 == 6 else OP_TEXT
        if i % 50 == 49 and len(m) >= 3:
            a, b = len(m) // 3, 2 * len(m) // 3
            parts += [ws_frame(m[:a], opcode, False), ws_frame(b"hb", OP_PING),
                      ws_frame(m[a:b], OP_CONT, False), ws_frame(m[b:], OP_CONT)]
        else:
            parts.append(ws_frame(m, opcode))
    return b"".join(parts)


READ_SIZES = (5, 1500, 16384, 64, 65536, 3, 4096)  # socket reads end anywhere in a frame


class ReceivePath:
    """The engine's receive path: wire bytes → ``FrameReader`` → ``Receiver.receive``
    (``decode_batch`` → ``IdGate`` → ``Bus``) → a consumer on the bus.

    A read's frames share one ``recv_ns``: that of the last frame the read completes. The
    recordings are gap- and duplicate-free (INDEX.md), so the gate must pass every event
    and report nothing; one ``run`` is one gate, i.e. one connection's life.
    """

    name = "receive"

    def __init__(self, decoder: FrameDecoder) -> None:
        self.decoder = decoder
        self.stats = decoder.stats
        self.bus = Bus()
        self.delivered: list[Any] = []
        self.ledger: list[LedgerEntry] = []
        self.bus.subscribe(self.delivered.append, name="collector", mode="inline")
        self.bus.subscribe(self.ledger.append, kinds=[LedgerEntry], name="ledger",
                           mode="inline")

    def run(self, frames: Sequence[tuple[int, bytes]], conn: int) -> Run:
        rx = Receiver(self.decoder, IdGate(), self.bus)
        reader = FrameReader()
        data = wire([frame for _, frame in frames])
        start, ledger_start = len(self.delivered), len(self.ledger)
        stamps: list[int] = []
        special: list[Any] = []
        reported = 0
        pos = 0
        for size in itertools.cycle(READ_SIZES):
            if pos >= len(data):
                break
            messages = reader.receive(data[pos:pos + size])
            pos += size
            reader.control.clear()
            if messages:
                ns = frames[len(stamps) + len(messages) - 1][0]
                stamps += [ns] * len(messages)
                reported += rx.receive(messages, ns, conn, special)
        assert reader.error is None and len(stamps) == len(frames), reader.error
        assert (rx.errors, rx.error_kinds) == (0, {})
        events = self.delivered[start:]
        assert self.ledger[ledger_start:] == [] and rx.gate.duplicates == 0, "gate interfered"
        shutdowns = [e for e in events if type(e) is ServerShutdown]
        assert [e for e in special if type(e) is ServerShutdown] == shutdowns
        assert reported == len(events) - len(shutdowns), "receive() miscounted its events"
        return Run(events, stamps, [e for e in special if type(e) is ControlReply])

    def decode(self, frame: bytes, recv_ns: int = 0, conn: int = 0) -> object:
        run = self.run([(recv_ns, frame)], conn)
        items = [*run.events, *run.replies]
        if not items:
            return None
        return items if len(items) > 1 or _is_array_frame(frame) else items[0]


def _is_array_frame(frame: bytes) -> bool:
    try:
        obj = json.loads(frame)
    except ValueError:
        return False
    return isinstance(obj, dict) and isinstance(obj.get("data"), list)


# Every path the checks run on, each built fresh per test. A native (compiled) decoder
# with FrameDecoder's interface (decode, decode_batch, stats) is a third entry, e.g.
#     "receive-native": lambda: ReceivePath(NativeFrameDecoder()),
PATHS: dict[str, Callable[[], FramePath]] = {
    "decode": lambda: DecodePath(FrameDecoder()),
    "receive": lambda: ReceivePath(FrameDecoder()),
}


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> FramePath:
    return PATHS[request.param]()


# --- reading the recordings ------------------------------------------------------------------


@dataclass(slots=True)
class Rec:
    lineno: int
    kind: str  # ws | rest | exchangeInfo | connect | config | other
    recv_ns: int = 0
    body: bytes = b""
    symbol: str = ""
    limit: int = 0


def hft_records(path: Path):
    symbol = path.name.split("_")[0].upper()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            ns, _, body = line.rstrip(b"\r\n").partition(b" ")
            if body.startswith(b'{"stream":'):
                yield Rec(lineno, "ws", int(ns), body)
            elif body.startswith(b'{"lastUpdateId":'):
                # hftbacktest's collector polls /api/v3/depth?symbol=..&limit=1000
                yield Rec(lineno, "rest", int(ns), body, symbol, 1000)
            else:
                yield Rec(lineno, "other", 0, line)


_CF_REST = re.compile(rb"(https?://\S+) -> (\d+(?:\.\d+)?): (.*)", re.S)
_CF_CONNECT = re.compile(rb"wss?://\S+ <-> \d+(?:\.\d+)?")
_CF_FRAME = re.compile(rb"(\d+(?:\.\d+)?): (.*)", re.S)


def _ns(ts: bytes) -> int:
    return int(Decimal(ts.decode()) * 1_000_000_000)


def cryptofeed_records(path: Path):
    for lineno, line in enumerate(path.read_bytes().split(b"\n"), 1):
        if not line:
            continue
        if m := _CF_REST.fullmatch(line):
            url = urlsplit(m.group(1).decode())
            if url.path.endswith("/depth"):
                q = parse_qs(url.query)
                yield Rec(lineno, "rest", _ns(m.group(2)), m.group(3), q["symbol"][0],
                          int(q["limit"][0]))
            elif url.path.endswith("/exchangeInfo"):
                yield Rec(lineno, "exchangeInfo")  # not a stream frame: not decoded
            else:
                yield Rec(lineno, "other", body=line[:100])
        elif _CF_CONNECT.fullmatch(line):
            yield Rec(lineno, "connect")
        elif line.startswith(b"configuration: "):
            yield Rec(lineno, "config")  # cryptofeed's own config dump
        elif m := _CF_FRAME.fullmatch(line):
            yield Rec(lineno, "ws", _ns(m.group(1)), m.group(2))
        else:
            yield Rec(lineno, "other", body=line[:100])


CONN = 7
MAX_REPORTED = 20


@dataclass
class Scan:
    lines: Counter = field(default_factory=Counter)
    events: Counter = field(default_factory=Counter)  # decoded type name -> count
    by_symbol: Counter = field(default_factory=Counter)  # (type name, symbol) -> count
    closed_klines: int = 0
    problems: list[str] = field(default_factory=list)  # wrong type, recv_ns, symbol...
    field_mismatches: int = 0
    mismatch_examples: list[str] = field(default_factory=list)
    depth_gaps: list[str] = field(default_factory=list)
    id_gaps: list[str] = field(default_factory=list)
    first_last: dict = field(default_factory=dict)  # (what, symbol) -> [first, last]
    snapshots: dict = field(default_factory=dict)  # symbol -> (L, n bids, n asks, limit, lineno)
    bad_frames: int = 0
    unknown_streams: int = 0
    decoder_frames: int = 0


def _span(scan: Scan, what: str, symbol: str, first: int, last: int) -> None:
    span = scan.first_last.setdefault((what, symbol), [first, last])
    span[1] = last


def _mismatch(scan: Scan, where: str, diffs: list[str]) -> None:
    scan.field_mismatches += 1
    if len(scan.mismatch_examples) < MAX_REPORTED:
        scan.mismatch_examples.append(f"{where}: {diffs}")


def run_scan(records, path: FramePath) -> Scan:
    scan = Scan()
    prev_u: dict[str, int] = {}
    prev_id: dict[tuple[str, str], int] = {}
    ws: list[Rec] = []
    for rec in records:
        scan.lines[rec.kind] += 1
        where = f"line {rec.lineno}"
        if rec.kind == "rest":
            snap = decode_depth(rec.body, rec.symbol, rec.limit, rec.recv_ns)
            diffs = field_diffs(snap, json.loads(rec.body))
            if diffs:
                _mismatch(scan, where, diffs)
            if (snap.symbol, snap.limit, snap.recv_ns) != (rec.symbol, rec.limit, rec.recv_ns):
                scan.problems.append(f"{where}: snapshot locals {snap.symbol} {snap.limit}")
            scan.snapshots[rec.symbol] = (snap.last_update_id, len(snap.bids), len(snap.asks),
                                          snap.limit, rec.lineno)
        elif rec.kind == "ws":
            ws.append(rec)
    run = path.run([(rec.recv_ns, rec.body) for rec in ws], CONN)
    # what the frames must give, from json.loads alone: (frame index, stream, JSON object)
    expected: list[tuple[int, str, dict]] = []
    for i, rec in enumerate(ws):
        envelope = json.loads(rec.body)
        _, is_array = implied(envelope["stream"])
        expected += [(i, envelope["stream"], d)
                     for d in (envelope["data"] if is_array else [envelope["data"]])]
    if len(run.events) != len(expected):
        scan.problems.append(f"{path.name}: {len(run.events)} events from "
                             f"{len(expected)} JSON objects")
    for (i, stream, d), item in zip(expected, run.events, strict=False):
        rec = ws[i]
        where = f"line {rec.lineno}"
        want_type, _ = implied(stream)
        if type(item) is not want_type:
            scan.problems.append(f"{where}: {stream} gave {type(item).__name__}")
            continue
        if item.recv_ns != run.stamps[i] or item.conn != CONN:
            scan.problems.append(f"{where}: recv_ns/conn {item.recv_ns}/{item.conn}")
        diffs = field_diffs(item, d)
        if diffs:
            _mismatch(scan, f"{where} {stream}", diffs)
        name = want_type.__name__
        symbol = stream.split("@")[0].upper()
        scan.events[name] += 1
        scan.by_symbol[name, symbol] += 1
        if want_type is DepthUpdate:
            p = prev_u.get(symbol)
            if p is not None and item.first_update_id != p + 1:
                scan.depth_gaps.append(f"{where}: U={item.first_update_id} prev u={p}")
            prev_u[symbol] = item.final_update_id
            _span(scan, "depth", symbol, item.first_update_id, item.final_update_id)
        elif want_type in (Trade, AggTrade):
            tid = item.trade_id if want_type is Trade else item.agg_id
            p = prev_id.get((name, symbol))
            if p is not None and tid != p + 1:
                scan.id_gaps.append(f"{where}: {name} id {tid} after {p}")
            prev_id[name, symbol] = tid
            _span(scan, name, symbol, tid, tid)
        elif want_type is Kline:
            scan.closed_klines += item.bar.closed
        elif want_type is PartialDepth and item.symbol != symbol:
            scan.problems.append(f"{where}: partial depth symbol {item.symbol!r}")
    scan.bad_frames = path.stats.bad_frames
    scan.unknown_streams = path.stats.unknown_streams
    scan.decoder_frames = path.stats.frames
    return scan


@cache
def scan_file(rel: str, path_name: str) -> Scan:
    """One recording through one path (cached: several tests read the same scan)."""
    file = REALDATA / rel
    reader = hft_records if rel.startswith("hftbacktest/") else cryptofeed_records
    return run_scan(reader(file), PATHS[path_name]())


# --- what INDEX.md says about each recording ------------------------------------------------

HFT_FILES: dict[str, dict] = {
    "hftbacktest/btcusdt_20240808.gz": dict(
        lines=41_249, events={"DepthUpdate": 3_451, "BookTicker": 28_040, "Trade": 9_757},
        snapshots={"BTCUSDT": (50093239218, 1000, 1000, 1000, 8)}),
    "hftbacktest/ethusdt_20240808.gz": dict(
        lines=33_618, events={"DepthUpdate": 3_434, "BookTicker": 24_077, "Trade": 6_106},
        snapshots={"ETHUSDT": (35346513512, 1000, 1000, 1000, None)}),
    "hftbacktest/btcusdt_20240809.gz": dict(
        lines=58_325, events={"DepthUpdate": 3_044, "BookTicker": 45_134, "Trade": 10_147},
        snapshots={}),
    "hftbacktest/ethusdt_20240809.gz": dict(
        lines=46_126, events={"DepthUpdate": 3_036, "BookTicker": 34_681, "Trade": 8_409},
        snapshots={}),
    "hftbacktest/btcusdt_20240808.first2000lines.txt": dict(
        lines=2_000, events={"DepthUpdate": 187, "BookTicker": 1_515, "Trade": 297},
        snapshots={"BTCUSDT": (50093239218, 1000, 1000, 1000, 8)}),
}

# events: INDEX.md counts; closed: klines with x:true; snapshots: symbol -> (L, bids, asks, limit)
CRYPTOFEED_FILES: dict[str, dict] = {
    "cryptofeed/HEAD/BINANCE.ws.1.0": dict(
        events={"DepthUpdate": 177, "BookTicker": 84, "AggTrade": 2, "Kline": 2}, closed=0,
        snapshots={}),
    "cryptofeed/HEAD/BINANCE_US.ws.1.0": dict(
        events={"DepthUpdate": 336, "BookTicker": 128, "AggTrade": 11, "Kline": 5}, closed=1,
        snapshots={}),
    "cryptofeed/rev-29970208/BINANCE-ee25be.0": dict(
        events={"DepthUpdate": 2_688, "AggTrade": 1_910, "Kline": 118}, closed=3,
        by_symbol={("AggTrade", "BTCUSDT"): 1_227},
        snapshots={"DOTUSDT": (1513939277, 1000, 1000, 1000),
                   "BTCUSDT": (9893033066, 1000, 1000, 1000),
                   "ETHUSDT": (6591598839, 1000, 1000, 1000)}),
    "cryptofeed/rev-1312c062/BINANCE-b38f7c.0": dict(
        events={"BookTicker": 5_408, "DepthUpdate": 4_709, "AggTrade": 1_240}, closed=0,
        snapshots=10),
    "cryptofeed/rev-4fe02974/BINANCE.ws.1.0": dict(
        events={"DepthUpdate": 546, "BookTicker": 412, "AggTrade": 28, "Kline": 17}, closed=2,
        snapshots={}),
    "cryptofeed/HEAD/BINANCE.http.0.0": dict(
        events={}, closed=0,
        snapshots={"NKNUSDT": (499869752, 609, 1000, 1000),
                   "BLZETH": (281916627, 174, 1000, 1000),
                   "LRCBTC": (259345543, 176, 1000, 1000),
                   "RUNEEUR": (15602511, 221, 468, 1000)}),
    "cryptofeed/HEAD/BINANCE_US.http.0.0": dict(events={}, closed=0, snapshots=4),
    "cryptofeed/rev-4fe02974/BINANCE.http.0.0": dict(
        events={}, closed=0,
        snapshots={"XMRBTC": (717720857, 1356, 5000, 5000),
                   "FTMUSDT": (800360994, 2373, 5000, 5000),
                   "SXPBTC": (679669301, 1789, 5000, 5000),
                   "BADGERBTC": (49759189, 440, 1301, 5000)}),
    # Only the full GET /api/v3/exchangeInfo body and cryptofeed's config: no stream frames.
    "cryptofeed/HEAD/BINANCE.0": dict(events={}, closed=0, snapshots={}, exchange_info=1),
    "cryptofeed/HEAD/BINANCE_US.0": dict(events={}, closed=0, snapshots={}, exchange_info=1),
}

NAUTILUS = REALDATA / "nautilus_trader"
# Every file of the collection: what this module does with it, or why it is not decoded.
REALDATA_FILES: dict[str, str] = {
    **{rel: "scan" for rel in HFT_FILES},
    **{rel: "scan" for rel in CRYPTOFEED_FILES},
    "tardis-node/mappers.test.ts.binance_messages.json": "frames",
    "crypto-msg-parser/binance.rs.spot_raw_msgs.jsonl": "frames",
    "nautilus_trader/ws_spot_trade.json": "frame",
    "nautilus_trader/ws_spot_agg_trade.json": "frame",
    "nautilus_trader/ws_spot_ticker_book.json": "frame",
    "nautilus_trader/ws_spot_ticker_24hr.json": "frame (raw payload)",
    "nautilus_trader/http_spot_market_depth.json": "decode_depth",
    "nautilus_trader/http_spot_market_agg_trades.json": "skip: REST list, no model",
    "nautilus_trader/http_spot_market_klines.json": "skip: REST list, no model",
    "nautilus_trader/http_spot_market_trades.json": "skip: REST list, no model",
    "nautilus_trader/http_spot_market_historical_trades.json": "skip: REST list, no model",
    "nautilus_trader/http_spot_market_exchange_info.json": "skip: exchangeInfo",
    "nautilus_trader/http_spot_market_book_ticker.json": "skip: REST body, no model",
    "nautilus_trader/http_spot_market_ticker_price.json": "skip: REST body, no model",
    "nautilus_trader/http_spot_market_avg_price.json": "skip: REST body, no model",
    "nautilus_trader/http_spot_market_time.json": "skip: REST body, no model",
    "nautilus_trader/btcusdt-depth-snap.csv": "skip: USD-M futures CSV",
    "nautilus_trader/btcusdt-depth-update.csv": "skip: USD-M futures CSV",
    "MiniTrade/exchangeInfo.json": "skip: WS-API exchangeInfo reply, not a stream frame",
    "INDEX.md": "skip: documentation",
}


def test_every_realdata_file_is_accounted_for() -> None:
    found = {p.relative_to(REALDATA).as_posix() for p in REALDATA.rglob("*") if p.is_file()}
    assert found == set(REALDATA_FILES)


def test_field_diffs_is_not_vacuous() -> None:
    """The comparator itself must catch wrong values, float ids, wrong defaults, lost keys."""
    data = json.loads(_hft_line(4)[1])["data"]
    good = Trade(event_time=data["E"], symbol="BTCUSDT", trade_id=data["t"], price=61837.63,
                 qty=0.02, trade_time=data["T"], buyer_is_maker=True)
    assert field_diffs(good, data) == []
    for change in ({"price": 61837.630001}, {"trade_id": float(data["t"])}, {"qty": 0.2},
                   {"buyer_order_id": 0}, {"best_match": False}, {"symbol": "btcusdt"},
                   {"buyer_is_maker": 1}):
        bad = msgspec.structs.replace(good, **change)
        assert len(field_diffs(bad, data)) == 1, change
    assert field_diffs(good, {k: v for k, v in data.items() if k != "T"})
    depth = json.loads(_hft_line(1)[1])["data"]
    ev = FrameDecoder().decode(_hft_line(1)[1])
    assert field_diffs(ev, depth) == []
    swapped = msgspec.structs.replace(ev, bids=[(q, p) for p, q in ev.bids])
    listed = msgspec.structs.replace(ev, asks=[list(lv) for lv in ev.asks])
    assert field_diffs(swapped, depth) and field_diffs(listed, depth)


def test_spec_covers_every_model_field() -> None:
    wire_types = set(MARKET_EVENT_TYPES)
    assert set(SPEC) == {*wire_types, KlineBar}
    for typ, spec in SPEC.items():
        local = LOCAL_FIELDS.get(typ, set()) | (EVENT_LOCAL if typ is not KlineBar else set())
        assert set(spec) | local == set(typ.__struct_fields__), typ.__name__


# --- recordings: hftbacktest (2024) --------------------------------------------------------


@pytest.mark.parametrize("rel", list(HFT_FILES))
def test_hftbacktest_every_frame_decodes_with_exact_fields(rel: str, path: FramePath) -> None:
    want = HFT_FILES[rel]
    scan = scan_file(rel, path.name)
    assert scan.lines["other"] == 0
    assert sum(scan.lines.values()) == want["lines"]
    assert (scan.bad_frames, scan.unknown_streams) == (0, 0)
    assert scan.decoder_frames == scan.lines["ws"]
    assert scan.problems == []
    assert dict(scan.events) == want["events"]
    assert scan.field_mismatches == 0, scan.mismatch_examples
    assert scan.lines["rest"] == len(want["snapshots"])
    for symbol, (last_id, n_bids, n_asks, limit, lineno) in want["snapshots"].items():
        got = scan.snapshots[symbol]
        assert got[:4] == (last_id, n_bids, n_asks, limit)
        assert lineno is None or got[4] == lineno


@pytest.mark.parametrize("rel", list(HFT_FILES))
def test_hftbacktest_depth_and_trade_ids_are_contiguous(rel: str, path: FramePath) -> None:
    scan = scan_file(rel, path.name)
    assert scan.depth_gaps == []
    assert scan.id_gaps == []
    symbol = rel.split("/")[1].split("_")[0].upper()
    # ids beyond 2**32 (depth ~5e10): exact ints, so +1 steps are visible at all
    for what in ("depth", "Trade"):
        first, last = scan.first_last[what, symbol]
        assert type(first) is int and type(last) is int and first < last
    assert scan.first_last["depth", symbol][1] > 2**32


@pytest.mark.parametrize("symbol", ["btcusdt", "ethusdt"])
def test_hftbacktest_ids_continue_across_midnight(symbol: str, path: FramePath) -> None:
    day1 = scan_file(f"hftbacktest/{symbol}_20240808.gz", path.name).first_last
    day2 = scan_file(f"hftbacktest/{symbol}_20240809.gz", path.name).first_last
    sym = symbol.upper()
    assert day2["depth", sym][0] == day1["depth", sym][1] + 1
    assert day2["Trade", sym][0] == day1["Trade", sym][1] + 1


# --- recordings: cryptofeed (2021) --------------------------------------------------------


@pytest.mark.parametrize("rel", list(CRYPTOFEED_FILES))
def test_cryptofeed_every_frame_decodes_with_exact_fields(rel: str, path: FramePath) -> None:
    want = CRYPTOFEED_FILES[rel]
    scan = scan_file(rel, path.name)
    assert scan.lines["other"] == 0
    assert scan.lines["exchangeInfo"] == want.get("exchange_info", 0)
    assert (scan.bad_frames, scan.unknown_streams) == (0, 0)
    assert scan.decoder_frames == scan.lines["ws"] == sum(want["events"].values())
    assert scan.problems == []
    assert dict(scan.events) == want["events"]
    assert scan.closed_klines == want["closed"]
    for key, n in want.get("by_symbol", {}).items():
        assert scan.by_symbol[key] == n
    assert scan.field_mismatches == 0, scan.mismatch_examples
    snaps = want["snapshots"]
    if isinstance(snaps, int):
        assert len(scan.snapshots) == scan.lines["rest"] == snaps
    else:
        assert {s: v[:4] for s, v in scan.snapshots.items()} == snaps


@pytest.mark.parametrize("rel", [r for r in CRYPTOFEED_FILES if CRYPTOFEED_FILES[r]["events"]])
def test_cryptofeed_depth_and_agg_trade_ids_are_contiguous(rel: str, path: FramePath) -> None:
    scan = scan_file(rel, path.name)
    assert scan.depth_gaps == []
    assert scan.id_gaps == []


# --- hand-picked frames, with literal values ---------------------------------------------


def _lines(rel: str) -> list[bytes]:
    return (REALDATA / rel).read_bytes().split(b"\n")


def _hft_line(n: int) -> tuple[int, bytes]:
    ns, _, body = _lines("hftbacktest/btcusdt_20240808.first2000lines.txt")[n - 1].partition(b" ")
    return int(ns), body


def test_first_frames_of_btcusdt_20240808(path: FramePath) -> None:
    dec = path
    ns, body = _hft_line(1)
    ev = dec.decode(body, ns, 3)
    assert type(ev) is DepthUpdate
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.recv_ns, ev.conn) == (1723161253937085768, 3)
    assert (ev.event_time, ev.symbol) == (1723161255208, "BTCUSDT")
    assert (ev.first_update_id, ev.final_update_id) == (50093239189, 50093239202)
    assert ev.bids == [(61737.63, 0.0), (61730.17, 0.0), (56854.58, 0.0)]
    assert len(ev.asks) == 9 and ev.asks[0] == (61837.64, 1.54698)
    assert ev.asks[-1] == (61937.64, 0.02)
    assert (ev.prev_final_update_id, ev.transaction_time) == (None, 0)

    ns, body = _hft_line(3)
    ev = dec.decode(body, ns)
    assert type(ev) is BookTicker
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.update_id, ev.symbol) == (50093239212, "BTCUSDT")
    assert (ev.bid_price, ev.bid_qty, ev.ask_price, ev.ask_qty) == (
        61837.63, 3.78826, 61837.64, 1.54698)
    assert (ev.event_time, ev.transaction_time) == (0, 0)  # spot bookTicker has no E/T

    ns, body = _hft_line(4)
    ev = dec.decode(body, ns)
    assert type(ev) is Trade
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.event_time, ev.trade_time, ev.trade_id) == (1723161255343, 1723161255342,
                                                           3735683259)
    assert (ev.price, ev.qty, ev.buyer_is_maker, ev.best_match) == (61837.63, 0.02, True, True)
    assert (ev.buyer_order_id, ev.seller_order_id) == (None, None)  # b/a removed 2024-06

    # The snapshot (line 8) arrived after the diff that bridges it (line 6): U <= L+1 <= u.
    ns, body = _hft_line(8)
    snap = decode_depth(body, "BTCUSDT", 1000, ns)
    assert_fields(snap, json.loads(body))
    assert (snap.last_update_id, snap.symbol, snap.limit, snap.recv_ns) == (
        50093239218, "BTCUSDT", 1000, 1723161254206652067)
    assert snap.bids[0] == (61837.63, 3.78826) and len(snap.bids) == len(snap.asks) == 1000
    bridge = dec.decode(_hft_line(6)[1])
    assert bridge.first_update_id <= snap.last_update_id + 1 <= bridge.final_update_id
    # The same bare body through decode() takes the raw path and gives a PartialDepth.
    raw = dec.decode(body, ns)
    assert type(raw) is PartialDepth
    assert (raw.last_update_id, raw.bids, raw.asks) == (snap.last_update_id, snap.bids, snap.asks)
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def _cryptofeed_frame(rel: str, needle: bytes) -> bytes:
    line = next(ln for ln in _lines(rel) if needle in ln and not ln.startswith(b"http"))
    return line.partition(b": ")[2]


def test_cryptofeed_2021_agg_trade_and_closed_kline(path: FramePath) -> None:
    rel = "cryptofeed/rev-29970208/BINANCE-ee25be.0"
    dec = path
    body = _cryptofeed_frame(rel, b'"stream":"btcusdt@aggTrade"')
    ev = dec.decode(body)
    assert type(ev) is AggTrade
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.event_time, ev.trade_time, ev.symbol) == (1617566591315, 1617566591314, "BTCUSDT")
    assert (ev.agg_id, ev.first_trade_id, ev.last_trade_id) == (665076760, 745522877, 745522877)
    assert (ev.price, ev.qty, ev.buyer_is_maker, ev.best_match) == (58001.03, 0.086205, True, True)

    body = _cryptofeed_frame(rel, b'"x":true')
    ev = dec.decode(body)
    assert type(ev) is Kline
    assert_fields(ev, json.loads(body)["data"])
    bar = ev.bar
    assert (ev.event_time, ev.symbol) == (1617566640068, "BTCUSDT")
    assert (bar.open_time, bar.close_time, bar.interval, bar.closed) == (
        1617566580000, 1617566639999, "1m", True)
    assert (bar.first_trade_id, bar.last_trade_id, bar.trades) == (745522651, 745523670, 1020)
    assert (bar.open, bar.close, bar.high, bar.low) == (57994.6, 57999.99, 58018.03, 57974.41)
    assert (bar.volume, bar.quote_volume) == (23.067122, 1337913.58654308)
    assert (bar.taker_buy_volume, bar.taker_buy_quote_volume) == (11.413347, 661954.86510045)
    assert ev.event_time > bar.close_time


def test_trade_frames_that_still_carry_buyer_and_seller_order_ids(path: FramePath) -> None:
    dec = path
    body = (NAUTILUS / "ws_spot_trade.json").read_bytes()  # pretty-printed: the slow path
    ev = dec.decode(body)
    assert type(ev) is Trade
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.trade_id, ev.buyer_order_id, ev.seller_order_id) == (705291099, 7038593583,
                                                                    7038593613)
    assert (ev.price, ev.qty, ev.event_time, ev.trade_time) == (4149.74, 0.4387, 1639351062244,
                                                                1639351062243)
    compact = msgspec.json.encode(json.loads(body))  # the same frame on the fast path
    assert compact.startswith(b'{"stream":"')
    assert dec.decode(compact) == ev

    tardis = json.loads((REALDATA / "tardis-node/mappers.test.ts.binance_messages.json")
                        .read_bytes())
    trades = [m for m in tardis if m["stream"].endswith("@trade")]
    assert len(trades) == 2
    for msg in trades:
        ev = dec.decode(msgspec.json.encode(msg))
        assert type(ev) is Trade
        assert_fields(ev, msg["data"])
        assert ev.buyer_order_id == msg["data"]["b"] and ev.seller_order_id == msg["data"]["a"]
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def _cmp_raws() -> list[dict]:
    text = (REALDATA / "crypto-msg-parser/binance.rs.spot_raw_msgs.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_partial_depth20_takes_its_symbol_from_the_stream_name(path: FramePath) -> None:
    raw = next(r["raw"] for r in _cmp_raws() if r["test_module"] == "l2_topk")
    ev = path.decode(raw.encode(), 5, 1)
    assert type(ev) is PartialDepth
    assert_fields(ev, json.loads(raw)["data"])
    assert (ev.symbol, ev.last_update_id, ev.recv_ns, ev.conn) == ("ETHUSDT", 17044571457, 5, 1)
    assert ev.bids == [(1782.0, 6.483), (1781.95, 0.03)]
    assert ev.asks == [(1782.01, 15.4608), (1782.02, 0.0078)]


def test_suspect_book_ticker_with_event_and_transaction_time(path: FramePath) -> None:
    body = (NAUTILUS / "ws_spot_ticker_book.json").read_bytes()
    ev = path.decode(body)
    assert type(ev) is BookTicker
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.update_id, ev.symbol) == (12711621188, "ETHUSDT")
    assert (ev.bid_price, ev.bid_qty, ev.ask_price, ev.ask_qty) == (4507.24, 2.3595, 4507.25,
                                                                    2.8457)
    assert (ev.event_time, ev.transaction_time) == (1646199228123, 1646199228121)


def test_agg_trade_with_extra_st_field_is_decoded_and_st_ignored(path: FramePath) -> None:
    body = (NAUTILUS / "ws_spot_agg_trade.json").read_bytes()
    assert json.loads(body)["data"]["st"] == 1
    ev = path.decode(body)
    assert type(ev) is AggTrade
    assert_fields(ev, json.loads(body)["data"])
    assert (ev.agg_id, ev.first_trade_id, ev.last_trade_id) == (226532, 228423, 228423)
    assert (ev.price, ev.qty, ev.buyer_is_maker) == (1632.46, 0.34305, False)
    assert (ev.event_time, ev.trade_time) == (1675759520848, 1675759520847)


def test_nautilus_raw_24hr_ticker_payload_and_rest_depth(path: FramePath) -> None:
    dec = path
    body = (NAUTILUS / "ws_spot_ticker_24hr.json").read_bytes()
    ev = dec.decode(body)
    assert type(ev) is Ticker
    assert_fields(ev, json.loads(body))
    assert (ev.event_type, ev.symbol, ev.trades, ev.last_trade_id) == ("24hrTicker", "BNBBTC",
                                                                       18151, 18150)
    body = (NAUTILUS / "http_spot_market_depth.json").read_bytes()
    snap = decode_depth(body, "BTCUSDT", 10, 1)
    assert_fields(snap, json.loads(body))
    assert (snap.last_update_id, len(snap.bids), len(snap.asks)) == (14527958487, 10, 10)
    assert snap.bids[0] == (60650.0, 0.00213) and snap.asks[0] == (60650.01, 0.61982)


# --- small sources: every frame --------------------------------------------------------------


def _check_frames(dec: FramePath, frames: list[bytes]) -> None:
    for frame in frames:
        env = json.loads(frame)
        want_type, is_array = implied(env["stream"])
        ev = dec.decode(frame, 11, 2)
        got = ev if is_array else [ev]
        assert [type(e) for e in got] == [want_type] * len(got), (frame[:80], ev)
        for item, data in zip(got, env["data"] if is_array else [env["data"]], strict=True):
            assert_fields(item, data)
            assert (item.recv_ns, item.conn) == (11, 2)


def test_crypto_msg_parser_every_frame(path: FramePath) -> None:
    dec = path
    raws = [r["raw"].encode() for r in _cmp_raws()]
    ws = [r for r in raws if r.startswith(b'{"stream":')]
    rest = [r for r in raws if r.startswith(b'{"lastUpdateId":')]
    assert (len(ws), len(rest)) == (7, 1)
    _check_frames(dec, ws)
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)
    snap = decode_depth(rest[0], "BTCUSDT", 1000, 0)
    assert_fields(snap, json.loads(rest[0]))
    assert snap.last_update_id == 33933317943


def test_all_market_book_ticker_frame(path: FramePath) -> None:
    """``!bookTicker`` (all-market, removed in 2022) carried ordinary bookTicker payloads."""
    raw = next(r["raw"] for r in _cmp_raws() if r["test_module"] == "bbo")
    dec = path
    ev = dec.decode(raw.encode())
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)
    assert type(ev) is BookTicker
    assert_fields(ev, json.loads(raw)["data"])
    assert (ev.update_id, ev.symbol, ev.bid_price, ev.ask_price) == (19575390521, "BTCUSDT",
                                                                     29010.9, 29010.91)


def test_tardis_every_binance_frame_and_generated_snapshots(path: FramePath) -> None:
    msgs = json.loads((REALDATA / "tardis-node/mappers.test.ts.binance_messages.json").read_bytes())
    binance = [m for m in msgs if not m.get("generated")]
    generated = [m for m in msgs if m.get("generated")]
    assert (len(binance), len(generated)) == (8, 2)
    for encode in (msgspec.json.encode, lambda m: json.dumps(m).encode()):  # fast and slow path
        dec = PATHS[path.name]()  # a fresh one per encoding: the counts below are its own
        _check_frames(dec, [encode(m) for m in binance])
        assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)
        # "<symbol>@depthSnapshot" is tardis's own REST-built message, not a Binance stream.
        for m in generated:
            assert dec.decode(encode(m)) is None
        assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 2)
    for m in generated:
        snap = decode_depth(msgspec.json.encode(m["data"]), "X", 1000, 0)
        assert_fields(snap, m["data"])


# --- the documented examples -------------------------------------------------------------


@cache
def fixtures() -> dict:
    return json.loads(FIXTURES.read_bytes())


# fixture key -> concrete stream names its payload is sent on
FIXTURE_STREAMS: dict[str, list[str]] = {
    "<symbol>@aggTrade": ["bnbbtc@aggTrade"],
    "<symbol>@trade": ["bnbbtc@trade"],
    "<symbol>@blockTrade": ["bnbbtc@blockTrade"],
    "<symbol>@kline_<interval>": ["bnbbtc@kline_1m"],
    "<symbol>@kline_<interval>@+08:00": ["bnbbtc@kline_1m@+08:00"],
    "<symbol>@miniTicker": ["bnbbtc@miniTicker"],
    "<symbol>@ticker": ["bnbbtc@ticker"],
    "<symbol>@ticker_<window_size>": ["bnbbtc@ticker_1h"],
    "<symbol>@bookTicker": ["bnbusdt@bookTicker"],
    "<symbol>@avgPrice": ["btcusdt@avgPrice"],
    "<symbol>@depth<levels>[@100ms]": ["bnbbtc@depth5", "bnbbtc@depth10@100ms",
                                       "bnbbtc@depth20@100ms"],
    "<symbol>@depth[@100ms]": ["bnbbtc@depth", "bnbbtc@depth@100ms"],
    "<symbol>@referencePrice": ["bazusd@referencePrice"],
    "serverShutdown (raw)": ["!serverShutdown"],
}
FIXTURE_ARRAY_PLACEHOLDERS = {"!miniTicker@arr": "!miniTicker@arr",
                              "!ticker_<window-size>@arr": "!ticker_1h@arr"}
FIXTURE_OTHER = {
    "_meta", "_derived", "serverShutdown (combined)", "ws control: live subscribe",
    "ws control: error table (as documented; %s = placeholder)", "GET /api/v3/depth",
    "REST error body (example)", "exchangeInfo.rateLimits[] examples (enums.md)",
    "exchangeInfo filters (filters.md)",
    "ws-api 418 ban response (web-socket-api.md; shows -1003 ban msg text)",
}


def test_every_fixture_key_is_classified() -> None:
    keys = set(fixtures())
    rest = {k for k in keys if k.startswith("GET ")} - {"GET /api/v3/depth"}
    assert keys - rest == set(FIXTURE_STREAMS) | set(FIXTURE_ARRAY_PLACEHOLDERS) | FIXTURE_OTHER


@pytest.mark.parametrize("key", list(FIXTURE_STREAMS))
def test_doc_stream_payload_decodes_raw_combined_and_reordered(key: str,
                                                              path: FramePath) -> None:
    payload = fixtures()[key]
    dec = path
    raw = msgspec.json.encode(payload)
    for stream in FIXTURE_STREAMS[key]:
        want_type, _ = implied(stream)
        symbol = "" if stream.startswith("!") else stream.split("@")[0].upper()
        frames = [
            msgspec.json.encode({"stream": stream, "data": payload}),  # fast path
            json.dumps({"stream": stream, "data": payload}, indent=1).encode(),  # spaced
            msgspec.json.encode({"data": payload, "stream": stream}),  # keys reordered
        ]
        for frame in frames:
            ev = dec.decode(frame, 9, 4)
            assert type(ev) is want_type, (frame, ev, dec.stats.last_error)
            assert_fields(ev, payload)
            assert (ev.recv_ns, ev.conn) == (9, 4)
            if want_type is PartialDepth:
                assert ev.symbol == symbol
        ev = dec.decode(raw, 9, 4)  # raw (/ws/<stream>) form: type from e / lastUpdateId / u
        assert type(ev) is want_type, (raw, ev, dec.stats.last_error)
        assert_fields(ev, payload)
        ev = FrameDecoder().decode_payload(raw, want_type, 9, 4)  # a REST body: no stream
        assert type(ev) is want_type
        assert_fields(ev, payload)
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def test_doc_reference_price_null_and_server_shutdown_combined(path: FramePath) -> None:
    dec = path
    ev = dec.decode(msgspec.json.encode(fixtures()["serverShutdown (combined)"]))
    assert type(ev) is ServerShutdown and ev.event_time == 1770123456789
    ev = dec.decode(msgspec.json.encode(fixtures()["serverShutdown (raw)"]))
    assert type(ev) is ServerShutdown and ev.event_time == 1770123456789
    payload = dict(fixtures()["<symbol>@referencePrice"], r=None)  # REST documents a null price
    ev = dec.decode(msgspec.json.encode({"stream": "bazusd@referencePrice", "data": payload}))
    assert type(ev) is ReferencePrice and ev.price is None and ev.engine_time == 1770313263917
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def test_doc_derived_arrays_and_combined_envelope(path: FramePath) -> None:
    derived = fixtures()["_derived"]
    dec = path
    for key, stream in FIXTURE_ARRAY_PLACEHOLDERS.items():
        assert fixtures()[key] == [{}]  # doc placeholder; the filled-in array is in _derived
        want_type, is_array = implied(stream)
        assert is_array
        for frame in (msgspec.json.encode({"stream": stream, "data": derived[key]}),
                      json.dumps({"stream": stream, "data": derived[key]}).encode()):
            evs = dec.decode(frame, 8, 1)
            assert type(evs) is list and len(evs) == len(derived[key]) >= 1
            for ev, data in zip(evs, derived[key], strict=True):
                assert type(ev) is want_type
                assert_fields(ev, data)
                assert (ev.recv_ns, ev.conn) == (8, 1)
    env = derived["combined envelope"]
    ev = dec.decode(msgspec.json.encode(env))
    assert type(ev) is AggTrade
    assert_fields(ev, env["data"])
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)
    # The bare placeholder ([{}]) has no fields: a counted bad frame, not an exception.
    assert dec.decode(b'{"stream":"!miniTicker@arr","data":[{}]}') is None
    assert dec.stats.bad_frames == 1


def test_doc_rest_depth_via_decode_snapshot() -> None:
    body = msgspec.json.encode(fixtures()["GET /api/v3/depth"])
    snap = decode_depth(body, "BNBBTC", 100, 42)
    assert_fields(snap, fixtures()["GET /api/v3/depth"])
    assert (snap.last_update_id, snap.bids, snap.asks) == (1027024, [(4.0, 431.0)],
                                                           [(4.000002, 12.0)])
    assert (snap.symbol, snap.limit, snap.recv_ns, snap.conn) == ("BNBBTC", 100, 42, 0)
    # A REST error body must not turn into an empty book.
    with pytest.raises(msgspec.ValidationError):
        decode_depth(msgspec.json.encode(fixtures()["REST error body (example)"]), "X", 5, 0)


def test_doc_control_replies(path: FramePath) -> None:
    dec = path
    control = fixtures()["ws control: live subscribe"]
    assert set(control) == {"SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY",
                            "GET_PROPERTY"}
    for case in control.values():
        reply = dec.decode(msgspec.json.encode(case["response"]))
        assert type(reply) is ControlReply
        assert reply.id == case["request"]["id"] == case["response"]["id"]
        assert reply.result == case["response"]["result"]
        assert reply.error is None
    assert control["LIST_SUBSCRIPTIONS"]["response"]["result"] == ["btcusdt@aggTrade"]
    assert control["GET_PROPERTY"]["response"]["result"] is True
    # id may also be a string or null (docs, 2023-12)
    for rid in ("abc-123", None, 2**63 - 1):
        reply = dec.decode(msgspec.json.encode({"result": None, "id": rid}))
        assert type(reply) is ControlReply and reply.id == rid and reply.error is None
    assert dec.stats.control_replies == len(control) + 3
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def test_doc_error_table_as_wrapped_error_replies(path: FramePath) -> None:
    """The docs show only ``{code,msg}``; on the wire it is ``{"error":{...},"id":...}``."""
    table = fixtures()["ws control: error table (as documented; %s = placeholder)"]
    entries = [e["json"] for e in table if e["json"] is not None]
    assert len(entries) == len(table) - 1 == 8
    dec = path
    for i, err in enumerate(entries):
        for rid in (i + 100, None):
            reply = dec.decode(msgspec.json.encode({"error": err, "id": rid}))
            assert type(reply) is ControlReply, dec.stats.last_error
            assert reply.error is not None
            assert (reply.error.code, reply.error.msg, reply.id) == (err["code"], err["msg"], rid)
            assert reply.result is None
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)
    # The bare documented bodies are not stream frames: whatever they give, never an exception.
    for entry in table:
        got = dec.decode(entry["raw"].replace("%s", "1").encode())
        assert got is None or type(got) is ControlReply
    # The WS-API error shape decodes the same way (extra status/rateLimits/data ignored).
    key = "ws-api 418 ban response (web-socket-api.md; shows -1003 ban msg text)"
    reply = dec.decode(msgspec.json.encode(fixtures()[key]))
    assert type(reply) is ControlReply and reply.error is not None
    assert (reply.id, reply.error.code) == ("fc93a61a-a192-4cf4-bb2a-a8f0f0c51e06", -1003)


# --- robustness ----------------------------------------------------------------------------

TRADE_FRAME = _hft_line(4)[1]  # btcusdt@trade, 2024: no b/a


def _counted(dec: FramePath) -> int:
    return dec.stats.bad_frames + dec.stats.unknown_streams


def test_every_truncation_of_real_frames_is_none_and_counted(path: FramePath) -> None:
    frames = [_hft_line(n)[1] for n in (1, 3, 4)]
    frames.append(_cryptofeed_frame("cryptofeed/rev-29970208/BINANCE-ee25be.0", b'"x":true'))
    frames.append((NAUTILUS / "ws_spot_ticker_24hr.json").read_bytes().strip())  # raw payload
    frames.append(b'{"result":null,"id":1}')
    dec = path
    n = 0
    for frame in frames:
        for cut in range(len(frame)):
            assert dec.decode(frame[:cut]) is None, frame[:cut]
            n += 1
            assert _counted(dec) == n, frame[:cut]
    # Truncated after the stream name: the route is known, so these are bad frames.
    dec = PATHS[path.name]()
    start = len(b'{"stream":"btcusdt@trade"')
    for cut in range(start, len(TRADE_FRAME)):
        assert dec.decode(TRADE_FRAME[:cut]) is None
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (len(TRADE_FRAME) - start, 0)
    # ...and the decoder still works afterwards.
    assert type(dec.decode(TRADE_FRAME)) is Trade


def test_truncated_inside_stream_name_is_a_bad_frame_not_an_unknown_stream(path: FramePath) -> None:
    """A frame cut before the stream name's closing quote is malformed, not a new stream.

    ``decode`` slices ``frame[11:find('"')]``; with no closing quote ``find`` is -1, so the key
    is the name minus its last byte, a bogus route is registered and the frame is counted in
    ``unknown_streams`` instead of ``bad_frames``.
    """
    dec = path
    for frame in (b'{"stream":"', b'{"stream":"btcusdt@tr', b'{"stream":"btcusdt@trade'):
        assert dec.decode(frame) is None
    counts = (dec.stats.bad_frames, dec.stats.unknown_streams)
    assert counts == (3, 0), f"counted as {counts}, routes {list(dec.stats.routes)}"
    assert dec.stats.routes == {}  # no route registered for a name that was never complete


@pytest.mark.parametrize("frame", [
    b"", b" ", b"hello", b"\x00\xff\xfe", b"{", b"}", b"null", b"42", b'"text"', b"true",
    b"[]", b"[1,2]", b'[{"e":"trade"}]', TRADE_FRAME + b"garbage", b"{}{}",
    b'{"stream":"btcusdt@trade","data":[1,2]}', b'{"stream":"btcusdt@trade","data":null}',
    b'{"stream":"btcusdt@trade"}', b'{"stream":42,"data":{}}', b'{"stream":"\xff\xfe","data":{}}',
    TRADE_FRAME.replace(b'"p":"61837.63000000"', b'"p":"abc"'),
    TRADE_FRAME.replace(b'"p":"61837.63000000"', b'"p":true'),
    TRADE_FRAME.replace(b'"p":"61837.63000000"', b'"p":null'),
    TRADE_FRAME.replace(b'"p":"61837.63000000"', b'"p":[1]'),
    TRADE_FRAME.replace(b'"t":3735683259', b'"t":"x"'),
    TRADE_FRAME.replace(b'"t":3735683259', b'"t":3735683259.5'),
    TRADE_FRAME.replace(b'"E":1723161255343,', b""),
    _hft_line(1)[1].replace(b'["61737.63000000","0.00000000"]', b'["61737.63000000"]'),
    _hft_line(1)[1].replace(b'["61737.63000000","0.00000000"]', b'["x","0.00000000"]'),
    _hft_line(3)[1].replace(b'"b":"61837.63000000"', b'"b":"1.2.3"'),
    TRADE_FRAME[len(b'{"stream":"btcusdt@trade","data":'):-1].replace(b'"p":"61837.63000000"',
                                                                    b'"p":"abc"'),
])
def test_bad_frames_are_none_and_counted(frame: bytes, path: FramePath) -> None:
    dec = path
    assert dec.decode(frame) is None
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (1, 0)
    assert dec.stats.frames == 1 and dec.stats.last_error


@pytest.mark.parametrize("frame", [
    b'{"stream":"btcusdt@foo","data":{"e":"foo","E":1}}',
    b'{"stream":"btcusdt@depth7","data":{"lastUpdateId":1,"bids":[],"asks":[]}}',
    b'{"stream":"btcusdt@kline_2m","data":{}}',
    b'{"data":{"e":"foo"},"stream":"btcusdt@foo"}',
    b'{"stream": "btcusdt@foo", "data": {}}',
    b'{"e":"someNewEvent","E":1}',
    b'{"foo":1}',
])
def test_unknown_streams_are_none_and_counted(frame: bytes, path: FramePath) -> None:
    dec = path
    assert dec.decode(frame) is None
    assert dec.decode(frame) is None
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 2)


def test_unknown_extra_fields_are_ignored(path: FramePath) -> None:
    dec = path
    base = dec.decode(TRADE_FRAME, 1, 1)
    extra = b'"zz":{"nested":[1,2,{"a":null}]},"st":1,"X":"ignored",'
    variants = [
        TRADE_FRAME.replace(b'"data":{', b'"data":{' + extra),
        TRADE_FRAME.replace(b'"M":true}', b'"M":true,"st":1,"zz":[[],{}]}'),
        TRADE_FRAME[:-1] + b',"extra":{"k":[1]}}',  # envelope-level extra key
        b'{"id":null,' + TRADE_FRAME[1:],  # extra key before "stream": slow path
    ]
    for frame in variants:
        ev = dec.decode(frame, 1, 1)
        assert ev == base, frame
    # also on the raw payload path and for a bookTicker / depthUpdate
    data = TRADE_FRAME[len(b'{"stream":"btcusdt@trade","data":'):-1]
    assert dec.decode(data.replace(b"{", b"{" + extra, 1), 1, 1) == base
    for n in (1, 3):
        frame = _hft_line(n)[1]
        assert dec.decode(frame.replace(b'"data":{', b'"data":{' + extra)) == dec.decode(frame)
    assert (dec.stats.bad_frames, dec.stats.unknown_streams) == (0, 0)


def test_bad_frame_does_not_poison_the_route(path: FramePath) -> None:
    dec = path
    assert dec.decode(TRADE_FRAME.replace(b'"p":"61837.63000000"', b'"p":"abc"')) is None
    ev = dec.decode(TRADE_FRAME, 5)
    assert type(ev) is Trade and ev.price == 61837.63 and ev.recv_ns == 5
    route = dec.stats.routes["btcusdt@trade"]
    assert (route.messages, route.last_recv_ns) == (1, 5)
    assert (dec.stats.frames, dec.stats.bad_frames) == (2, 1)
