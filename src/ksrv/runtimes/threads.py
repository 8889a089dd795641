"""Thread counts for framework runtimes: a constructor argument, else an environment variable.

Runtimes are built as `Runtime(name, model_dir)` by the server, so per-framework tuning that
KServe passes as flags (`--nthread`) arrives here through the environment instead.
"""

from __future__ import annotations

import os

from ksrv.errors import InvalidInput


def thread_count(value: int | None, env_name: str, default: int | None) -> int | None:
    """`value` if given, else the integer in `$env_name`, else `default`; never negative."""
    if value is None:
        raw = os.environ.get(env_name, "").strip()
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidInput(f"{env_name} must be an integer, got {raw!r}") from None
    if value < 0:
        raise InvalidInput(f"{env_name} must not be negative, got {value}")
    return value
