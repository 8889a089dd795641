"""Which of a caller's headers the router passes on to every step (KServe's
`router.headers.propagate`, handed to the router as the `PROPAGATE_HEADERS` environment variable:
comma-separated regular expressions).

As KServe, a pattern matches anywhere in the header's name (Go's `MatchString`), and one that
does not compile is logged and skipped. Unlike KServe, which passes on nothing unless told,
ksrv always passes the request id and trace context (`x-request-id`, W3C `traceparent` /
`tracestate`, B3), so a graph's calls can be followed, and defaults the list to
`Authorization` when none is configured. Names are compared case-insensitively (HTTP/1.1
names are; Go canonicalises them before matching). Framing headers are never copied.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Final

logger = logging.getLogger(__name__)

ENV: Final = "PROPAGATE_HEADERS"
DEFAULT_PATTERNS: Final = ("Authorization",)
ALWAYS: Final = frozenset(
    {
        b"x-request-id",
        b"traceparent",
        b"tracestate",
        b"b3",
        b"x-b3-traceid",
        b"x-b3-spanid",
        b"x-b3-parentspanid",
        b"x-b3-sampled",
        b"x-b3-flags",
    }
)
_MAX_REMEMBERED: Final = 1024
# The router writes these itself for each call.
_NEVER: Final = frozenset(
    {
        b"host",
        b"content-length",
        b"content-type",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"upgrade",
        b"expect",
        b"proxy-connection",
    }
)


def parse_patterns(value: str | None) -> tuple[str, ...]:
    """`PROPAGATE_HEADERS`'s comma-separated patterns; the default when it is unset."""
    if value is None:
        return DEFAULT_PATTERNS
    return tuple(part.strip() for part in value.split(",") if part.strip())


class Propagation:
    """Picks the headers to pass on from a request's raw headers; each name's verdict is
    remembered, as the same few names come with every request."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = _compile(patterns)
        self._verdicts: dict[bytes, bool] = {}

    def select(self, raw_headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The (lower-case name, value) pairs to send to every step, in the caller's order."""
        verdicts = self._verdicts
        picked = []
        for name, value in raw_headers:
            verdict = verdicts.get(name)
            if verdict is None:
                verdict = self._passes(name)
                if len(verdicts) < _MAX_REMEMBERED:  # names are the caller's: bound the memory
                    verdicts[name] = verdict
            if verdict:
                picked.append((name, value))
        return picked

    def _passes(self, name: bytes) -> bool:
        if name in _NEVER:
            return False
        if name in ALWAYS:
            return True
        text = name.decode("latin-1")
        return any(pattern.search(text) for pattern in self.patterns)


def _compile(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            logger.error("header pattern %r does not compile (%s): skipped", pattern, exc)
    return compiled
