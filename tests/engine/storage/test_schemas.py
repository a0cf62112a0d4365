"""Arrow schemas per stream type: exact types and lossless values from decoded events."""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq

from engine.events import BookTicker, DepthUpdate, Trade
from engine.feed.decode import FrameDecoder
from engine.storage.schemas import LEVELS, MS, NS, SCHEMA_VERSION, SCHEMAS, ColumnBuffer


def test_every_schema_has_the_common_columns_and_typed_fields() -> None:
    for kind, schema in SCHEMAS.items():
        assert schema.field("recv_time").type == NS, kind
        assert schema.field("conn_id").type == pa.int64(), kind
        assert schema.field("seq").type == pa.int64(), kind
        assert "symbol" not in schema.names, kind  # a partition key, not a column
        assert schema.metadata[b"binance_live.schema_version"] == str(SCHEMA_VERSION).encode()
        for f in schema:
            if f.name.endswith("_id") or f.name in ("trades", "limit"):
                assert f.type == pa.int64(), (kind, f.name)
            if f.name.endswith("_time") and f.name != "recv_time":
                assert f.type == MS, (kind, f.name)
            if f.name in ("bids", "asks"):
                assert f.type == LEVELS, (kind, f.name)
    assert SCHEMAS["trade"].field("price").type == pa.float64()
    assert SCHEMAS["trade"].field("buyer_is_maker").type == pa.bool_()


def test_real_frames_round_trip_through_parquet(shared_dir, tmp_path) -> None:
    path = shared_dir / "realdata/hftbacktest/btcusdt_20240808.gz"
    dec = FrameDecoder()
    buffers = {t: ColumnBuffer(t) for t in (Trade, BookTicker, DepthUpdate)}
    events = []
    for line in gzip.decompress(path.read_bytes()).splitlines()[:5000]:
        ns, _, frame = line.partition(b" ")
        if not frame.startswith(b'{"stream"'):
            continue
        ev = dec.decode(frame, int(ns), 7)
        events.append(ev)
        buffers[type(ev)].append(ev, seq=len(events))
    for typ, buf in buffers.items():
        n = len(buf)
        table = buf.take()
        assert len(buf) == 0 and table.num_rows == n > 0
        pq.write_table(table, tmp_path / f"{typ.kind}.parquet", compression="zstd")
        back = pq.read_table(tmp_path / f"{typ.kind}.parquet")
        assert back.schema.equals(SCHEMAS[typ.kind], check_metadata=False)
        originals = [e for e in events if type(e) is typ]
        assert back.column("recv_time").cast(pa.int64()).to_pylist() == [
            e.recv_ns for e in originals]
        # times as epoch ints (no pandas needed for ns timestamps)
        for i, f in enumerate(back.schema):
            if pa.types.is_timestamp(f.type):
                back = back.set_column(i, f.name, back.column(i).cast(pa.int64()))
        rows = back.to_pylist()
        for row, ev in zip(rows, originals, strict=True):
            assert row["conn_id"] == 7 and events[row["seq"] - 1] is ev
            if typ is Trade:
                assert row["trade_id"] == ev.trade_id and row["price"] == ev.price
                assert row["trade_time"] == ev.trade_time and row["event_time"] == ev.event_time
            elif typ is DepthUpdate:
                assert row["final_update_id"] == ev.final_update_id
                assert [(lv["price"], lv["qty"]) for lv in row["bids"]] == ev.bids
                assert [(lv["price"], lv["qty"]) for lv in row["asks"]] == ev.asks
            else:
                assert row["update_id"] == ev.update_id and row["ask_qty"] == ev.ask_qty
