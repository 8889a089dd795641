"""The last lines of replica log files, for `GET /ksrv/v1/namespaces/{ns}/logs/{name}`.

Reads backwards from the end in blocks: logs grow without bound and only the tail is wanted.
`follow` then streams what is appended (`ksrv logs -f`), polling file sizes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

_BLOCK_BYTES = 65536


def read_tails(paths: list[Path], lines: int) -> str:
    """The last `lines` lines of each file (-1: all); with several, a header names each."""
    parts = []
    for path in paths:
        text = tail(path, lines)
        parts.append(f"==> {path.name} <==\n{text}" if len(paths) > 1 else text)
    return "\n".join(parts)


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of one file (-1: the whole file)."""
    with path.open("rb") as file:
        if lines < 0:
            return file.read().decode("utf-8", "replace")
        file.seek(0, 2)
        position = file.tell()
        chunk = b""
        while position > 0 and chunk.count(b"\n") <= lines:
            step = min(_BLOCK_BYTES, position)
            position -= step
            file.seek(position)
            chunk = file.read(step) + chunk
    kept = chunk.splitlines(keepends=True)[-lines:] if lines else []
    return b"".join(kept).decode("utf-8", "replace")


async def follow(
    paths_now: Callable[[], list[Path]],
    lines: int,
    poll_s: float,
    is_closing: Callable[[], bool],
) -> AsyncIterator[bytes]:
    """`tail -f` over a component's replica logs: the last `lines` lines of each, then what
    is appended to any of them, including logs of replicas that start meanwhile (from their
    first byte). Polls every `poll_s`; ends when `is_closing()`."""
    offsets: dict[Path, int] = {}
    first = paths_now()
    text = await asyncio.to_thread(read_tails, first, lines) if first else ""
    for path in first:
        offsets[path] = path.stat().st_size
    shown: Path | None = first[-1] if first else None
    if text:
        yield text.encode()
    while not is_closing():
        await asyncio.sleep(poll_s)
        for path in paths_now():
            grown = await asyncio.to_thread(_read_from, path, offsets.get(path, 0))
            if not grown:
                continue
            offsets[path] = offsets.get(path, 0) + len(grown)
            if path != shown and (len(offsets) > 1):
                grown = f"\n==> {path.name} <==\n".encode() + grown
            shown = path
            yield grown


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read(_BLOCK_BYTES)
    except OSError:
        return b""
