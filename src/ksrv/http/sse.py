"""Server-sent events framing (the `text/event-stream` format of the HTML standard).

Streaming APIs (OpenAI's `stream: true`, V2 `generate_stream`) send their chunks as SSE
events over a `StreamingResponse`; the framing rules (one `data:` line per line of the
payload, a blank line ending each event) live here once instead of in every route.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Final

HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache"),
    # Reverse proxies (nginx) would otherwise hold events back to fill their buffers.
    (b"x-accel-buffering", b"no"),
]


def event(data: bytes | str, *, name: str | None = None, event_id: str | None = None) -> bytes:
    """One event; a payload with line breaks becomes several `data:` lines, as SSE requires."""
    payload = data.encode() if isinstance(data, str) else data
    lines = []
    if event_id is not None:
        lines.append(b"id: " + _one_line(event_id, "event_id"))
    if name is not None:
        lines.append(b"event: " + _one_line(name, "name"))
    lines += [b"data: " + line for line in payload.replace(b"\r\n", b"\n").split(b"\n")]
    return b"\n".join(lines) + b"\n\n"


DONE: Final = event(b"[DONE]")  # OpenAI's end-of-stream marker


async def events(payloads: AsyncIterable[bytes | str]) -> AsyncIterator[bytes]:
    """Frame each payload of an async iterable as one event."""
    async for payload in payloads:
        yield event(payload)


def _one_line(value: str, what: str) -> bytes:
    if "\n" in value or "\r" in value:
        raise ValueError(f"an SSE {what} cannot hold a line break: {value!r}")
    return value.encode()
