"""REST request-weight accounting: fixed windows, 429 then 418 bans, per client IP."""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_BAN_S = 3 * 86400.0


@dataclass
class _IpState:
    window: int = -1
    used: int = 0
    limited: bool = False  # a 429 was already returned in this window
    banned_until: float = 0.0  # wall-clock seconds
    bans: int = 0


@dataclass
class Verdict:
    """Outcome of charging one request: status 200 (proceed), 429 or 418."""

    status: int
    used: int
    retry_after: int = 0
    banned_until_ms: int = 0


class WeightLimiter:
    """Binance-style REQUEST_WEIGHT limiter.

    Windows are aligned on multiples of `window_s` of wall-clock time (the minute
    boundary for the default 60 s). Over budget -> 429 + Retry-After to the
    window end; any request while already limited in that window -> 418 ban of
    `ban_s`, doubling per repeat offence (capped at 3 days).
    """

    def __init__(self, limit: int, window_s: float, ban_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self.ban_s = ban_s
        self._ips: dict[str, _IpState] = {}
        self.peak_accepted = 0  # highest per-window weight of any IP on an accepted request
        self.rejected = 0  # 429 and 418 replies

    def _state(self, ip: str, now: float) -> _IpState:
        st = self._ips.setdefault(ip, _IpState())
        win = math.floor(now / self.window_s)
        if win != st.window:
            st.window, st.used, st.limited = win, 0, False
        return st

    def used(self, ip: str, now: float) -> int:
        return self._state(ip, now).used

    def charge(self, ip: str, weight: int, now: float) -> Verdict:
        st = self._state(ip, now)
        if now < st.banned_until:
            self.rejected += 1
            return Verdict(418, st.used, math.ceil(st.banned_until - now),
                           int(st.banned_until * 1000))
        if st.limited:
            duration = min(self.ban_s * 2**st.bans, MAX_BAN_S)
            st.bans += 1
            st.banned_until = now + duration
            self.rejected += 1
            return Verdict(418, st.used, math.ceil(duration), int(st.banned_until * 1000))
        st.used += weight
        if st.used > self.limit:
            st.limited = True
            window_end = (st.window + 1) * self.window_s
            self.rejected += 1
            return Verdict(429, st.used, max(1, math.ceil(window_end - now)))
        self.peak_accepted = max(self.peak_accepted, st.used)
        return Verdict(200, st.used)
