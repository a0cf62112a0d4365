"""Reading a recording back: Parquet into the very same typed events, in arrival order."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ReplayError
from engine.events import Event, LedgerEntry
from engine.storage import layout, schemas
from engine.storage.reader import read_events
from tests.recordings import EXAMPLES, T0, book, builtins, trade, write

# -- reader -----------------------------------------------------------------------------


def test_examples_cover_every_recorded_type() -> None:
    assert set(EXAMPLES) == {*schemas.RECORDED_TYPES, LedgerEntry}


@pytest.mark.parametrize("typ", list(EXAMPLES), ids=lambda t: t.kind)
def test_round_trip_every_recorded_type(tmp_path: Path, typ: type[Event]) -> None:
    """ColumnBuffer → Parquet → read_events gives back the very same struct."""
    event = EXAMPLES[typ]
    write(tmp_path, [event])
    got = read_events(tmp_path)
    assert builtins(got) == builtins([event])
    assert type(got[0]) is typ and got[0].recv_ns == event.recv_ns and got[0].conn == event.conn


def test_all_types_together_in_receive_order(tmp_path: Path) -> None:
    events = list(EXAMPLES.values())
    write(tmp_path, events)
    assert builtins(read_events(tmp_path)) == builtins(events)


def test_order_by_recv_time_then_seq_across_kinds_symbols_and_runs(tmp_path: Path) -> None:
    # Run 1: equal recv_time across kinds is broken by seq, not by kind or file.
    run1 = [trade(T0 + 10, 1), book(T0 + 10, 1), trade(T0 + 20, 2, "ETHUSDT"), book(T0 + 30, 2)]
    seq1 = [5, 4, 6, 7]
    # Run 2 (a restart): seq begins at 0 again, but its recv_time is later.
    run2 = [book(T0 + 1_000, 3), trade(T0 + 2_000, 3), trade(T0 + 2_000, 4, "ETHUSDT")]
    seq2 = [0, 2, 1]
    write(tmp_path, run1, seq1, name="run1")
    write(tmp_path, run2, seq2, name="run2")
    hidden = layout.partition_dir(tmp_path, "trade", "BTCUSDT", T0) / ".run3.parquet.arrows"
    hidden.write_bytes(b"an in-progress segment is never read")
    expected = [run1[1], run1[0], run1[2], run1[3], run2[0], run2[2], run2[1]]
    assert builtins(read_events(tmp_path)) == builtins(expected)


def test_window_kind_and_symbol_filters(tmp_path: Path) -> None:
    events = [trade(T0 + i * 1_000_000_000, i, "ETHUSDT" if i % 3 == 0 else "BTCUSDT")
              for i in range(10)] + [book(T0 + 5_500_000_000)]
    write(tmp_path, events)
    window = read_events(tmp_path, start_ns=T0 + 2_000_000_000, end_ns=T0 + 5_000_000_000)
    assert [e.recv_ns for e in window] == [T0 + s * 1_000_000_000 for s in (2, 3, 4)]
    assert [e.kind for e in read_events(tmp_path, kinds=["bookTicker"])] == ["bookTicker"]
    eth = read_events(tmp_path, symbols=["ethusdt"], kinds=["trade"])
    assert [e.trade_id for e in eth] == [100, 103, 106, 109]  # type: ignore[attr-defined]
    assert read_events(tmp_path, start_ns=T0 + 86_400_000_000_000) == []


def test_reader_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="no such directory"):
        read_events(tmp_path / "missing")
    (tmp_path / "trade").mkdir()
    with pytest.raises(ReplayError, match="no recorded data") as info:
        read_events(tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(ReplayError, match="unknown kind"):
        read_events(tmp_path, kinds=["nope"])


def test_a_recording_from_before_the_ledger_was_renamed_still_reads(tmp_path: Path) -> None:
    """Ledger rows recorded under ``_events/`` (before it was ``_ledger/``) come back as
    ``LedgerEntry`` like new ones, in order with the market events."""
    gap = LedgerEntry(what="gap", stream="btcusdt@trade", symbol="BTCUSDT", first_missing=5,
                      last_good=4, last_missing=6, recv_ns=T0 + 1, conn=1)
    write(tmp_path, [trade(T0, 1), gap, trade(T0 + 2, 2)])
    (tmp_path / layout.LEDGER_DIR).rename(tmp_path / layout.LEGACY_LEDGER_DIR)
    got = read_events(tmp_path)
    assert [type(e).__name__ for e in got] == ["Trade", "LedgerEntry", "Trade"]
    assert builtins([got[1]]) == builtins([gap])
    assert [e.kind for e in read_events(tmp_path, kinds=["ledger"])] == ["ledger"]
