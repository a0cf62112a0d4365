"""IdGate: first-arrival-wins de-duplication and id-continuity check, on the receive path.

Every decoded market event of every connection passes one shared gate *before* the bus
(:class:`engine.feed.receiver.Receiver`), so two connections carrying the same streams (a
make-before-break rollover, ``connection.redundancy: 2``) deliver each event once, and
an event dropped here never reaches a consumer or the recorder.

Rules, per (event type, symbol):

* ``Trade`` (``trade_id``), ``AggTrade`` (``agg_id``) and ``DepthUpdate`` (``U..u``) are
  contiguous on Binance. An event whose ids are all at or below the high-water mark
  (hwm) is a duplicate and dropped; one that starts above ``hwm + 1`` opens a gap, which
  is published as a ``LedgerEntry(what=Ledger.GAP)`` (``first_missing`` .. ``last_missing``,
  ``last_good`` = first_missing - 1) and remembered. A late id that falls into a gap
  still open is *accepted* (reordering, or a slower redundant connection), and when a
  gap is filled completely ``Ledger.GAP_FILLED`` with the same range is
  published so the ledger can retract it. At most ``max_open_gaps`` gaps per key are
  remembered (the oldest is forgotten first; its late ids are then dropped).
  A depth event straddling the hwm (``U <= hwm < u``) is accepted: it carries new ids.
* ``BookTicker`` (``update_id``), ``PartialDepth`` (``last_update_id``) and ``Kline``
  (``(open_time, last trade id, closed)``, per interval) have no contiguous ids: only
  duplicates are dropped. A value above the hwm passes. The connection that set the
  hwm may repeat it (an unchanged partial book or kline is re-sent every period) or
  send an older one (reordered on that socket); another connection's equal or older
  value is a duplicate. Once the connection that set the hwm is ``retire``\\ d (closed),
  the next connection to deliver the same value adopts the key.

Cost: the fast path (``id == hwm + 1``, or a larger value for the dedup-only kinds) is
one dict lookup on the symbol and a couple of compares and attribute stores; nothing is
allocated per event. Everything else (gaps, late fills, duplicates) is off that path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.binance.streams import stream_name
from engine.events import (
    AggTrade,
    BookTicker,
    DepthUpdate,
    Kline,
    Ledger,
    LedgerEntry,
    PartialDepth,
    Trade,
)

MAX_OPEN_GAPS = 64  # remembered (still fillable) gaps per key
MAX_HOLES = 256  # unfilled sub-ranges per gap; a gap fragmented further is forgotten

_KINDS: dict[type, str] = {Trade: "trade", AggTrade: "aggTrade", DepthUpdate: "depthUpdate"}


class _Gap:
    """A reported gap: its original range, and the sub-ranges still missing."""

    __slots__ = ("first", "holes", "last", "start_ns")

    def __init__(self, first: int, last: int, start_ns: int) -> None:
        self.first = first
        self.last = last
        self.start_ns = start_ns
        self.holes: list[list[int]] = [[first, last]]


class _Seq:
    """State of one contiguous-id key: hwm, receive time of the hwm, open gaps."""

    __slots__ = ("gaps", "hwm", "ns")

    def __init__(self, hwm: int, ns: int) -> None:
        self.hwm = hwm
        self.ns = ns
        self.gaps: list[_Gap] = []


class _Mark:
    """State of one dedup-only key: the largest value seen and who delivered it."""

    __slots__ = ("conn", "hwm")

    def __init__(self, hwm: Any, conn: int) -> None:
        self.hwm = hwm
        self.conn = conn


class IdGate:
    """Shared by every connection of a :class:`~engine.feed.manager.StreamManager`."""

    KINDS = (Trade, AggTrade, DepthUpdate, BookTicker, PartialDepth, Kline)

    def __init__(self, max_open_gaps: int = MAX_OPEN_GAPS) -> None:
        self.max_open_gaps = max_open_gaps
        self._trade: dict[str, _Seq] = {}
        self._agg: dict[str, _Seq] = {}
        self._depth: dict[str, _Seq] = {}
        self._book: dict[str, _Mark] = {}
        self._partial: dict[str, _Mark] = {}
        self._kline: dict[tuple[str, str], _Mark] = {}
        self._seq: dict[type, dict[str, _Seq]] = {
            Trade: self._trade, AggTrade: self._agg, DepthUpdate: self._depth}
        self._marks: dict[type, dict[str, _Mark]] = {
            BookTicker: self._book, PartialDepth: self._partial}
        self._retired: set[int] = set()
        self.gaps = 0  # gaps reported
        self.gaps_filled = 0  # reported gaps later filled completely by late ids
        self.gaps_forgotten = 0  # gaps no longer fillable (bound reached)
        self.duplicates = 0  # events dropped
        self.late = 0  # events accepted below the hwm (into a gap, or reordered)
        self.overlaps = 0  # depth events straddling the hwm (accepted)

    # -- the receive path -----------------------------------------------------------------

    def filter(self, events: Iterable[Any], out: list[Any]) -> None:
        """Append to ``out`` every event that passes, in order, with gap and gap_filled
        ledger entries placed just before the event that revealed them. Events of other
        types pass untouched."""
        trade, agg, depth = self._trade, self._agg, self._depth
        book, partial = self._book, self._partial
        append = out.append
        for ev in events:
            t = type(ev)
            if t is Trade:
                st = trade.get(ev.symbol)
                if st is not None and ev.trade_id == st.hwm + 1:
                    st.hwm = ev.trade_id
                    st.ns = ev.recv_ns
                    append(ev)
                elif self._seq_slow(st, trade, ev, ev.trade_id, ev.trade_id, out):
                    append(ev)
            elif t is AggTrade:
                st = agg.get(ev.symbol)
                if st is not None and ev.agg_id == st.hwm + 1:
                    st.hwm = ev.agg_id
                    st.ns = ev.recv_ns
                    append(ev)
                elif self._seq_slow(st, agg, ev, ev.agg_id, ev.agg_id, out):
                    append(ev)
            elif t is DepthUpdate:
                st = depth.get(ev.symbol)
                if st is not None and ev.first_update_id == st.hwm + 1:
                    st.hwm = ev.final_update_id
                    st.ns = ev.recv_ns
                    append(ev)
                elif self._seq_slow(st, depth, ev, ev.first_update_id, ev.final_update_id,
                                    out):
                    append(ev)
            elif t is BookTicker:
                mk = book.get(ev.symbol)
                if mk is not None and ev.update_id > mk.hwm:
                    mk.hwm = ev.update_id
                    mk.conn = ev.conn
                    append(ev)
                elif self._mark_slow(mk, book, ev.symbol, ev, ev.update_id):
                    append(ev)
            elif t is PartialDepth:
                mk = partial.get(ev.symbol)
                if mk is not None and ev.last_update_id > mk.hwm:
                    mk.hwm = ev.last_update_id
                    mk.conn = ev.conn
                    append(ev)
                elif self._mark_slow(mk, partial, ev.symbol, ev, ev.last_update_id):
                    append(ev)
            elif t is Kline:
                bar = ev.bar
                key = (ev.symbol, bar.interval)
                if self._mark_slow(self._kline.get(key), self._kline, key, ev,
                                   (bar.open_time, bar.last_trade_id, bar.closed)):
                    append(ev)
            else:
                append(ev)

    # -- control --------------------------------------------------------------------------

    def seed(self, typ: type, symbol: str, last_id: int, recv_ns: int = 0) -> None:
        """Start (or advance) a key at ``last_id``, e.g. the last id a restarted recorder
        has on disk: ids up to it are duplicates, a first id above ``last_id + 1`` is a
        gap from ``last_id + 1``. Kinds without one id (Kline, others) are ignored."""
        table = self._seq.get(typ)
        if table is not None:
            st = table.get(symbol)
            if st is None:
                table[symbol] = _Seq(last_id, recv_ns)
            elif last_id > st.hwm:
                st.hwm, st.ns = last_id, recv_ns
            return
        marks = self._marks.get(typ)
        if marks is not None:
            mk = marks.get(symbol)
            if mk is None or last_id > mk.hwm:
                marks[symbol] = _Mark(last_id, 0)

    def retire(self, conn: int) -> None:
        """Connection ``conn`` is closed: its periodic repeats no longer own any key."""
        self._retired.add(conn)

    def last_id(self, typ: type, symbol: str) -> int | None:
        """The high-water mark of a contiguous or dedup-only key (None: nothing seen)."""
        st = self._seq.get(typ, {}).get(symbol) or self._marks.get(typ, {}).get(symbol)
        return None if st is None else st.hwm

    def open_gaps(self, typ: type, symbol: str) -> list[tuple[int, int]]:
        """Reported gaps of one key that are still (partly) missing, as (first, last)."""
        st = self._seq.get(typ, {}).get(symbol)
        return [(g.first, g.last) for g in st.gaps] if st is not None else []

    # -- off the fast path ------------------------------------------------------------------

    def _seq_slow(self, st: _Seq | None, table: dict[str, _Seq], ev: Any, first: int,
                  last: int, out: list[Any]) -> bool:
        if st is None:
            table[ev.symbol] = _Seq(last, ev.recv_ns)
            return True
        hwm = st.hwm
        if first > hwm + 1:  # pragma: no mutate (equivalent: id == hwm + 1 took the fast path)
            self._gap(st, ev, hwm + 1, first - 1, out)
            st.hwm, st.ns = last, ev.recv_ns
            return True
        if last > hwm:  # U <= hwm < u: part known, part new
            if st.gaps:
                self._fill(st, ev, first, hwm, out)
            self.overlaps += 1
            st.hwm, st.ns = last, ev.recv_ns
            return True
        if st.gaps and self._fill(st, ev, first, last, out):
            self.late += 1
            return True
        self.duplicates += 1
        return False

    def _gap(self, st: _Seq, ev: Any, first: int, last: int, out: list[Any]) -> None:
        self.gaps += 1
        gaps = st.gaps
        if len(gaps) >= self.max_open_gaps:
            gaps.pop(0)
            self.gaps_forgotten += 1
        gaps.append(_Gap(first, last, st.ns))
        n = last - first + 1
        out.append(LedgerEntry(
            what=Ledger.GAP, stream=_name(type(ev), ev.symbol), symbol=ev.symbol,
            first_missing=first, last_good=first - 1, last_missing=last, start_ns=st.ns,
            end_ns=ev.recv_ns, recv_ns=ev.recv_ns, conn=ev.conn,
            detail=f"{n} id{'s' if n != 1 else ''} missing"))

    def _fill(self, st: _Seq, ev: Any, first: int, last: int, out: list[Any]) -> bool:
        """Carve [first, last] out of the open gaps; True if any missing id was in it."""
        hit = False  # pragma: no mutate (equivalent: None is as falsy; callers test truth)
        for gap in list(st.gaps):
            # A shortcut: the hole loop would copy a disjoint gap's holes unchanged.
            if last < gap.first or first > gap.last:  # pragma: no mutate (equivalent: shortcut)
                continue
            holes: list[list[int]] = []
            for a, b in gap.holes:
                if last < a or first > b:
                    holes.append([a, b])
                    continue
                hit = True
                if a < first:
                    holes.append([a, first - 1])
                if last < b:
                    holes.append([last + 1, b])
            gap.holes = holes
            if not holes:
                st.gaps.remove(gap)
                self.gaps_filled += 1
                out.append(LedgerEntry(
                    what=Ledger.GAP_FILLED, stream=_name(type(ev), ev.symbol), symbol=ev.symbol,
                    first_missing=gap.first, last_good=gap.first - 1, last_missing=gap.last,
                    start_ns=gap.start_ns, end_ns=ev.recv_ns, recv_ns=ev.recv_ns,
                    conn=ev.conn, detail="filled by late ids" if ev.conn else
                    "filled by backfilled ids"))
            elif len(holes) > MAX_HOLES:
                st.gaps.remove(gap)
                self.gaps_forgotten += 1
        return hit

    def _mark_slow(self, mk: _Mark | None, table: dict[Any, _Mark], key: Any, ev: Any,
                   value: Any) -> bool:
        conn = ev.conn
        if mk is None:
            table[key] = _Mark(value, conn)
            return True
        if value > mk.hwm:
            mk.hwm, mk.conn = value, conn
            return True
        if conn == mk.conn:  # the owner repeats (periodic) or reorders on its own socket
            if value < mk.hwm:
                self.late += 1
            return True
        if value == mk.hwm and (mk.conn == 0 or mk.conn in self._retired):
            mk.conn = conn  # the owner is gone: this connection takes the key over
        self.duplicates += 1
        return False


def _name(typ: type, symbol: str) -> str:
    return stream_name(_KINDS[typ], symbol)
