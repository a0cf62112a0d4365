"""Reading a recording to serve: an hftbacktest file (``<local_recv_ns> <raw JSON>`` per
line, .gz or text) or a binance-live dataset directory with raw frames (``<dir>/_raw``).

Why keep raw text: replay must deliver each frame byte-identical, so the
``data`` value is sliced out of the original combined frame instead of being
re-encoded.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Frame:
    """One recorded line: a combined stream frame, or a REST depth snapshot (stream = "")."""

    ns: int
    stream: str
    text: str  # the whole recorded JSON (combined envelope, or the bare snapshot)
    data: str  # the raw payload (== text for snapshots)


_PREFIX = '{"stream":"'


def _split(text: str) -> tuple[str, str] | None:
    """(stream, data) of a combined frame, sliced from the original text."""
    if not text.startswith(_PREFIX):
        return None
    end = text.find('"', len(_PREFIX))
    if end < 0:
        return None
    stream = text[len(_PREFIX):end]
    head = f'{_PREFIX}{stream}","data":'
    if not text.startswith(head) or not text.endswith("}"):
        return None
    return stream, text[len(head):-1]


def load(path: str | Path) -> list[Frame]:
    """All frames of a recording, in file order (a dataset directory: in receive order)."""
    p = Path(path)
    if p.is_dir():
        return load_dataset(p)
    opener = gzip.open if p.suffix == ".gz" else open
    frames: list[Frame] = []
    with opener(p, "rt", encoding="utf-8") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            if not line:
                continue
            ns_text, _, text = line.partition(" ")
            ns = int(ns_text)
            split = _split(text)
            if split is not None:
                frames.append(Frame(ns, split[0], text, split[1]))
            elif text.startswith('{"lastUpdateId"'):
                frames.append(Frame(ns, "", text, text))
    return frames


def load_dataset(root: Path) -> list[Frame]:
    """Raw combined-stream frames of a binance-live recording, by (recv_time, seq).

    pyarrow is imported only here, so the synthetic exchange still needs just aiohttp
    and msgspec. Hidden in-progress segments (``.*.arrows``) are skipped like any reader.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    raw = root / "_raw"
    if not raw.is_dir():
        raise ValueError(f"{root}: no raw frames ({raw} missing; record with storage.raw)")
    table = ds.dataset(raw, format="parquet", ignore_prefixes=[".", "_"]).to_table(
        columns=["recv_time", "seq", "frame"]).sort_by([("recv_time", "ascending"),
                                                        ("seq", "ascending")])
    frames: list[Frame] = []
    ns = table.column("recv_time").cast(pa.int64()).to_pylist()
    for n, blob in zip(ns, table.column("frame").to_pylist(), strict=True):
        text = blob.decode("utf-8")
        split = _split(text)
        if split is not None:
            frames.append(Frame(n, split[0], text, split[1]))
    if not frames:
        raise ValueError(f"{root}: no combined-stream frames in {raw}")
    return frames


def symbols_of(frames: list[Frame]) -> list[str]:
    """Every (uppercase) symbol a recording has streams of, in order of appearance."""
    seen = {f.stream.split("@", 1)[0].upper(): None for f in frames
            if f.stream and not f.stream.startswith("!")}
    return list(seen)


def symbol_of(frames: list[Frame]) -> str:
    """The (uppercase) symbol a per-symbol recording is about."""
    for f in frames:
        if f.stream and not f.stream.startswith("!"):
            return f.stream.split("@", 1)[0].upper()
    raise ValueError("recording holds no symbol stream")
