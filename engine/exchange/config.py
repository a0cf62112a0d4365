"""Configuration of the local exchange and the per-symbol market parameters."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .fixed import parse8


@dataclass(frozen=True)
class SymbolSpec:
    """Static parameters of one simulated symbol (decimal strings, as exchangeInfo shows)."""

    symbol: str
    base: str
    quote: str
    price: str  # initial mid price
    tick: str  # PRICE_FILTER.tickSize
    step: str  # LOT_SIZE.stepSize
    mean_qty: str  # mean size of one resting order
    update_id0: int  # first order-book update id
    trade_id0: int  # first trade id
    agg_id0: int  # first aggregate trade id
    levels: int = 600  # initial price levels per side

    @property
    def tick_units(self) -> int:
        return parse8(self.tick)

    @property
    def step_units(self) -> int:
        return parse8(self.step)


_KNOWN: dict[str, tuple[str, str, str, str, str, str, int, int, int]] = {
    # symbol: base, quote, price, tick, step, mean_qty, update_id0, trade_id0, agg_id0
    "BTCUSDT": ("BTC", "USDT", "60000.00", "0.01", "0.00001", "0.05",
                50_093_239_189, 3_735_683_259, 3_100_000_000),
    "ETHUSDT": ("ETH", "USDT", "3000.00", "0.01", "0.0001", "1.5",
                35_346_513_512, 1_530_000_000, 1_200_000_000),
    "BNBUSDT": ("BNB", "USDT", "550.00", "0.01", "0.001", "3",
                11_500_000_000, 780_000_000, 640_000_000),
    "SOLUSDT": ("SOL", "USDT", "150.00", "0.01", "0.001", "20",
                13_200_000_000, 905_000_000, 470_000_000),
}


def default_spec(symbol: str) -> SymbolSpec:
    """Realistic parameters for the well-known symbols, generic ones otherwise."""
    known = _KNOWN.get(symbol)
    if known is not None:
        base, quote, price, tick, step, mean, u0, t0, a0 = known
        return SymbolSpec(symbol, base, quote, price, tick, step, mean, u0, t0, a0)
    quote = next((q for q in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "BNB")
                  if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
    return SymbolSpec(symbol, symbol[: -len(quote)] or symbol, quote, "1.0000", "0.0001",
                      "0.1", "500", 1_000_000, 100_000, 50_000)


@dataclass
class ExchangeConfig:
    """Everything configurable about :class:`LocalExchange` (defaults = Binance's values)."""

    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
    seed: int = 1
    rate: float = 50.0  # order-flow operations per second per symbol; 0 = manual; inf = max
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    max_incoming_per_s: int = 5
    max_streams: int = 1024
    lifetime: float = 86400.0
    weight_limit: int = 6000
    weight_window_s: float = 60.0
    ban_seconds: float = 120.0
    clock_offset_ms: int = 0
    recording: str | None = None
    replay_speed: float = 1.0
    record_sent: bool = False
    # --- extras ---
    specs: dict[str, SymbolSpec] = field(default_factory=dict)  # overrides of default_spec
    history: int = 100_000  # trades / aggTrades kept for REST
    max_backlog: int = 50_000  # frames queued per connection before it is dropped (1008)
    backpressure_backlog: int = 2_000  # rate=inf generator waits while a backlog exceeds this
    slow_consumer_s: float = 5.0  # rate=inf: dropped when over the soft backlog this long
    lifetime_notice: bool = False  # send serverShutdown before the lifetime close
    replay_wait_for_subscriber: bool = True  # start replay when someone subscribes to it
    # Benchmarks: start only once *every* recorded stream has a subscriber (or 5 s after
    # the first), so clients that subscribe one stream at a time see the whole replay.
    replay_wait_all: bool = False
    # Benchmarks: replay the recording this many times (0 = until replay_seconds), ids
    # shifted each pass so they stay contiguous (replay.Passes); stop sending once
    # replay_seconds have passed since the replay started (0 = no time limit).
    replay_loops: int = 1
    replay_seconds: float = 0.0
    # Benchmarks: hold the replay until release_replay() (CLI: SIGUSR2), so a client can
    # connect and subscribe while the previous run is still finishing.
    replay_hold: bool = False
    replay_cache: str | None = None  # looped replays: a file keeping what load_passes built
    warmup_ops: int = 200  # order-flow operations run before start so stats are not empty
    history_minutes: int = 0  # trade this long "in the past" first, so klines have history

    def spec(self, symbol: str) -> SymbolSpec:
        return self.specs.get(symbol) or default_spec(symbol)

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate)
