"""The last lines of replica log files, for `GET /ksrv/v1/namespaces/{ns}/logs/{name}`.

Reads backwards from the end in blocks: logs grow without bound and only the tail is wanted.
"""

from __future__ import annotations

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
