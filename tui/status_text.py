"""Status in words: the lines headless mode prints and the TUI's status bar shows.

Plain strings from a pulled ``EngineStatus`` (no Textual, no Rich), so both front-ends
say the same thing the same way. Cutting text to fit a screen is the caller's job.
"""

from __future__ import annotations

import time

from engine.book.local_book import BookState
from engine.rest.clock_sync import ClockStatus
from engine.status import EngineStatus, StreamStatus
from engine.storage.recorder import RecorderState


def gaps_line(status: EngineStatus) -> str:
    """Id gaps seen, and how many REST backfill closed (or could not)."""
    bf = status.backfill
    if bf is None or not bf.gaps:
        return f"gaps {status.gaps}"
    return (f"gaps {status.gaps} (backfilled {bf.filled}, {bf.rows:,} rows"
            + (f", failed {bf.failed}" if bf.failed else "") + ")")


def book_line(status: EngineStatus) -> str:
    """Local diff-depth books: state, levels, resyncs, and the REST audit tally."""
    books = [b for b in status.books if b.syncs or b.state is BookState.SYNCED or b.applied]
    if not books:
        return ""
    parts = [f"book {b.symbol} {b.state} {b.bid_levels}/{b.ask_levels} lv"
             + (f" resyncs {b.resyncs} ({b.last_resync})" if b.resyncs else "") for b in books]
    ok = sum(b.audits_ok for b in books)
    bad = sum(b.audits_diverged for b in books)
    return " · " + " · ".join(parts) + f" · book audits ok {ok}/diverged {bad}"


def latency_cell(s: StreamStatus) -> str:
    """Offset-corrected receive latency; "n/a" for streams without an event time."""
    if s.latency_p50_ms is None or s.latency_p99_ms is None:
        return "n/a" if s.messages else "-"
    return f"{_ms(s.latency_p50_ms)}/{_ms(s.latency_p99_ms)}"


def _ms(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def clock_line(clock: ClockStatus) -> str:
    """Exchange clock offset (exchange − local) and the round trip it was measured with."""
    if clock.offset_ms is None:
        return "clock offset n/a" + (f" (sync failed ×{clock.failures})" if clock.failures
                                     else " (syncing)")
    off = clock.offset_ms
    text = f"clock offset {off:+.0f}" if abs(off) >= 10 else f"clock offset {off:+.1f}"
    text += f" ms (rtt {_ms(clock.rtt_ms or 0.0)} ms"
    if clock.failures:
        text += f", {clock.failures} failed syncs"
    return text + ")"


def rest_line(status: EngineStatus) -> str:
    """REST weight used of the budget, and any 429/418 pause in force."""
    b = status.budget
    if b is None:
        return "no REST"
    text = f"REST weight {b.used:,}/{b.limit:,}"
    if b.waiting:
        text += f" ({b.waiting} waiting)"
    if b.blocked_for_s > 0:
        text += f" · REST {'BANNED' if b.banned else 'PAUSED'} {b.blocked_for_s:.0f}s: " \
                f"{b.block_reason}"
    if status.symbols_unknown:
        text += f" · UNKNOWN SYMBOLS {', '.join(status.symbols_unknown)}"
    return text


def recording_line(status: EngineStatus) -> str:
    """REC state for humans: rows and bytes written, or why recording failed."""
    rec = status.recording
    if rec is None or rec.state is RecorderState.OFF:
        return "REC off"
    if rec.state is RecorderState.FAILED:
        return f"REC FAILED: {rec.last_error}"
    return (f"REC {rec.rows_written + rec.rows_pending:,} rows ({rec.rows_written:,} on disk, "
            f"{rec.bytes_written / 1e6:,.1f} MB, {rec.files_finished} files) → {rec.directory}")


def utc_time(ns: int) -> str:
    """Recorded time for humans: ISO-8601 UTC with milliseconds."""
    if not ns:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + \
        f".{ns // 1_000_000 % 1000:03d}Z"
