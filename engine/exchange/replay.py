"""Reading a recording to serve: an hftbacktest file (``<local_recv_ns> <raw JSON>`` per
line, .gz or text) or a binance-live dataset directory with raw frames (``<dir>/_raw``).

Why keep raw text: replay must deliver each frame byte-identical, so the
``data`` value is sliced out of the original combined frame instead of being
re-encoded.
"""

from __future__ import annotations

import contextlib
import gc
import gzip
import json
import os
import pickle
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat
from operator import add, mul
from pathlib import Path

import msgspec


@dataclass(frozen=True)
class Frame:
    """One recorded line: a combined stream frame, or a REST depth snapshot (stream = "")."""

    ns: int
    stream: str
    text: str  # the whole recorded JSON (combined envelope, or the bare snapshot)
    data: str  # the raw payload (== text for snapshots)


_PREFIX = '{"stream":"'


def _split(text: str) -> tuple[str, str] | None:
    """(stream, data) of a combined frame, sliced from the original text."""
    if not text.startswith(_PREFIX):
        return None
    end = text.find('"', len(_PREFIX))
    if end < 0:
        return None
    stream = text[len(_PREFIX):end]
    head = f'{_PREFIX}{stream}","data":'
    if not text.startswith(head) or not text.endswith("}"):
        return None
    return stream, text[len(head):-1]


def load(path: str | Path) -> list[Frame]:
    """All frames of a recording, in file order (a dataset directory: in receive order)."""
    with _no_gc():  # ~10^5 objects that live as long as the exchange: collections only cost
        return _load(Path(path))


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load(p: Path) -> list[Frame]:
    if p.is_dir():
        return load_dataset(p)
    opener = gzip.open if p.suffix == ".gz" else open
    frames: list[Frame] = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if not line:
                continue
            ns_text, _, text = line.partition(" ")
            ns = int(ns_text)
            split = _split(text)
            if split is not None:
                frames.append(Frame(ns, split[0], text, split[1]))
            elif text.startswith('{"lastUpdateId"'):
                frames.append(Frame(ns, "", text, text))
    return frames


def load_dataset(root: Path) -> list[Frame]:
    """Raw combined-stream frames of a binance-live recording, by (recv_time, seq).

    pyarrow is imported only here, so the synthetic exchange still needs just aiohttp
    and msgspec. Hidden in-progress segments (``.*.arrows``) are skipped like any reader.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    raw = root / "_raw"
    if not raw.is_dir():
        raise ValueError(f"{root}: no raw frames ({raw} missing; record with storage.raw)")
    table = ds.dataset(raw, format="parquet", ignore_prefixes=[".", "_"]).to_table(
        columns=["recv_time", "seq", "frame"]).sort_by([("recv_time", "ascending"),
                                                        ("seq", "ascending")])
    frames: list[Frame] = []
    ns = table.column("recv_time").cast(pa.int64()).to_pylist()
    for n, blob in zip(ns, table.column("frame").to_pylist(), strict=True):
        text = blob.decode("utf-8")
        split = _split(text)
        if split is not None:
            frames.append(Frame(n, split[0], text, split[1]))
    if not frames:
        raise ValueError(f"{root}: no combined-stream frames in {raw}")
    return frames


def symbols_of(frames: list[Frame]) -> list[str]:
    """Every (uppercase) symbol a recording has streams of, in order of appearance."""
    seen = {f.stream.split("@", 1)[0].upper(): None for f in frames
            if f.stream and not f.stream.startswith("!")}
    return list(seen)


def symbol_of(frames: list[Frame]) -> str:
    """The (uppercase) symbol a per-symbol recording is about."""
    for f in frames:
        if f.stream and not f.stream.startswith("!"):
            return f.stream.split("@", 1)[0].upper()
    raise ValueError("recording holds no symbol stream")


# ---------------------------------------------------------------------------- looping
# A replay pass k ≥ 1 re-sends the recording with every id shifted by k × the span of its
# id space, so ids stay contiguous from one pass to the next (the id gate of a client
# sees one long, gap-free stream; benchmarks need windows longer than a recording).

TRADE_IDS, AGG_IDS, BOOK_IDS = 0, 1, 2
_SHIFTED: dict[str, tuple[tuple[str, int], ...]] = {  # stream kind -> ('"key":', id space)
    "trade": (('"t":', TRADE_IDS),),
    "aggTrade": (('"a":', AGG_IDS), ('"f":', TRADE_IDS), ('"l":', TRADE_IDS)),
    "depth": (('"U":', BOOK_IDS), ('"u":', BOOK_IDS)),
    "bookTicker": (('"u":', BOOK_IDS),),
    "": (('"lastUpdateId":', BOOK_IDS),),  # a REST snapshot
}
# the stream whose ids are contiguous in each space: (stream kind, first key, last key)
_CONTIGUOUS = {TRADE_IDS: ("trade", "t", "t"), AGG_IDS: ("aggTrade", "a", "a"),
               BOOK_IDS: ("depth", "U", "u")}
_DIGITS = re.compile(r"(\d+)")
_ZERO = "0.00000000"

Pass = Iterator[tuple[int, str, str, str]]  # (ns, stream, combined text, raw data)
CHUNK = 256  # frames per chunk of the fast path (Passes.chunk)
_Chunk = tuple[bytes, tuple[int, ...], tuple[int, ...], int]  # template, ids, spans, frames


def _kind(stream: str) -> str:
    kind = stream.split("@", 1)[1] if "@" in stream else stream
    return "depth" if kind == "depth@100ms" else kind


class Passes:
    """The frames of each replay pass, ids shifted so they stay contiguous across passes.

    Why templates: a pass must be rendered as fast as the exchange sends (over a million
    frames/s), so each frame is split once into a ``%``-template and its id values.

    Diff-depth books stay valid too: every pass k ≥ 1 starts with one *bridge* diff (its
    own update id, ``U == u``) that turns the book as the recording leaves it into the
    book of the first snapshot again, so a client keeping a book sees the same book
    every pass, never a crossed one. Frames that cannot be placed without repeating an
    id (a bookTicker newer than the last diff of the recording) are left out of passes
    k ≥ 1. Streams of other kinds (klines, partial depth) are sent unchanged.

    :meth:`chunk` serves the fastest path (``--speed 0``): :data:`CHUNK` frames at a
    time, already framed for the wire, as one ``bytes`` template per subscriber kind
    (its streams, its envelope), rendered with one ``%`` per chunk.
    """

    def __init__(self, frames: list[Frame]) -> None:
        with _no_gc():
            self._build(frames)

    def _build(self, frames: list[Frame]) -> None:
        # what the exchange needs to know of the recording, without keeping its frames
        self.symbol = symbol_of(frames)
        self.symbols = tuple(symbols_of(frames))
        self.streams = frozenset(f.stream for f in frames if f.stream)
        self.snapshot = next((f.text for f in frames if not f.stream), None)
        kinds = {st: _kind(st) for st in {f.stream for f in frames}}
        lo_hi: dict[int, tuple[int, int]] = {}
        for space, (stream_kind, k_first, k_last) in _CONTIGUOUS.items():
            own = [f for f in frames if kinds[f.stream] == stream_kind]
            if own:
                lo_hi[space] = (_value(own[0], k_first), _value(own[-1], k_last))
        if len(lo_hi) < len(_CONTIGUOUS):  # a space without its contiguous stream: min..max
            seen: dict[int, list[int]] = {}
            for f in frames:
                for key, space in _SHIFTED.get(kinds[f.stream], ()):
                    if space not in lo_hi:
                        m = re.search(key + r"(\d+)", f.data)
                        if m is not None:
                            seen.setdefault(space, []).append(int(m[1]))
            lo_hi.update({sp: (min(v), max(v)) for sp, v in seen.items()})
        self.bridge: tuple[str, str, str] | None = _bridge(frames)  # (stream, head, data)
        span = {s: hi - lo + 1 for s, (lo, hi) in lo_hi.items()}
        if self.bridge is not None:
            span[BOOK_IDS] += 1  # the bridge diff takes one update id per pass
        self.span = (span.get(TRADE_IDS, 0), span.get(AGG_IDS, 0), span.get(BOOK_IDS, 0))
        self.lo_hi = lo_hi
        # (ns, stream, head, template, ids, id spaces, bytes of data, bytes of the text) of
        # every frame kept in passes k ≥ 1
        self.body: list[tuple[int, str, str, str, tuple[int, ...], tuple[int, ...], int,
                              int]] = []
        append = self.body.append
        match = _DIGITS.match
        for f in frames:
            data, text = f.data, f.text
            head = text[:len(text) - len(data) - 1] if f.stream else ""
            sizes = (len(data), len(text)) if text.isascii() else (len(data.encode()),
                                                                 len(text.encode()))
            keys = _SHIFTED.get(kinds[f.stream])
            if not keys:
                append((f.ns, f.stream, head, data.replace("%", "%%"), (), (), *sizes))
                continue
            found: list[tuple[int, int, int, int]] = []
            for key, space in keys:
                # ids come before any nested value in these payloads: the first match is
                # the top-level key
                at = data.find(key)
                m = match(data, at + len(key)) if at >= 0 else None
                if m is not None:
                    found.append((m.start(1), m.end(1), int(m[1]), space))
            if len(found) > 1:
                found.sort()
            parts: list[str] = []
            vals: list[int] = []
            spaces: list[int] = []
            pos = 0
            for start, end, v, space in found:
                lo, hi = lo_hi[space]
                if not lo <= v <= hi:
                    break  # would repeat an id of the next pass: not looped
                parts.append(data[pos:start])
                vals.append(v)
                spaces.append(space)
                pos = end
            else:
                parts.append(data[pos:])
                tmpl = "%d".join(parts if "%" not in data else
                                 [p.replace("%", "%%") for p in parts])
                append((f.ns, f.stream, head, tmpl, tuple(vals), tuple(spaces), *sizes))

        self.complete = len(self.body) == len(frames)
        # pass 0 is rendered from the templates (ids unshifted: the recorded bytes), unless
        # some frames are not looped: then it is sent from the recording itself
        self.recording = None if self.complete else frames
        self.chunks = (len(self.body) + CHUNK - 1) // CHUNK
        # per chunk: its snapshots and last bookTicker per symbol (what REST serves)
        self.meta: list[tuple[list[int], dict[str, int]]] = []
        for c in range(0, len(self.body), CHUNK):
            snaps: list[int] = []
            tickers: dict[str, int] = {}
            for i in range(c, min(c + CHUNK, len(self.body))):
                stream = self.body[i][1]
                if not stream:
                    snaps.append(i)
                elif stream.endswith("@bookTicker"):
                    tickers[stream.split("@", 1)[0].upper()] = i
            self.meta.append((snaps, tickers))
        self._kinds: dict[tuple[frozenset[str], bool], list[_Chunk]] = {}

    def exact(self, k: int) -> bool:
        """Whether pass ``k`` keeps every id's digit count (so the pre-built frame headers
        still hold the right lengths): true but after ~10^5 passes of a real recording,
        and for pass 0 of a recording with frames that are not looped."""
        for space, (lo, hi) in self.lo_hi.items():
            s = k * self.span[space]
            if not len(str(lo)) == len(str(hi)) == len(str(lo + s)) == len(str(hi + s)):
                return False
        return k > 0 or self.complete

    def render(self, i: int, k: int) -> str:
        """The data (or snapshot) text of body frame ``i`` in pass ``k``."""
        tmpl, vals, spaces = self.body[i][3:6]
        return tmpl % tuple([v + k * self.span[s] for v, s in zip(vals, spaces, strict=True)])

    def bridge_text(self, k: int) -> tuple[str, str, str] | None:
        """(stream, combined text, data) of the bridge diff that opens pass ``k`` ≥ 1."""
        if self.bridge is None or k == 0:
            return None
        stream, head, data = self.bridge
        uid = self.lo_hi[BOOK_IDS][0] + k * self.span[BOOK_IDS] - 1
        text = data % (uid, uid)
        return stream, head + text + "}", text

    def prepare(self, streams: frozenset[str], combined: bool) -> None:
        """Build the chunk templates of one subscriber kind now (else at its first chunk)."""
        if (streams, combined) not in self._kinds:
            self._kinds[streams, combined] = self._kind_chunks(streams, combined)

    def chunk(self, c: int, k: int, streams: frozenset[str], combined: bool) -> tuple[bytes, int]:
        """(wire bytes, frames) of chunk ``c`` of pass ``k`` for a connection receiving
        ``streams`` in that envelope; only when :meth:`exact` holds for ``k``."""
        kind = self._kinds.get((streams, combined))
        if kind is None:
            kind = self._kinds[streams, combined] = self._kind_chunks(streams, combined)
        tmpl, vals, spans, n = kind[c]
        if not n:
            return b"", 0
        if k == 0:
            return tmpl % vals, n
        return tmpl % tuple(map(add, vals, map(mul, spans, repeat(k, len(spans))))), n

    def _kind_chunks(self, streams: frozenset[str], combined: bool) -> list[_Chunk]:
        with _no_gc():
            out: list[_Chunk] = []
            body, span = self.body, self.span
            for c in range(0, len(body), CHUNK):
                parts: list[bytes] = []
                vals: list[int] = []
                spans: list[int] = []
                n = 0
                for i in range(c, min(c + CHUNK, len(body))):
                    _ns, stream, head, tmpl, v, sp, size_data, size_text = body[i]
                    if stream not in streams:
                        continue
                    if combined:
                        parts.append(ws_header(size_text).replace(b"%", b"%%"))
                        parts.append(f"{head}{tmpl}}}".encode())
                    else:
                        parts.append(ws_header(size_data).replace(b"%", b"%%"))
                        parts.append(tmpl.encode())
                    if v:
                        vals += v
                        spans += [span[x] for x in sp]
                    n += 1
                out.append((b"".join(parts), tuple(vals), tuple(spans), n))
            return out

    def frames(self, k: int) -> Pass:
        """Pass ``k`` (0: the recording as it is, byte for byte)."""
        if k == 0 and self.recording is not None:
            for f in self.recording:
                yield f.ns, f.stream, f.text, f.data
            return
        shift = tuple(k * s for s in self.span)
        if self.bridge is not None:
            stream, head, data = self.bridge
            uid = self.lo_hi[BOOK_IDS][0] + shift[BOOK_IDS] - 1
            text = data % (uid, uid)
            yield self.body[0][0], stream, head + text + "}", text
        for ns, stream, head, tmpl, vals, spaces, _sd, _st in self.body:
            n = len(vals)
            if n == 1:
                data = tmpl % (vals[0] + shift[spaces[0]])
            elif n == 2:
                data = tmpl % (vals[0] + shift[spaces[0]], vals[1] + shift[spaces[1]])
            elif n:
                data = tmpl % tuple([v + shift[s] for v, s in zip(vals, spaces, strict=True)])
            else:
                data = tmpl
            yield ns, stream, head + data + "}" if head else data, data


_CACHE_VERSION = 1


def load_passes(path: str | Path, cache: str | Path | None, prepare: bool = False) -> Passes:
    """The :class:`Passes` of a recording (``prepare``: with the chunks of the usual
    subscriber, every stream in the combined envelope, built), read from ``cache`` when it
    was written for this very file, else built (and written there). Why: building takes
    about a second of CPU, and a benchmark starts one exchange per run. The cache is a
    pickle: only ever point it at a file this function wrote."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, _CACHE_VERSION, prepare)
    if cache is not None and Path(cache).exists():
        with _no_gc(), Path(cache).open("rb") as fh:
            cached = pickle.load(fh)
        if cached[0] == key:
            return cached[1]  # what this function wrote
    passes = Passes(load(p))
    if prepare:
        passes.prepare(passes.streams, True)
    if cache is not None:
        tmp = Path(f"{cache}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            pickle.dump((key, passes), fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(cache)  # atomic: a concurrent reader sees the old file or the new
    return passes


def ws_header(size: int) -> bytes:
    """The header of an unmasked, uncompressed server text frame of ``size`` bytes."""
    if size < 126:
        return bytes((0x81, size))
    if size < 65536:
        return bytes((0x81, 126)) + size.to_bytes(2, "big")
    return bytes((0x81, 127)) + size.to_bytes(8, "big")


def _value(f: Frame, key: str) -> int:
    m = re.search(rf'"{key}":(\d+)', f.data)
    assert m is not None, f.data[:80]
    return int(m[1])


def _bridge(frames: list[Frame]) -> tuple[str, str, str] | None:
    """(stream, envelope head, %-template of the data) of the diff that turns the book the
    recording ends with back into the book of its first snapshot; None without both a
    snapshot and one diff-depth stream."""
    snap = next((f for f in frames if not f.stream), None)
    diffs = [f for f in frames if _kind(f.stream) == "depth"]
    if snap is None or not diffs or len({f.stream for f in diffs}) != 1:
        return None
    first = msgspec.json.decode(snap.data)
    start = ({p: q for p, q in first["bids"]}, {p: q for p, q in first["asks"]})
    book = (dict(start[0]), dict(start[1]))
    last_id = first["lastUpdateId"]
    last: dict = {}
    for f in diffs:
        last = msgspec.json.decode(f.data)
        if last["u"] <= last_id:
            continue
        for side, rows in zip(book, (last["b"], last["a"]), strict=True):
            for p, q in rows:
                if float(q) == 0.0:
                    side.pop(p, None)
                else:
                    side[p] = q
    levels = []
    for now, then in zip(book, start, strict=True):
        rows = [[p, _ZERO] for p in now if p not in then]
        rows += [[p, q] for p, q in then.items() if now.get(p) != q]
        levels.append(json.dumps(rows, separators=(",", ":")))
    data = (f'{{"e":"depthUpdate","E":{last["E"]},"s":"{last["s"]}","U":%d,"u":%d,'
            f'"b":{levels[0].replace("%", "%%")},"a":{levels[1].replace("%", "%%")}}}')
    stream = diffs[0].stream
    return stream, f'{{"stream":"{stream}","data":', data
