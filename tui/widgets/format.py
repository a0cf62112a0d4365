"""Pure formatting and geometry helpers for the market widgets (no Textual, unit-tested).

Kept apart from the widgets so number formats and the price→row mapping can be tested
without a screen, and reused by other panels.
"""

from __future__ import annotations

import math

EIGHTHS = " ▁▂▃▄▅▆▇█"  # volume bars: 8 steps per cell


# -- numbers and times ------------------------------------------------------------------


def price_decimals(price: float) -> int:
    """Decimals that show about five significant digits: 61837.63 → 2, 1.2345 → 4,
    0.51234 → 5, 0.00001234 → 8 (never fewer than 2, never more than 8)."""
    if not price or not math.isfinite(price):
        return 2
    return max(2, min(8, 4 - math.floor(math.log10(abs(price)))))


def format_price(price: float, decimals: int | None = None) -> str:
    """A price with ``decimals`` (default: by magnitude, see :func:`price_decimals`)."""
    if not math.isfinite(price):
        return "-"
    return f"{price:.{price_decimals(price) if decimals is None else decimals}f}"


def format_qty(qty: float) -> str:
    """A quantity in at most ~8 characters: 0.02000, 1.500, 123.4, 12,345, 1.23M."""
    a = abs(qty)
    if a >= 1e9:
        return f"{qty / 1e9:.2f}B"
    if a >= 1e6:
        return f"{qty / 1e6:.2f}M"
    if a >= 1e4:
        return f"{qty:,.0f}"
    if a >= 100:
        return f"{qty:.1f}"
    if a >= 1:
        return f"{qty:.3f}"
    return f"{qty:.5f}"


def format_bps(bps: float) -> str:
    """Basis points, three significant digits: "0.015 bps"; "- bps" without a book."""
    return f"{bps:.3g} bps" if math.isfinite(bps) else "- bps"


def format_imbalance(value: float) -> str:
    """Book imbalance in [−1, 1] with a sign: "+0.27"; "-" without a book."""
    return f"{value:+.2f}" if math.isfinite(value) else "-"


def format_notional(value: float) -> str:
    """Quote-currency value, compact: 1,236.75 → 1.24k, 2,500,000 → 2.50M."""
    a = abs(value)
    if a >= 1e9:
        return f"{value / 1e9:.2f}B"
    if a >= 1e6:
        return f"{value / 1e6:.2f}M"
    if a >= 1e3:
        return f"{value / 1e3:.2f}k"
    return f"{value:.2f}"


def format_time_ms(ms: int) -> str:
    """Epoch milliseconds as ``HH:MM:SS.mmm`` UTC (plain arithmetic: no datetime per row)."""
    s, milli = divmod(ms, 1000)
    m, sec = divmod(s, 60)
    h, minute = divmod(m, 60)
    return f"{h % 24:02d}:{minute:02d}:{sec:02d}.{milli:03d}"


# -- price scale ------------------------------------------------------------------------


def price_range(lows: list[float], highs: list[float]) -> tuple[float, float]:
    """(lo, hi) covering the bars; a flat range is widened so it can be drawn."""
    lo, hi = min(lows), max(highs)
    if hi <= lo:
        pad = max(abs(lo) * 1e-4, 1e-8)
        lo, hi = lo - pad, hi + pad
    return lo, hi


def price_to_sub(price: float, lo: float, hi: float, subrows: int) -> int:
    """The sub-row (0 = bottom … ``subrows - 1`` = top) holding ``price``: the range is
    cut into ``subrows`` equal bins, ``hi`` falls in the top one."""
    if hi <= lo:
        return subrows // 2
    sub = math.floor((price - lo) / (hi - lo) * subrows)
    return min(subrows - 1, max(0, sub))


def row_price(row: int, lo: float, hi: float, rows: int) -> float:
    """The price at the middle of screen row ``row`` (0 = top) of a ``rows``-high chart."""
    return lo + (rows - row - 0.5) / rows * (hi - lo)


def axis_label_rows(rows: int, every: int = 4) -> list[int]:
    """Rows (0 = top) that carry a price label: the top, every ``every`` rows, the bottom."""
    if rows <= 0:
        return []
    out = list(range(0, rows, every))
    if rows - 1 - out[-1] >= every // 2:
        out.append(rows - 1)
    return out


# -- glyphs -----------------------------------------------------------------------------


def candle_cell(top_body: bool, bottom_body: bool, top_wick: bool, bottom_wick: bool) -> str:
    """One cell of a candle from its two half-cells: body (half blocks) beats wick (box
    lines); a cell half body, half wick shows the body half."""
    if top_body and bottom_body:
        return "█"
    if top_body:
        return "▀"
    if bottom_body:
        return "▄"
    if top_wick and bottom_wick:
        return "│"
    if top_wick:
        return "╵"
    if bottom_wick:
        return "╷"
    return " "


def candle_column(open_: float, high: float, low: float, close: float, lo: float, hi: float,
                  rows: int) -> list[str]:
    """The glyphs of one candle, top row first, on a ``rows``-high chart of [lo, hi].

    Each row is two sub-rows (half blocks), so a body or wick ends on half a cell; a
    body is at least one sub-row high (a doji is a half block).
    """
    subrows = rows * 2
    body_lo = price_to_sub(min(open_, close), lo, hi, subrows)
    body_hi = price_to_sub(max(open_, close), lo, hi, subrows)
    wick_lo = price_to_sub(low, lo, hi, subrows)
    wick_hi = price_to_sub(high, lo, hi, subrows)
    out = []
    for row in range(rows):
        bottom = 2 * (rows - 1 - row)
        top = bottom + 1
        out.append(candle_cell(body_lo <= top <= body_hi, body_lo <= bottom <= body_hi,
                               wick_lo <= top <= wick_hi, wick_lo <= bottom <= wick_hi))
    return out


def volume_column(volume: float, vmax: float, rows: int) -> list[str]:
    """A volume bar in eighths of a cell, top row first; any volume shows at least ▁."""
    if rows <= 0:
        return []
    if vmax <= 0 or volume <= 0:
        return [" "] * rows
    height = max(1, round(volume / vmax * rows * 8))
    out = []
    for row in range(rows):
        filled = height - 8 * (rows - 1 - row)
        out.append(" " if filled <= 0 else EIGHTHS[min(8, filled)])
    return out
