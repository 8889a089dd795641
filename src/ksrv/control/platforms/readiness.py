"""Readiness probe: one HTTP/1.0 GET on a raw socket, ready on 200.

Cheap on purpose: it runs every 100 ms per starting replica, so no client pool or parser.
"""

from __future__ import annotations

import asyncio

PROBE_TIMEOUT_S = 1.0


async def probe(port: int, path: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None when 127.0.0.1:`port``path` answers 200; else why not, in a few words."""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            status_line = await reader.readline()
    except TimeoutError:
        return f"no answer within {timeout_s}s"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    finally:
        if writer is not None:
            writer.close()
    parts = status_line.split(maxsplit=2)
    if len(parts) >= 2 and parts[1] == b"200":
        return None
    return f"answered {status_line.decode(errors='replace').strip() or 'nothing'}"
