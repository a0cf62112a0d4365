"""Fixed-point helpers: all prices/quantities are integers in units of 1e-8.

Why: Binance prints every price and quantity with exactly 8 decimals; doing the
arithmetic on integers keeps the book, volumes and strings free of float drift.
"""

from __future__ import annotations

SCALE = 100_000_000


def fmt8(units: int) -> str:
    """Format an integer count of 1e-8 units as an 8-decimal string."""
    if units < 0:
        return "-" + fmt8(-units)
    whole, frac = divmod(units, SCALE)
    return f"{whole}.{frac:08d}"


def parse8(text: str) -> int:
    """Parse a decimal string (at most 8 decimals) into 1e-8 units, exactly."""
    text = text.strip()
    neg = text.startswith("-")
    if neg:
        text = text[1:]
    whole, _, frac = text.partition(".")
    if len(frac) > 8:
        raise ValueError(f"more than 8 decimals: {text!r}")
    units = int(whole or "0") * SCALE + int((frac + "00000000")[:8])
    return -units if neg else units


def fmt_ratio(num: int, den: int, decimals: int) -> str:
    """num/den rounded half away from zero to `decimals` places (for P and w fields)."""
    if den == 0:
        return "0." + "0" * decimals if decimals else "0"
    neg = (num < 0) != (den < 0)
    num, den = abs(num), abs(den)
    scaled = (num * 10**decimals * 2 + den) // (2 * den)
    whole, frac = divmod(scaled, 10**decimals)
    body = f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)
    return "-" + body if neg and scaled else body
