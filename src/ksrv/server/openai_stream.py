"""A model's streamed chunks as server-sent events: OpenAI's framing, usage and end marker.

The first chunk is awaited before the response starts, so a request the model refuses while
it starts (a prompt too long for its context) is still answered with its own status instead
of a 200 stream. After that, each chunk becomes `data: {json}`; the `usage` a model puts on its
last chunk is taken off and, with `stream_options.include_usage`, sent as OpenAI's final
`choices: []` chunk; `data: [DONE]` ends the stream. An error mid-stream is sent as an error
event (the client raises it). Closing the stream (the client hung up) closes the model's
iterator, which is how a disconnect cancels a generation.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel

from ksrv.errors import KsrvError
from ksrv.http import sse
from ksrv.protocol.openai import errors as openai_errors

logger = logging.getLogger(__name__)

Encode = Callable[[Any], bytes | None]
EncodeError = Callable[[BaseException], bytes]

_NOTHING: Any = object()
_USAGE = {"usage"}


class Prefetched:
    """An async iterator whose first item has been taken already (or that was empty)."""

    def __init__(self, chunks: AsyncIterator[Any], first: Any) -> None:
        self.chunks = chunks
        self.first = first

    @classmethod
    async def start(cls, chunks: AsyncIterator[Any]) -> Prefetched:
        """Await the first chunk; an error raised before it propagates (and closes `chunks`)."""
        try:
            first = await anext(chunks, _NOTHING)
        except BaseException:
            await _close(chunks)
            raise
        return cls(chunks, first)

    async def items(self) -> AsyncIterator[Any]:
        if self.first is _NOTHING:
            return
        yield self.first
        async for item in self.chunks:
            yield item

    async def aclose(self) -> None:
        await _close(self.chunks)


async def openai_events(
    stream: Prefetched, include_usage: bool, on_usage: Callable[[Any], None] | None = None
) -> AsyncIterator[bytes]:
    """OpenAI's SSE body for a model's chunk objects (KServe-style `str` chunks pass as is);
    `on_usage` hears the usage the model reported, once the stream ends."""
    usage: BaseModel | None = None
    template: BaseModel | None = None
    is_framed = False
    try:
        async for chunk in stream.items():
            if isinstance(chunk, str | bytes):
                is_framed = True  # a KServe model frames its own events, [DONE] included
                yield chunk.encode() if isinstance(chunk, str) else chunk
                continue
            template = chunk
            if chunk.usage is not None:
                usage = chunk.usage
                if not chunk.choices:
                    continue  # a usage-only chunk: sent below, if asked for
                chunk = chunk.model_copy(update={"usage": None})
            # With include_usage OpenAI sends `"usage": null` on every chunk, else no field.
            yield sse.event(chunk.model_dump_json(exclude=None if include_usage else _USAGE))
        if on_usage is not None:
            on_usage(usage)
        if include_usage and usage is not None and template is not None:
            final = template.model_copy(update={"choices": [], "usage": usage})
            yield sse.event(final.model_dump_json())
    except Exception as exc:
        yield sse.event(_error_json(exc))
    finally:
        await stream.aclose()
    if not is_framed:
        yield sse.DONE


async def events(
    stream: Prefetched, encode: Encode, encode_error: EncodeError
) -> AsyncIterator[bytes]:
    """Plain SSE: one event per chunk `encode` gives bytes for (None skips it); an error
    mid-stream as `encode_error`'s event."""
    try:
        async for chunk in stream.items():
            data = encode(chunk)
            if data is not None:
                yield sse.event(data)
    except Exception as exc:
        if not isinstance(exc, KsrvError):
            logger.exception("streamed generation failed")
        yield sse.event(encode_error(exc))
    finally:
        await stream.aclose()


def _error_json(exc: BaseException) -> bytes:
    if not isinstance(exc, KsrvError):
        logger.exception("streamed generation failed")
    _, body = openai_errors.envelope(exc)
    return body.model_dump_json().encode()


async def _close(chunks: AsyncIterator[Any]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
