"""The response cache's annotations on an InferenceService -> the model server's flags.

ksrv's own annotations (KServe has no response cache): `ksrv.dev/response-cache: "true"`
turns it on for the service's model servers, `ksrv.dev/response-cache-bytes` sizes it (an
integer or a Kubernetes quantity such as `64Mi`; default 64Mi) and
`ksrv.dev/response-cache-ttl` bounds an answer's age in seconds (default: none). A component's
own annotations win over the service's, as for every other annotation. Bad values are refused
at apply (`admission`) and, for a document stored under older rules, make the component an
InvalidSpec (`plan`), each time with the annotation's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from ksrv.errors import ResourceInvalid

ENABLED: Final = "ksrv.dev/response-cache"
BYTES: Final = "ksrv.dev/response-cache-bytes"
TTL: Final = "ksrv.dev/response-cache-ttl"
DEFAULT_BYTES: Final = 64 * 2**20
_BINARY: Final = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_DECIMAL: Final = {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


@dataclass(frozen=True, slots=True)
class ResponseCache:
    max_bytes: int
    ttl_s: float | None = None

    def args(self) -> list[str]:
        """`ksrv serve`'s flags for this cache."""
        args = ["--response-cache-bytes", str(self.max_bytes)]
        if self.ttl_s is not None:
            args += ["--response-cache-ttl", repr(self.ttl_s)]
        return args


def from_annotations(annotations: dict[str, str]) -> ResponseCache | None:
    """The cache the annotations ask for, or None (off).

    Raises:
        ResourceInvalid: a value that is not what its annotation takes, naming it.
    """
    enabled = annotations.get(ENABLED)
    if enabled not in (None, "true", "false"):
        raise _invalid(ENABLED, 'must be "true" or "false"', enabled)
    max_bytes = _bytes(annotations.get(BYTES))
    ttl_s = _ttl(annotations.get(TTL))
    if enabled != "true":
        return None
    return ResponseCache(max_bytes if max_bytes is not None else DEFAULT_BYTES, ttl_s)


def _bytes(raw: str | None) -> int | None:
    if raw is None:
        return None
    text = raw.strip()
    try:
        if text[-2:] in _BINARY:
            value = float(text[:-2]) * _BINARY[text[-2:]]
        elif text[-1:] in _DECIMAL:
            value = float(text[:-1]) * _DECIMAL[text[-1:]]
        else:
            value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 1):
        raise _invalid(BYTES, "must be a positive size in bytes (e.g. 67108864 or 64Mi)", raw)
    return int(value)


def _ttl(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise _invalid(TTL, "must be a positive number of seconds", raw)
    return value


def _invalid(name: str, rule: str, raw: str) -> ResourceInvalid:
    path = f'metadata.annotations["{name}"]'
    return ResourceInvalid(f"{path} {rule}, got {raw!r}", "InvalidSpec", [(path, rule)])
