"""The engine against the local exchange over real loopback sockets."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from typing import Any

import msgspec

from engine.binance.rest_rows import decode_depth
from engine.book.local_book import LocalBook
from engine.engine import Engine
from engine.events import DepthUpdate, Event
from engine.exchange import ExchangeConfig, LocalExchange
from engine.subscription import Subscription
from tests.helpers import settings_for, wait_until

ALL_STREAMS = (
    ("streams.depthUpdate.enabled", True),
    ("streams.miniTicker.enabled", True),
    ("streams.kline.interval", "1s"),
)


def wire_view(event: Event) -> dict[str, Any]:
    """The event under its wire keys, local-only fields removed."""
    d = msgspec.to_builtins(event)
    for k in ("__recv_ns", "__conn", "__symbol", "__limit"):
        d.pop(k, None)
    return d


def assert_same(sent: Any, got: Any, path: str = "") -> None:
    """A sent JSON value equals the decoded one: decimal strings as floats, ints exact."""
    if isinstance(sent, dict):
        assert isinstance(got, dict), path
        for key, value in sent.items():
            if key == "e" or (key == "B" and path.endswith(".k")):
                continue  # the struct type is the event type; kline "B" is "Ignore"
            assert key in got, f"{path}.{key} missing"
            assert_same(value, got[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert len(sent) == len(got), path
        for i, (a, b) in enumerate(zip(sent, got, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(sent, str) and isinstance(got, float):
        assert float(sent) == got, path
    else:
        assert sent == got and type(sent) is type(got), f"{path}: {sent!r} != {got!r}"


async def counting_engine(ex: LocalExchange, **conn: Any) -> tuple[Engine, Counter[int], Any]:
    """A started engine whose events are counted per connection id, once it is open."""
    engine = Engine(settings_for(ex, **conn))
    per_conn: Counter[int] = Counter()
    engine.bus.subscribe(lambda e: per_conn.update((e.conn,)), mode="inline")
    await engine.start()
    shard = engine.live.manager.shards[0]
    primary = shard.primary
    await wait_until(lambda: primary.state == "open", 10, "open")
    return engine, per_conn, shard


async def test_every_stream_type_flows_with_exact_values() -> None:
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=400, seed=11, record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex, *ALL_STREAMS))
        received: list[Event] = []
        engine.bus.subscribe(received.append, name="collector", mode="inline")
        await engine.start()
        kinds = {"trade", "aggTrade", "kline", "bookTicker", "depthPartial", "depthUpdate",
                 "miniTicker"}
        await wait_until(lambda: kinds <= {e.kind for e in received}, 15, "every stream type")
        ex.pause()
        conn_id = ex.connections[0].id
        await engine.stop()

    data_frames = [json.loads(text) for cid, text in ex.sent_log if cid == conn_id]
    data_frames = [f for f in data_frames if "stream" in f]
    assert len(data_frames) == len(received), "every sent event arrived exactly once"
    for frame, event in zip(data_frames, received, strict=True):
        assert_same(frame["data"], wire_view(event), frame["stream"])
        if event.kind == "depthPartial":
            assert event.symbol == "BTCUSDT"  # from the stream name: not on the wire
    counts = Counter(e.kind for e in received)
    assert all(counts[k] > 0 for k in kinds), counts
    assert engine.status().bad_frames == 0


def assert_wire_fields(sent: dict[str, Any], got: dict[str, Any], where: str) -> None:
    """``assert_same`` on every key sent, and every key the wire view adds beyond those
    (fields the frame lacks: spot bookTicker E/T, 2024 trade b/a) holds its empty default."""
    assert_same(sent, got, where)
    extra = {k: v for k, v in got.items() if k not in sent}
    assert all(v in (0, None) for v in extra.values()), f"{where}: invented {extra}"


async def test_recorded_frames_replayed_by_the_exchange_decode_identically(shared_dir) -> None:
    """Real frames, replayed byte-identical by the exchange, through the engine's receive
    path (socket → FrameReader → decode_batch → gate → bus): every value as the raw JSON
    says. Nothing expected here comes from a decoder."""
    path = shared_dir / "realdata/hftbacktest/btcusdt_20240808.first2000lines.txt"
    recorded: list[str] = []
    for line in path.read_text().splitlines():
        _, _, frame = line.partition(" ")
        if frame.startswith('{"stream"'):
            recorded.append(frame)
    assert len(recorded) == 1999  # 2000 lines, one of them the REST snapshot
    cfg = ExchangeConfig(symbols=("BTCUSDT",), recording=str(path), replay_speed=0,
                         record_sent=True)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(
            ex, ("streams.depthUpdate.enabled", True), ("streams.aggTrade.enabled", False),
            ("streams.kline.enabled", False), ("streams.depthPartial.enabled", False)))
        got: list[Event] = []
        engine.bus.subscribe(got.append, mode="inline")
        await engine.start()
        await wait_until(lambda: len(got) >= len(recorded), 20, "all recorded frames")
        await engine.stop()
    sent = [text for _, text in ex.sent_log if text.startswith('{"stream"')]
    assert sent == recorded  # the oracle sent exactly the recording, in order
    assert len(got) == len(sent)
    kinds = {"trade": "trade", "bookTicker": "bookTicker", "depth@100ms": "depthUpdate"}
    for text, event in zip(sent, got, strict=True):
        frame = json.loads(text)
        stream = frame["stream"]
        assert (event.kind, event.symbol) == (kinds[stream.split("@", 1)[1]], "BTCUSDT"), stream
        assert_wire_fields(frame["data"], wire_view(event), stream)
    assert Counter(e.kind for e in got) == {"depthUpdate": 187, "bookTicker": 1515,
                                            "trade": 297}  # INDEX.md's counts
    assert engine.status().bad_frames == 0


async def test_server_side_kills_reconnect_resubscribe_backoff_capped() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        settings = settings_for(ex, backoff_initial_s=0.01, backoff_max_s=0.08,
                                backoff_reset_after_s=600)
        engine = Engine(settings)
        per_conn: Counter[int] = Counter()
        engine.bus.subscribe(lambda e: per_conn.update((e.conn,)), mode="inline")
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: primary.state == "open", 10, "open")
        wanted = set(Subscription(settings.streams, settings.symbols).names())
        for round_ in range(8):
            conn = primary.conn_id
            await wait_until(lambda c=conn: per_conn[c] >= 20, 10, f"data on conn {conn}")
            server_side = ex.connections
            assert len(server_side) == 1 and server_side[0].streams == wanted
            (ex.faults.drop_all if round_ % 2 else ex.faults.close_all)()
            await wait_until(lambda c=conn: primary.conn_id != c and primary.state == "open", 10,
                             "a new connection")
        await wait_until(lambda: per_conn[primary.conn_id] >= 20, 10, "data after the last kill")
        assert shard.reconnects == 8
        ceilings = [c for c, _ in primary.delays]
        assert ceilings[:4] == [0.01, 0.02, 0.04, 0.08]
        assert ceilings[4:] == [0.08] * (len(ceilings) - 4)
        assert all(0 <= d <= c for c, d in primary.delays)
        assert ex.stats.connections_accepted == 9
        await engine.stop()


async def test_client_never_gives_up_while_the_exchange_is_down() -> None:
    ex = LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300))
    await ex.start(port=0)
    port = ex.port
    engine = Engine(settings_for(ex, backoff_initial_s=0.01, backoff_max_s=0.05))
    seen: list[int] = []
    engine.bus.subscribe(lambda e: seen.append(e.conn), mode="inline")
    await engine.start()
    await wait_until(lambda: len(seen) > 10, 10, "first data")
    await ex.stop()
    shard = engine.live.manager.shards[0]
    primary = shard.primary
    await wait_until(lambda: primary.connects >= 15, 20, "many failed attempts")
    assert primary.state in ("reconnecting", "connecting")
    assert "connect call failed" in primary.last_error.lower()
    ex2 = LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300))
    await ex2.start(port=port)
    before = len(seen)
    await wait_until(lambda: len(seen) > before + 10 and primary.state == "open", 10,
                     "data after the exchange came back")
    await engine.stop()
    await ex2.stop()


async def test_silent_stall_is_detected_and_connection_replaced() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        engine, per_conn, shard = await counting_engine(ex, idle_ping_after_s=0.25,
                                                        stale_after_s=0.6)
        primary = shard.primary
        first = primary.conn_id
        await wait_until(lambda: per_conn[first] > 10, 10, "data")
        ex.faults.stall(True)  # socket stays open; nothing arrives, pings unanswered
        await wait_until(lambda: primary.stale_replacements == 1, 10, "stall detected")
        assert "stale" in primary.last_error
        await wait_until(lambda: per_conn[primary.conn_id] > 10 and primary.conn_id != first, 10,
                         "data on the replacement")
        await engine.stop()


async def test_quiet_but_alive_connection_is_not_replaced() -> None:
    """Idle pings keep a healthy connection with no market data from being called stale."""
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=0)) as ex:
        quiet = [(f"streams.{k}.enabled", False) for k in ("kline", "bookTicker", "depthPartial")]
        engine = Engine(settings_for(ex, *quiet, idle_ping_after_s=0.3, stale_after_s=1.0))
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: primary.state == "open", 10, "open")
        client = primary.client
        assert client is not None
        await wait_until(lambda: client.pongs_received >= 8, 10, "pongs to idle pings")
        assert ex.stats.frames_sent == 0  # nothing but pongs kept it alive
        assert primary.stale_replacements == 0 and shard.reconnects == 0
        await engine.stop()


async def test_runtime_toggle_subscribes_on_the_open_connection() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=300)) as ex:
        engine = Engine(settings_for(
            ex, ("symbols", ["BTCUSDT", "ETHUSDT"]), ("streams.bookTicker.enabled", False)))
        counts: Counter[str] = Counter()
        engine.bus.subscribe(lambda e: counts.update((e.kind,)), mode="inline")
        await engine.start()
        await wait_until(lambda: counts["trade"] > 10, 10, "trades")
        assert counts["bookTicker"] == 0
        server_conn = ex.connections[0]

        engine.set_stream("bookTicker", True)
        await wait_until(lambda: counts["bookTicker"] > 10, 10, "bookTicker after SUBSCRIBE")
        subs = [r for r in server_conn.control_log if r and r.get("method") == "SUBSCRIBE"]
        assert sorted(subs[-1]["params"]) == ["btcusdt@bookTicker", "ethusdt@bookTicker"]

        engine.set_stream("bookTicker", False)
        await wait_until(lambda: not any("bookTicker" in s for s in server_conn.streams), 10,
                         "UNSUBSCRIBE applied")
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: not any("bookTicker" in s for s in primary.active), 10, "ack")
        frozen = counts["bookTicker"]
        trades = counts["trade"]
        await wait_until(lambda: counts["trade"] > trades + 50, 10, "more trades")
        assert counts["bookTicker"] == frozen
        assert ex.stats.connections_accepted == 1 and shard.reconnects == 0
        await engine.stop()


async def test_rapid_toggles_stay_under_binance_message_rate() -> None:
    """12 toggles in a burst: paced under 5 msg/s, so the exchange never closes us (1008)."""
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=100)) as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        shard = engine.live.manager.shards[0]
        primary = shard.primary
        await wait_until(lambda: primary.state == "open", 10, "open")
        for _ in range(12):
            engine.toggle_stream("miniTicker")
            await asyncio.sleep(0)
            engine.toggle_stream("miniTicker")
            engine.toggle_stream("miniTicker")
            await asyncio.sleep(0.05)
        await wait_until(lambda: "btcusdt@miniTicker" in ex.connections[0].streams, 10,
                         "final state reached")
        assert shard.reconnects == 0 and ex.stats.connections_accepted == 1
        await engine.stop()


async def test_streams_shard_across_connections_past_the_limit() -> None:
    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]
    async with LocalExchange(ExchangeConfig(symbols=tuple(symbols), rate=200)) as ex:
        settings = settings_for(ex, ("symbols", symbols), max_streams_per_connection=4)
        engine = Engine(settings)
        by_stream: defaultdict[tuple[str, str], int] = defaultdict(int)
        engine.bus.subscribe(lambda e: by_stream.__setitem__(
            (e.kind, e.symbol), by_stream[(e.kind, e.symbol)] + 1), mode="inline")
        await engine.start()
        names = Subscription(settings.streams, settings.symbols).names()
        assert len(names) == 15
        assert len(engine.live.manager.shards) == 4
        await wait_until(lambda: len(ex.connections) == 4 and all(
            len(c.streams) > 0 for c in ex.connections), 10, "4 connections")
        assert all(len(c.streams) <= 4 for c in ex.connections)
        assert set().union(*(c.streams for c in ex.connections)) == set(names)
        await wait_until(lambda: all(by_stream[("trade", s)] > 0 for s in symbols), 10,
                         "trades on every symbol")
        await engine.stop()


async def test_server_shutdown_triggers_reconnect_before_the_close() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        engine, per_conn, shard = await counting_engine(ex, backoff_initial_s=5.0,
                                                        backoff_max_s=5.0)
        primary = shard.primary
        first = primary.conn_id
        await wait_until(lambda: per_conn[first] > 10, 10, "data")
        ex.faults.server_shutdown(close_after_s=30)
        # reconnects at once (no 5 s backoff) and long before the server's 30 s close
        await wait_until(lambda: primary.conn_id != first and per_conn[primary.conn_id] > 10, 4,
                         "replacement connection")
        assert primary.server_shutdowns == 1
        await engine.stop()


async def test_malformed_frames_are_counted_and_the_feed_continues() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=300)) as ex:
        engine = Engine(settings_for(ex))
        got: list[int] = []
        engine.bus.subscribe(lambda e: got.append(e.conn), mode="inline")
        await engine.start()
        await wait_until(lambda: len(got) > 10, 10, "data")
        ex.faults.send_malformed(5)
        await wait_until(lambda: engine.status().bad_frames == 5, 10, "bad frames counted")
        n = len(got)
        await wait_until(lambda: len(got) > n + 20, 10, "data after bad frames")
        assert engine.live.manager.shards[0].reconnects == 0
        await engine.stop()


async def test_raising_and_slow_consumers_do_not_stop_the_feed() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=500)) as ex:
        engine = Engine(settings_for(ex))
        good: list[int] = []

        def broken(e: Event) -> None:
            raise ValueError("bad model")

        async def slow(e: Event) -> None:
            await asyncio.sleep(0.5)

        engine.bus.subscribe(broken, name="broken", mode="inline")
        slow_c = engine.bus.subscribe(slow, name="slow", capacity=5)
        engine.bus.subscribe(lambda e: good.append(1), name="good", mode="inline")
        await engine.start()
        await wait_until(lambda: len(good) > 500, 15, "events to the good consumer")
        st = {c.name: c for c in engine.status().consumers}
        assert st["broken"].errors >= 500 and st["broken"].error_kinds.keys() == {"ValueError"}
        assert st["slow"].dropped > 0 and slow_c.pending() <= 5
        await engine.stop(drain_timeout=0.1)


async def book_engine(ex: LocalExchange) -> tuple[Engine, LocalBook]:
    """A started engine streaming BTCUSDT diffs into a LocalBook (inline consumer)."""
    engine = Engine(settings_for(ex, ("streams.depthUpdate.enabled", True)))
    book = LocalBook("BTCUSDT")
    engine.bus.subscribe(book.on_diff, kinds=[DepthUpdate], mode="inline")
    await engine.start()
    return engine, book


async def sync_book(engine: Engine, book: LocalBook) -> None:
    """Binance's procedure: buffer, then fetch snapshots until one bridges the buffer."""
    await wait_until(lambda: len(book.buffer) >= 2, 10, "buffered diffs")
    for _ in range(5):
        body = await engine.live.rest.get("/api/v3/depth", {"symbol": "BTCUSDT", "limit": 5000})
        if book.on_snapshot(decode_depth(body, "BTCUSDT", 5000, 0)):
            return
    raise AssertionError("no snapshot bridged the buffered diffs")


def assert_same_book(market: Any, book: LocalBook) -> None:
    bids, asks = market.book_levels()
    assert {float(p): float(q) for p, q in bids.items()} == dict(book.bids)
    assert {float(p): float(q) for p, q in asks.items()} == dict(book.asks)


async def test_engine_book_from_diffs_and_snapshot_equals_exchange_book() -> None:
    """Engine path: diffs through the bus into LocalBook + a REST snapshot via RestClient."""
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=3000, seed=5)) as ex:
        engine, book = await book_engine(ex)
        await sync_book(engine, book)
        market = ex.market("BTCUSDT")
        start = market.update_id
        await wait_until(lambda: market.update_id - start > 5000, 15, "thousands of book changes")
        ex.pause()
        await wait_until(lambda: book.update_id == market.update_id, 10, "book caught up")
        await engine.stop()
    assert book.gaps == 0 and book.resyncs == 0
    assert_same_book(market, book)
    assert len(book.bids) > 100


async def test_gap_in_diff_ids_sends_the_book_back_to_resync() -> None:
    async with LocalExchange(ExchangeConfig(symbols=("BTCUSDT",), rate=2000, seed=6)) as ex:
        engine, book = await book_engine(ex)
        await sync_book(engine, book)
        synced_at = book.update_id
        # a skipped id the snapshot already covers is no loss: skip one past it
        await wait_until(lambda: book.update_id > synced_at, 10, "a diff applied")
        ex.faults.skip_depth_id("BTCUSDT")
        await wait_until(lambda: book.gaps == 1, 10, "gap detected")
        assert book.needs_snapshot
        await sync_book(engine, book)
        market = ex.market("BTCUSDT")
        ex.pause()
        await wait_until(lambda: book.update_id == market.update_id, 10, "book caught up")
        await engine.stop()
    assert_same_book(market, book)


async def test_client_answers_server_pings_and_keeps_the_connection() -> None:
    # pings every 0.3 s (our pongs count toward the server's 5 msg/s limit, as on Binance)
    cfg = ExchangeConfig(symbols=("BTCUSDT",), rate=50, ping_interval=0.3, pong_timeout=1.0)
    async with LocalExchange(cfg) as ex:
        engine = Engine(settings_for(ex))
        await engine.start()
        await wait_until(lambda: len(ex.connections) == 1, 10, "connected")
        server_conn = ex.connections[0]
        await wait_until(lambda: server_conn.pongs_received >= 6, 10, "pongs to server pings")
        shard = engine.live.manager.shards[0]
        assert shard.reconnects == 0 and not server_conn.closed
        await engine.stop()
