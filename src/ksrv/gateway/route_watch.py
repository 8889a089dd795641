"""Keep the gateway's route table fresh by long-polling the control plane.

`GET {routes_url}?after=VERSION&timeout_s=30` answers 200 with the table when its version
differs from VERSION, or 304 when nothing changed. Any other version is taken, lower ones too:
a restarted control plane's table is the truth. While the control plane is down the last
table stays in force and the poll backs off (0.25 s doubling to 5 s), so the gateway keeps
serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson

from ksrv.errors import KsrvError
from ksrv.gateway.control_link import ControlCredentials, open_link

logger = logging.getLogger(__name__)

POLL_TIMEOUT_S = 30.0
_FIRST_BACKOFF_S = 0.25
_MAX_BACKOFF_S = 5.0


class RouteWatcher:
    """Polls `routes_url` and hands every newer table document to `on_table`."""

    def __init__(
        self,
        routes_url: str,
        on_table: Callable[[dict[str, Any]], None],
        poll_timeout_s: float = POLL_TIMEOUT_S,
        credentials: ControlCredentials | None = None,
    ) -> None:
        link = open_link(routes_url, "routes", credentials)
        self.pool = link.pool
        self.host_header = link.host_lines
        self.path = link.path.decode()
        self.on_table = on_table
        self.poll_timeout_s = poll_timeout_s
        self.version = 0

    async def run(self) -> None:
        """Poll until cancelled."""
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                await self.poll_once()
                backoff = _FIRST_BACKOFF_S
            except (KsrvError, ValueError, OSError) as exc:
                logger.warning("route table poll failed (retrying in %.2fs): %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)

    async def poll_once(self) -> bool:
        """One long poll; True when another table arrived."""
        target = f"{self.path}?after={self.version}&timeout_s={self.poll_timeout_s:g}"
        head = (
            b"GET " + target.encode() + b" HTTP/1.1\r\nhost: " + self.host_header
            + b"\r\naccept: application/json\r\ncontent-length: 0\r\n\r\n"
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + self.poll_timeout_s + 10.0
        response = await self.pool.request(head, b"", deadline)
        if response.status == 304:
            return False
        if response.status != 200:
            raise ValueError(f"routes URL answered {response.status}: {response.body[:200]!r}")
        document = orjson.loads(response.body)
        version = int(document.get("version", 0))
        if version == self.version:
            return False
        self.on_table(document)
        self.version = version
        return True

    def close(self) -> None:
        self.pool.close()
