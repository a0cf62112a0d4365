"""Status bar: feed health in two lines, built from one pulled ``EngineStatus``."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.engine import EngineStatus
from tui.headless import gaps_line, recording_line, rest_line

LIVE_URL_HINT = "no network? try --demo"


def connection_text(status: EngineStatus, live_default: bool) -> tuple[str, str]:
    """(text, style name) for the connection part: open, reconnecting in Ns, replay…"""
    if status.replay is not None:
        done, total, _ = status.replay
        return f"▶ REPLAY {done:,}/{total:,}", "ok"
    if not status.connections:
        return "◌ no streams", "warn"
    opened = [c for c in status.connections if c.state == "open"]
    if len(opened) == len(status.connections):
        streams = sum(c.subscribed for c in opened)
        return f"● connected · {len(opened)} conn · {streams} streams", "ok"
    worst = next(c for c in status.connections if c.state != "open")
    if worst.state == "reconnecting":
        text = f"◌ connecting… retrying in {worst.retry_in_s:.0f}s"
    else:
        text = f"◌ {worst.state}…"
    if worst.last_error:
        text += f" ({worst.last_error[:60]})"
    if live_default and not opened and worst.reconnects == 0:
        text += f" · {LIVE_URL_HINT}"
    return text, "bad"


def status_lines(status: EngineStatus, *, frozen: bool, mode: str, live_default: bool
                 ) -> Text:
    conn, level = connection_text(status, live_default)
    text = Text()
    if frozen:
        text.append(" FROZEN ", "bold reverse")
        text.append(" ")
    if mode != "live":
        text.append(f" {mode.upper()} ", "bold reverse")
        text.append(" ")
    text.append(conn, {"ok": "green", "warn": "yellow", "bad": "bold red"}[level])
    drops = sum(c.dropped for c in status.consumers)
    text.append(f" · {status.total_rate:,.0f} msg/s · reconnects {status.reconnects}"
                f" · {gaps_line(status)} · bad frames {status.bad_frames} · drops {drops}")
    p50 = [s.latency_p50_ms for s in status.streams if s.latency_p50_ms is not None]
    p99 = [s.latency_p99_ms for s in status.streams if s.latency_p99_ms is not None]
    if p50 and p99:
        text.append(f" · latency p50 {max(p50):.0f} / p99 {max(p99):.0f} ms")
    stale = [s.name for s in status.streams if s.stale]
    if stale:
        text.append(f" · STALE {', '.join(stale[:3])}{'…' if len(stale) > 3 else ''}",
                    "bold yellow")
    clock = getattr(status, "clock", None)
    if clock is not None and getattr(clock, "offset_ms", None) is not None:
        text.append(f" · clock {clock.offset_ms:+.0f} ms")
    text.append("\n")
    rec = recording_line(status)
    rec_style = "bold red" if "FAILED" in rec else ("bold green" if rec.startswith("REC ")
                                                      and "off" not in rec else "dim")
    text.append("● " if rec_style == "bold green" else "○ ", rec_style)
    text.append(rec, rec_style)
    text.append(f" · {rest_line(status)}")
    return text


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: 2; background: $panel; padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__(id=id)
        self._text = Text("starting…")

    def show(self, text: Text) -> None:
        if text.plain != self._text.plain:
            self._text = text
            self.refresh()

    def render(self) -> Text:
        return self._text
