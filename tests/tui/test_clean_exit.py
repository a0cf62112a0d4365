"""A real terminal: ``binance-live --demo --no-storage`` quits with ``q`` and leaves the
terminal exactly as it found it (alternate screen left, nothing painted on the main screen).

It drives the app inside a private tmux server (its own ``-L`` socket, no config) at
140x45. It waits on conditions by polling ``capture-pane``, and every wait has a deadline.

The bug it guards against is a race: a method of the app named ``_shutdown`` shadowed
Textual's own ``App._shutdown``, so ``driver.close()`` never ran and the daemon writer
thread could be killed before it wrote ``ESC[?1049l`` and the other restore sequences.
It lost that race in roughly 1 of 4-5 quits, so one run proves little: the test repeats
the quit ``RUNS`` times and stops at the first dirty exit (with 12 runs it caught the
unfixed code in 6 sessions of 6). The fixed code must be clean every time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

WIDTH, HEIGHT = 140, 45
RUNS = int(os.environ.get("CLEAN_EXIT_RUNS", "12"))
UI_TIMEOUT_S = 30.0  # demo exchange + engine up, status bar says "connected"
EXIT_TIMEOUT_S = 30.0  # engine drain is bounded at 5 s; generous for a loaded CI box
POLL_S = 0.05
TYPED = 'echo BEFORE; sh "$RUN"; echo EXIT=$?'  # short and fixed: never wraps at 140


def _app_command() -> list[str]:
    script = Path(sys.executable).with_name("binance-live")
    base = [str(script)] if script.is_file() else [sys.executable, "-m", "tui"]
    return [*base, "--demo", "--no-storage"]


def _wait_for(predicate: Callable[[], object], timeout: float, what: str,
              screen: Callable[[], str]) -> object:
    """Poll ``predicate`` until truthy; after ``timeout`` fail, showing the screen."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                 f"screen:\n{screen()}")
        time.sleep(POLL_S)


class Tmux:
    """One private tmux server holding one 140x45 pane running an interactive ``sh``."""

    def __init__(self, run_script: Path) -> None:
        self.socket = f"exit-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        env = f"RUN={shlex.quote(str(run_script))} PS1='$ ' ENV=/dev/null"
        self._tmux("new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", str(HEIGHT),
                   f"env {env} sh -i")
        self._socket_path = self.fmt("#{socket_path}")
        self._tmux("set-option", "-g", "status", "off")

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(["tmux", "-L", self.socket, "-f", "/dev/null", *args],
                             capture_output=True, text=True, timeout=10, check=True)
        return out.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "t")

    def lines(self) -> list[str]:
        rows = [row.rstrip() for row in self.screen().splitlines()]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def prompt_ready(self) -> bool:
        x, y = (int(v) for v in self.fmt("#{cursor_x} #{cursor_y}").split())
        rows = self.screen().splitlines()
        # only what is left of the cursor: a stale frame may still fill the rest of the row
        return x == 2 and y < len(rows) and rows[y][:x].rstrip() == "$"

    def fmt(self, spec: str) -> str:
        return self._tmux("display-message", "-p", "-t", "t", spec).strip()

    def send(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "t", *keys)

    def kill(self) -> None:
        try:
            self._tmux("kill-server")
        except Exception:  # noqa: BLE001 - already gone is fine
            pass
        Path(self._socket_path).unlink(missing_ok=True)  # tmux 3.3 leaves it behind


def _one_quit(run_script: Path) -> tuple[list[str], list[str], str, str]:
    """Run the app once, press q; return (screen before, screen after, alternate_on, raw screen)."""
    tmux = Tmux(run_script)
    try:
        _wait_for(lambda: tmux.fmt("#{pane_width}x#{pane_height}") == f"{WIDTH}x{HEIGHT}",
                  10, f"a {WIDTH}x{HEIGHT} pane", tmux.screen)
        _wait_for(lambda: tmux.lines() == ["$"], 10, "the shell prompt", tmux.screen)
        tmux.send("clear", "Enter")
        _wait_for(lambda: tmux.lines() == ["$"], 10, "a cleared screen", tmux.screen)
        before = tmux.lines()

        tmux.send("-l", TYPED)
        tmux.send("Enter")
        _wait_for(lambda: tmux.fmt("#{alternate_on}") == "1"
                  and "connected" in tmux.screen(), UI_TIMEOUT_S,
                  "the UI (alternate screen, status bar 'connected')", tmux.screen)
        tmux.send("q")
        _wait_for(lambda: any(r.startswith("EXIT=") for r in tmux.lines()),
                  EXIT_TIMEOUT_S, "the process to exit (EXIT= marker)", tmux.screen)
        # the shell has printed its next prompt (the cursor sits just after "$ "), so
        # nothing more will be written; works whether or not the stale frame is there
        _wait_for(tmux.prompt_ready, 10, "the prompt after exit", tmux.screen)
        return before, tmux.lines(), tmux.fmt("#{alternate_on}"), tmux.screen()
    finally:
        tmux.kill()


@pytest.mark.timeout(60 + RUNS * (UI_TIMEOUT_S + EXIT_TIMEOUT_S + 30))
def test_q_leaves_the_terminal_exactly_as_before(tmp_path: Path) -> None:
    root = ROOT
    run_script = tmp_path / "run.sh"
    run_script.write_text(f"cd {shlex.quote(str(root))} || exit 97\n"
                          f"exec {shlex.join(_app_command())}\n")
    for attempt in range(1, RUNS + 1):
        before, after, alternate_on, raw = _one_quit(run_script)
        expected = [f"$ {TYPED}", "BEFORE", "EXIT=0", "$"]
        codes = [m.group(1) for r in after if (m := re.match(r"EXIT=(\d+)", r))]
        assert codes == ["0"], f"run {attempt}/{RUNS}: exit codes {codes!r}; screen:\n{raw}"
        assert before == ["$"]
        assert alternate_on == "0" and after == expected, (
            f"run {attempt}/{RUNS}: terminal not restored after q "
            f"(alternate_on={alternate_on}); expected exactly {expected!r}, screen:\n{raw}")
