"""Per-revision traffic for the autoscaler: requests in flight and arrivals, per second.

The gateway is on every request's path, so it does what Knative's queue-proxy does per pod:
`TrafficCounter` is a `Hook` that notes when each routed request starts and ends and which
revision (`call.backend`) it went to, and `sample(now)`, called once a second, closes the
second: the request-seconds in flight at each revision since the last sample (a request still
in flight counts up to now) and how many requests reached it. On a sampler woken on time
that is the average number in flight over the second; a sampler woken late counts the extra
time once, in the second it closes (the next span is shorter), so sums and averages over a
window stay exact whatever the scheduling. A request held for a revision (at zero:
the activator holds it) counts for that revision, as Knative's activator reports the requests
it holds; one held with no backend counts for nobody until it gets one. `TrafficReporter`
samples on each wall-clock second and POSTs what the control plane has not acknowledged yet
(`ksrv.protocol.traffic`), off the request path; undelivered seconds are kept for a while
and sent with the next report.
Clocks are parameters, so tests drive the counting themselves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Final

import orjson

from ksrv.errors import KsrvError
from ksrv.gateway.control_link import ControlCredentials, open_link
from ksrv.gateway.hooks import Call
from ksrv.protocol.traffic import (
    MAX_REPORT_SECONDS,
    SampleDoc,
    ShadowCountDoc,
    TrafficReportDoc,
)

logger = logging.getLogger(__name__)

REPORT_TIMEOUT_S: Final = 2.0
RevisionKey = tuple[str, str]
"""(namespace, revision)."""


class _Open:
    """A request in flight: since when it counts, and whether its arrival was counted."""

    __slots__ = ("counted_from", "is_counted")

    def __init__(self, now: float) -> None:
        self.counted_from = now
        self.is_counted = False


class TrafficCounter:
    """Counts routed requests per revision; a `Hook`. `clock` gives wall-clock seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._open: dict[Call, _Open] = {}
        self._area: dict[RevisionKey, float] = {}
        """Request-seconds in flight since the last sample."""
        self._arrivals: dict[RevisionKey, int] = {}
        self._last_sample = clock()
        self._last_second = math.floor(self._last_sample)

    def on_request(self, call: Call) -> None:
        self._open[call] = _Open(self.clock())

    def on_response(self, call: Call, error: BaseException | None) -> None:
        state = self._open.pop(call, None)
        if state is None:
            return
        key = _revision(call)
        if key is not None:
            self._account(key, state, self.clock())

    def sample(self, now: float | None = None) -> tuple[int, list[SampleDoc]]:
        """Close the current second: (the wall-clock second it ended at, one sample per
        revision that had traffic in it). A revision without a sample had none."""
        now = self.clock() if now is None else now
        for call, state in self._open.items():
            key = _revision(call)
            if key is None:
                state.counted_from = now  # held: its wait is not the revision's load
            else:
                self._account(key, state, now)
        # Named by the second it ended at, as Knative files a scrape at time t under t: the
        # span [33.0, 34.0) is second 34. From the span's middle, so a sampler woken late or
        # early still names the boundary it meant; never a name already used.
        second = max(self._last_second + 1, math.floor((self._last_sample + now) / 2) + 1)
        self._last_second = second
        samples: list[SampleDoc] = [
            {
                "namespace": namespace,
                "revision": revision,
                "second": second,
                "concurrency": round(self._area.get((namespace, revision), 0.0), 6),
                "requests": self._arrivals.get((namespace, revision), 0),
            }
            for namespace, revision in sorted({*self._area, *self._arrivals})
        ]
        self._area.clear()
        self._arrivals.clear()
        self._last_sample = now
        return second, samples

    @property
    def in_flight(self) -> int:
        return len(self._open)

    def _account(self, key: RevisionKey, state: _Open, now: float) -> None:
        self._area[key] = self._area.get(key, 0.0) + max(0.0, now - state.counted_from)
        state.counted_from = now
        if not state.is_counted:
            state.is_counted = True
            self._arrivals[key] = self._arrivals.get(key, 0) + 1


def _revision(call: Call) -> RevisionKey | None:
    backend, match = call.backend, call.match
    if backend is None or match is None:
        return None
    return (match.service.namespace, backend.revision)


class TrafficReporter:
    """Samples `counter` on every wall-clock second and POSTs the undelivered seconds to
    `url` (the management API's `/ksrv/v1/traffic`)."""

    def __init__(
        self,
        url: str,
        counter: TrafficCounter,
        reporter: str | None = None,
        shadows: Callable[[], list[ShadowCountDoc]] | None = None,
        credentials: ControlCredentials | None = None,
    ) -> None:
        """`shadows`: the shadow-copy counts to send along (`shadow.Shadower.report`);
        `credentials`: how to reach the control plane (`control_link`)."""
        link = open_link(url, "traffic", credentials)
        self.pool = link.pool
        self.host_header = link.host_lines
        self.path = link.path
        self.counter = counter
        self.shadows = shadows
        self.reporter = reporter or f"gateway-{os.getpid()}"
        self.pending: deque[tuple[int, list[SampleDoc]]] = deque(maxlen=MAX_REPORT_SECONDS)
        self.sent = 0

    async def run(self) -> None:
        """Sample and report on each second until cancelled."""
        while True:
            now = self.counter.clock()
            await asyncio.sleep(math.floor(now) + 1.0 - now)
            self.pending.append(self.counter.sample())
            try:
                await self.report_once()
            except (KsrvError, ValueError, OSError) as exc:
                logger.debug("traffic report not delivered (kept for the next): %s", exc)

    def report(self) -> TrafficReportDoc:
        """What is not delivered yet, as one report."""
        seconds = [second for second, _ in self.pending]
        report: TrafficReportDoc = {
            "reporter": self.reporter,
            "first": min(seconds),
            "last": max(seconds),
            "samples": [sample for _, samples in self.pending for sample in samples],
        }
        if self.shadows is not None:
            report["shadow"] = self.shadows()
        return report

    async def report_once(self) -> None:
        """POST the pending seconds; they are dropped once the control plane took them.

        Raises:
            ValueError: the control plane refused the report.
            KsrvError, OSError: it could not be reached.
        """
        if not self.pending:
            return
        delivered = len(self.pending)
        body = orjson.dumps(self.report())
        head = (
            b"POST " + self.path + b" HTTP/1.1\r\nhost: " + self.host_header
            + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n"
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + REPORT_TIMEOUT_S
        response = await self.pool.request(head, body, deadline)
        if response.status >= 300:
            raise ValueError(f"traffic URL answered {response.status}: {response.body[:200]!r}")
        for _ in range(delivered):
            self.pending.popleft()
        self.sent += 1

    def close(self) -> None:
        self.pool.close()


def traffic_url(routes_url: str) -> str:
    """The management API's traffic endpoint, beside the route table's."""
    return routes_url.rsplit("/", 1)[0] + "/traffic"
