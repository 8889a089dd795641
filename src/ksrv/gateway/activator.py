"""The activator's call to the control plane: a revision at zero has requests waiting.

The gateway holds a request for a revision without a ready replica (`dispatch`); waiting for
the autoscaler's next tick and the next traffic report would add seconds to a cold start, so
the first held request POSTs `{"namespace", "revision"}` (`ksrv.protocol.traffic`) to the
management API's `/ksrv/v1/activate` at once, and the control plane starts a replica right
away. Pokes are sent off the request path, at most one per revision every `REPOKE_S` while
requests stay held (a lost poke is repeated; the held requests also count as the revision's
demand in the traffic reports, so the autoscaler sizes it from there).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Final

import orjson

from ksrv.errors import KsrvError
from ksrv.gateway.control_link import ControlCredentials, open_link
from ksrv.protocol.traffic import ActivationDoc

logger = logging.getLogger(__name__)

REPOKE_S: Final = 1.0
POKE_TIMEOUT_S: Final = 2.0


class Activator:
    """Pokes `url` (the management API's `/ksrv/v1/activate`); a dispatcher's `Activation`."""

    def __init__(
        self,
        url: str,
        clock: Callable[[], float] = time.monotonic,
        credentials: ControlCredentials | None = None,
    ) -> None:
        link = open_link(url, "activation", credentials)
        self.pool = link.pool
        self.host_header = link.host_lines
        self.path = link.path
        self.clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.sent = 0

    def poke(self, namespace: str, revision: str) -> None:
        """Ask for a replica of `revision` now, unless that was asked within `REPOKE_S`."""
        key = (namespace, revision)
        now = self.clock()
        if now - self._last.get(key, -REPOKE_S) < REPOKE_S:
            return
        self._last[key] = now
        document: ActivationDoc = {"namespace": namespace, "revision": revision}
        task = asyncio.get_running_loop().create_task(self._send(document))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, document: ActivationDoc) -> None:
        body = orjson.dumps(document)
        head = (
            b"POST " + self.path + b" HTTP/1.1\r\nhost: " + self.host_header
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + POKE_TIMEOUT_S
        try:
            response = await self.pool.request(head, body, deadline)
        except (KsrvError, OSError) as exc:
            where = f"{document['namespace']}/{document['revision']}"
            logger.warning("activation of %s not delivered: %s", where, exc)
            return
        if response.status >= 300:
            logger.warning("activation URL answered %s: %r", response.status, response.body[:200])
            return
        self.sent += 1

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.pool.close()


def activation_url(routes_url: str) -> str:
    """The management API's activation endpoint, beside the route table's."""
    return routes_url.rsplit("/", 1)[0] + "/activate"
