"""The live-subscription control protocol (SUBSCRIBE & co.), as a pure function.

Why pure: the decision (reply text + what to change) is separated from the
connection so that every error path can be unit-tested without sockets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .streams import parse_stream

METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
# The docs say "alphanumeric, at most 36"; Binance's own SDK sends dashed UUIDs (36 chars)
# and real Binance accepts them, so dashes are allowed too.
_ID_STR = re.compile(r"^[A-Za-z0-9-]{1,36}$")
_METHOD_VALUE = re.compile(r'"method"\s*:\s*("(?:[^"\\]|\\.)*"|[^,}\s]+)')
_INT64 = (-(2**63), 2**63 - 1)


@dataclass
class Outcome:
    """What a control request does: reply text plus the subscription changes to apply."""

    reply: str
    request: Any = None  # the parsed request (raw text when it was not JSON)
    subscribe: list[str] = field(default_factory=list)
    unsubscribe: list[str] = field(default_factory=list)
    combined: bool | None = None  # new value of the `combined` property


def _ok(result: Any, rid: Any) -> str:
    return json.dumps({"result": result, "id": rid}, separators=(",", ":"))


def _err(code: int, msg: str, rid: Any = None) -> str:
    return json.dumps({"error": {"code": code, "msg": msg}, "id": rid}, separators=(",", ":"))


def _end_pos(text: str) -> tuple[int, int]:
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1])


def valid_id(rid: Any) -> bool:
    """Signed 64-bit integer, alphanumeric string of at most 36 chars, or null."""
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return _INT64[0] <= rid <= _INT64[1]
    return isinstance(rid, str) and bool(_ID_STR.match(rid))


def handle(text: str, streams: dict[str, None], combined: bool, max_streams: int) -> Outcome:
    """Decide the reply to one text frame given the connection's current state."""
    try:
        req = json.loads(text)
    except ValueError as exc:
        line, col = getattr(exc, "lineno", 1), getattr(exc, "colno", 1)
        return Outcome(_err(3, f"Invalid JSON: expected value at line {line} column {col}"),
                       text)
    if not isinstance(req, dict) or "method" not in req:
        line, col = _end_pos(text)
        return Outcome(_err(2, f"Invalid request: missing field `method` at line {line} "
                               f"column {col}"), req)
    method = req["method"]
    if method not in METHODS:
        m = _METHOD_VALUE.search(text)
        col = m.end() if m else _end_pos(text)[1]
        shown = method if isinstance(method, str) else json.dumps(method)
        names = ", ".join(f"`{x}`" for x in METHODS)
        return Outcome(_err(2, f"Invalid request: unknown variant `{shown}`, expected one of "
                               f"{names} at line 1 column {col}"), req)
    rid = req.get("id", ...)
    if rid is ... or not valid_id(rid):
        return Outcome(_err(2, "Invalid request: request ID must be an unsigned integer"), req)
    params = req.get("params")
    out = Outcome("", req)
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            out.reply = _err(2, "Invalid request: invalid stream", rid)
            return out
        if any(parse_stream(p) is None for p in params):
            out.reply = _err(2, "Invalid request: invalid stream", rid)
            return out
        if method == "SUBSCRIBE":
            new = [p for p in dict.fromkeys(params) if p not in streams]
            if len(streams) + len(new) > max_streams:
                out.reply = _err(4, "Too many subscriptions", rid)
                return out
            out.subscribe = new
        else:
            out.unsubscribe = [p for p in dict.fromkeys(params) if p in streams]
        out.reply = _ok(None, rid)
        return out
    if method == "LIST_SUBSCRIPTIONS":
        if params:
            out.reply = _err(2, "Invalid request: too many parameters", rid)
        else:
            out.reply = _ok(list(streams), rid)
        return out
    # SET_PROPERTY / GET_PROPERTY
    want = 2 if method == "SET_PROPERTY" else 1
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        out.reply = _err(2, "Invalid request: property name must be a string", rid)
    elif len(params) > want:
        out.reply = _err(2, "Invalid request: too many parameters", rid)
    elif params[0] != "combined":
        out.reply = _err(0, "Unknown property", rid)
    elif method == "GET_PROPERTY":
        out.reply = _ok(combined, rid)
    elif len(params) < 2 or not isinstance(params[1], bool):
        out.reply = _err(1, "Invalid value type: expected Boolean", rid)
    else:
        out.combined = params[1]
        out.reply = _ok(None, rid)
    return out
