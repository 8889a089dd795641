"""Which caller-supplied `x-request-id` values the platform echoes and passes on.

A request id is for correlating logs, so it is kept to a short token: one longer than 128
characters, or with characters outside [A-Za-z0-9._:-], is dropped (the request itself still
succeeds) rather than reflected into response headers and upstream calls.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def sane_request_id(value: str | None) -> str | None:
    """`value` when it is a short token fit to echo, else None."""
    if value is None or _TOKEN.fullmatch(value) is None:
        return None
    return value
