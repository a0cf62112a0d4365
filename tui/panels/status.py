"""Status bar: feed health in two lines, built from one pulled ``EngineStatus``."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from engine.feed.link import LinkState
from engine.status import EngineStatus
from engine.storage.recorder import RecorderState
from tui.status_text import gaps_line, recording_line, rest_line

LIVE_URL_HINT = "no network? try --demo"


def connection_text(status: EngineStatus, live_default: bool) -> tuple[str, str]:
    """(text, style name) for the connection part: open, reconnecting in Ns, replay…"""
    if status.replay is not None:
        return f"▶ REPLAY {status.replay.published:,}/{status.replay.total:,}", "ok"
    if not status.connections:
        return "◌ no streams", "warn"
    opened = [c for c in status.connections if c.state is LinkState.OPEN]
    if len(opened) == len(status.connections):
        streams = sum(c.subscribed for c in opened)
        return f"● connected · {len(opened)} conn · {streams} streams", "ok"
    worst = next(c for c in status.connections if c.state is not LinkState.OPEN)
    if worst.state is LinkState.RECONNECTING:
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
    clock = status.clock
    if clock is not None and clock.offset_ms is not None:
        text.append(f" · clock {clock.offset_ms:+.0f} ms")
    text.append("\n")
    rec = recording_line(status)
    state = status.recording.state if status.recording is not None else RecorderState.OFF
    rec_style = {RecorderState.FAILED: "bold red",
                 RecorderState.RECORDING: "bold green"}.get(state, "dim")
    text.append("● " if state is RecorderState.RECORDING else "○ ", rec_style)
    text.append(rec, rec_style)
    if status.budget is not None:
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
