"""The WebSocket control protocol: SUBSCRIBE/UNSUBSCRIBE requests and their replies."""

from __future__ import annotations

import msgspec


class ControlError(msgspec.Struct, gc=False):
    code: int
    msg: str


class ControlReply(msgspec.Struct, gc=False, kw_only=True):
    """Reply to SUBSCRIBE/UNSUBSCRIBE/LIST_SUBSCRIPTIONS/SET_PROPERTY/GET_PROPERTY."""

    id: int | str | None = None
    result: object = None
    error: ControlError | None = None


PARAMS_PER_REQUEST = 200  # streams per SUBSCRIBE message

_encode = msgspec.json.Encoder().encode


def request(method: str, params: list[str], request_id: int) -> str:
    """One control request as the text frame to send."""
    return _encode({"method": method, "params": params, "id": request_id}).decode()
