"""Frame → typed event, in one msgspec pass per frame.

Combined-stream frames start with ``{"stream":"<name>"``; the name is sliced out of the
bytes without parsing, looked up in a per-name route cache, and the whole frame is then
decoded by a decoder built for ``{"data": <that event type>}``. So the JSON is parsed
exactly once, straight into the final struct. Raw (non-combined) frames and control
replies take a slower two-step path; they are rare on our connections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import msgspec

from engine.binance.control import ControlReply
from engine.binance.streams import StreamRef, parse_stream_name
from engine.events import (
    AggTrade,
    AvgPrice,
    BlockTrade,
    BookTicker,
    DepthUpdate,
    Event,
    Kline,
    MiniTicker,
    PartialDepth,
    ReferencePrice,
    ServerShutdown,
    Ticker,
    Trade,
)

T = TypeVar("T")


class Envelope(msgspec.Struct, Generic[T], gc=False):
    stream: str
    data: T


class _Data(msgspec.Struct, Generic[T], gc=False):
    """A combined frame when the stream is already known: the name is skipped, not copied."""

    data: T


_GENERIC_DATA: Any = _Data
_GENERIC_LIST: Any = list


class _Probe(msgspec.Struct, gc=False):
    """Just enough of a raw frame to pick its type."""

    e: str | None = None
    lastUpdateId: int | None = None  # noqa: N815 - wire key
    u: int | None = None
    id: int | str | None = None
    result: object = None
    error: object = None
    stream: str | None = None


_TYPE_BY_KIND: dict[str, type[Event]] = {
    "trade": Trade,
    "aggTrade": AggTrade,
    "blockTrade": BlockTrade,
    "kline": Kline,
    "bookTicker": BookTicker,
    "depthPartial": PartialDepth,
    "depthUpdate": DepthUpdate,
    "miniTicker": MiniTicker,
    "ticker": Ticker,
    "avgPrice": AvgPrice,
    "referencePrice": ReferencePrice,
    "serverShutdown": ServerShutdown,
}

_TYPE_BY_EVENT_FIELD: dict[str, type[Event]] = {
    "trade": Trade,
    "aggTrade": AggTrade,
    "blockTrade": BlockTrade,
    "kline": Kline,
    "depthUpdate": DepthUpdate,
    "24hrMiniTicker": MiniTicker,
    "24hrTicker": Ticker,
    "1hTicker": Ticker,
    "4hTicker": Ticker,
    "1dTicker": Ticker,
    "avgPrice": AvgPrice,
    "referencePrice": ReferencePrice,
    "serverShutdown": ServerShutdown,
}

_PREFIX = b'{"stream":"'
_PREFIX_LEN = len(_PREFIX)


@dataclass(slots=True)
class Route:
    """Everything needed to decode and account one stream's frames."""

    ref: StreamRef
    decoder: msgspec.json.Decoder | None
    fills_symbol: bool = False  # partial depth: the symbol is only in the stream name
    special: bool = False  # serverShutdown: the connection must hear of it too
    messages: int = 0
    last_recv_ns: int = 0


@dataclass(slots=True)
class DecodeStats:
    frames: int = 0
    bad_frames: int = 0
    unknown_streams: int = 0
    control_replies: int = 0
    last_error: str = ""
    routes: dict[str, Route] = field(default_factory=dict)


class FrameDecoder:
    """Decodes frames of one or many connections; keeps per-stream counters."""

    def __init__(self) -> None:
        self.stats = DecodeStats()
        self._routes: dict[bytes, Route] = {}
        self._raw_decoders: dict[type, msgspec.json.Decoder] = {}
        self._probe = msgspec.json.Decoder(_Probe)
        self._control = msgspec.json.Decoder(ControlReply)

    # -- combined frames (the hot path) -----------------------------------------------

    def route(self, name: str) -> Route:
        key = name.encode()
        route = self._routes.get(key)
        if route is None:
            route = self._make_route(name)
            self._routes[key] = route
        return route

    def _make_route(self, name: str) -> Route:
        ref = parse_stream_name(name)
        if ref is None:
            route = Route(StreamRef(name, "unknown", ""), None)
        else:
            typ = _TYPE_BY_KIND[ref.kind]
            # a decoder for {"data": <that type>} (a list of them for array streams): the
            # types are built at run time, per stream, which a type checker cannot follow
            target = _GENERIC_LIST[typ] if ref.is_array else typ
            route = Route(ref, msgspec.json.Decoder(_GENERIC_DATA[target], strict=False),
                          fills_symbol=ref.kind == "depthPartial",
                          special=typ is ServerShutdown)
        self.stats.routes[name] = route
        return route

    def decode(self, frame: bytes, recv_ns: int = 0, conn: int = 0) -> object:
        """Return an Event, a list of Events (array streams), a ControlReply, or None.

        None means the frame was counted as bad or as an unknown stream; it never raises.
        """
        self.stats.frames += 1
        if frame.startswith(_PREFIX):
            end = frame.find(b'"', _PREFIX_LEN)
            if end < 0:  # pragma: no mutate (equivalent: end is -1 or >= 11)
                self._bad("truncated stream name")
                return None
            key = bytes(frame[_PREFIX_LEN:end])
            route = self._routes.get(key)  # pragma: no mutate (equivalent: route() finds it)
            if route is None:
                try:
                    route = self.route(key.decode())
                except UnicodeDecodeError:
                    self._bad("undecodable stream name")
                    return None
            decoder = route.decoder
            if decoder is None:
                self.stats.unknown_streams += 1
                return None
            try:
                data = decoder.decode(frame).data
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._bad(f"{route.ref.name}: {exc}")
                return None
            route.messages += 1
            route.last_recv_ns = recv_ns
            if type(data) is list:
                for item in data:
                    item.recv_ns = recv_ns
                    item.conn = conn
                return data
            data.recv_ns = recv_ns
            data.conn = conn
            if route.fills_symbol:
                data.symbol = route.ref.symbol
            return data
        return self._decode_raw(frame, recv_ns, conn)

    def decode_batch(self, frames: list[bytes], recv_ns: int, conn: int, out: list[object],
                     special: list[object]) -> None:
        """The receive path: every frame of one read, in order, into ``out``.

        Same result as :meth:`decode` per frame (array streams flattened, bad and unknown
        frames counted and skipped), without a Python call per frame. Control replies go
        to ``special`` only; ``ServerShutdown`` goes to both.
        """
        stats = self.stats
        stats.frames += len(frames)
        routes = self._routes
        append = out.append
        for frame in frames:
            if frame.startswith(_PREFIX):
                end = frame.find(b'"', _PREFIX_LEN)
                key = frame[_PREFIX_LEN:end]
                route = routes.get(key)  # pragma: no mutate (equivalent: route() finds it)
                if route is None or end < 0:  # pragma: no mutate (equivalent: end is -1 or >= 11)
                    if end < 0:  # pragma: no mutate (equivalent: end is -1 or >= 11)
                        self._bad("truncated stream name")
                        continue
                    try:
                        route = self.route(key.decode())
                    except UnicodeDecodeError:
                        self._bad("undecodable stream name")
                        continue
                decoder = route.decoder
                if decoder is None:
                    stats.unknown_streams += 1
                    continue
                try:
                    data = decoder.decode(frame).data
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self._bad(f"{route.ref.name}: {exc}")
                    continue
                route.messages += 1
                route.last_recv_ns = recv_ns
                if type(data) is list:
                    for item in data:
                        item.recv_ns = recv_ns
                        item.conn = conn
                    out.extend(data)
                    continue
                data.recv_ns = recv_ns
                data.conn = conn
                if route.fills_symbol:
                    data.symbol = route.ref.symbol
                elif route.special:
                    special.append(data)
                append(data)
                continue
            stats.frames -= 1  # counted again by decode()
            event = self.decode(frame, recv_ns, conn)
            if event is None:
                continue
            kind = type(event)
            if isinstance(event, list):
                out.extend(event)
            elif kind is ControlReply:
                special.append(event)
            else:
                if kind is ServerShutdown:
                    special.append(event)
                append(event)

    def _bad(self, why: str) -> None:
        self.stats.bad_frames += 1
        self.stats.last_error = why

    # -- raw frames and control replies (rare) ----------------------------------------

    def _decode_raw(self, frame: bytes, recv_ns: int, conn: int) -> object:
        try:
            probe = self._probe.decode(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad(f"not a JSON object: {exc}")
            return None
        if probe.stream is not None:  # an envelope with keys in an unusual order
            try:
                env = msgspec.json.decode(frame, type=Envelope[msgspec.Raw])
                body = env.data
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._bad(str(exc))
                return None
            route = self.route(env.stream)
            if route.decoder is None:
                self.stats.unknown_streams += 1
                return None
            rebuilt = b'{"stream":"' + env.stream.encode() + b'","data":' + bytes(body) + b"}"
            return self.decode(rebuilt, recv_ns, conn)
        if probe.e is not None:
            typ = _TYPE_BY_EVENT_FIELD.get(probe.e)
        elif probe.lastUpdateId is not None:
            typ = PartialDepth
        elif probe.u is not None:
            typ = BookTicker
        elif probe.id is not None or probe.error is not None or b'"result"' in frame:
            try:
                reply = self._control.decode(frame)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                self._bad(f"control reply: {exc}")
                return None
            self.stats.control_replies += 1
            return reply
        else:
            typ = None
        if typ is None:
            self.stats.unknown_streams += 1
            return None
        return self.decode_payload(frame, typ, recv_ns, conn)

    def decode_payload(self, payload: bytes, typ: type[Event], recv_ns: int = 0,
                       conn: int = 0) -> object:
        """Decode a bare payload of a known type (raw streams, REST bodies)."""
        decoder = self._raw_decoders.get(typ)  # pragma: no mutate (equivalent: a miss rebuilds it)
        if decoder is None:
            decoder = self._raw_decoders[typ] = msgspec.json.Decoder(typ, strict=False)
        try:
            event = decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._bad(f"{typ.__name__}: {exc}")
            return None
        event.recv_ns = recv_ns
        event.conn = conn
        return event
