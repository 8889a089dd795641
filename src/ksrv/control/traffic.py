"""The gateways' traffic reports, kept per revision and second for the autoscaler.

Every gateway process POSTs what it counted (`ksrv.protocol.traffic`) to the management API
about once a second; `TrafficCollector.record` keeps each reporter's seconds (a second sent
again replaces what that reporter said of it, so a retried report never counts twice), and
`samples(namespace, revision, now, window_s)` sums the reporters into the per-second
`autoscaler.Sample`s the autoscaler averages: a second some gateway covered is a sample (0
when no request reached the revision), a second none covered is missing data. Seconds older
than the longest window are forgotten. A report's `shadow` counts (cumulative, per reporter)
replace that reporter's last; `shadow_counts` sums them over the reporters for the status.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Final

from ksrv.control.autoscaler import Sample
from ksrv.control.autoscaler_config import WINDOW_MAX_S
from ksrv.protocol.traffic import parse_report

RevisionKey = tuple[str, str]
"""(namespace, revision)."""
# The longest stable window Knative allows, and a minute of slack.
HORIZON_S: Final = WINDOW_MAX_S + 60.0

_Second = dict[RevisionKey, tuple[float, int]]


class TrafficCollector:
    """The recent seconds every gateway reported; satisfies the management API's
    `TrafficSink`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._reporters: dict[str, dict[int, _Second]] = {}
        self._shadows: dict[str, dict[RevisionKey, tuple[int, int, int]]] = {}
        self.reports = 0

    def record(self, document: Any) -> None:
        """Keep one gateway's report.

        Raises:
            InvalidInput: the report is malformed (`protocol.traffic.parse_report`).
        """
        report = parse_report(document)
        seconds = self._reporters.setdefault(report["reporter"], {})
        fresh: dict[int, _Second] = {s: {} for s in range(report["first"], report["last"] + 1)}
        for sample in report["samples"]:
            at = fresh[sample["second"]]
            key = (sample["namespace"], sample["revision"])
            concurrency, requests = at.get(key, (0.0, 0))
            at[key] = (concurrency + sample["concurrency"], requests + sample["requests"])
        seconds.update(fresh)
        if "shadow" in report:
            self._shadows[report["reporter"]] = {
                (c["namespace"], c["revision"]): (c["sent"], c["errors"], c["skipped"])
                for c in report["shadow"]
            }
        self.reports += 1
        self._forget_before(self.clock() - HORIZON_S)

    def samples(self, namespace: str, revision: str, now: float, window_s: float) -> list[Sample]:
        """The revision's per-second samples over the `window_s` seconds up to `now`."""
        key = (namespace, revision)
        last = math.floor(now)
        found = []
        for second in range(last - math.ceil(window_s) + 1, last + 1):
            covered = False
            concurrency, requests = 0.0, 0
            for seconds in self._reporters.values():
                at = seconds.get(second)
                if at is None:
                    continue
                covered = True
                reported = at.get(key)
                if reported is not None:
                    concurrency += reported[0]
                    requests += reported[1]
            if covered:
                found.append(Sample(second, round(concurrency, 6), requests))
        return found

    def shadow_counts(self, namespace: str, revision: str) -> tuple[int, int, int]:
        """(sent, errors, skipped) copies of requests to a shadow revision, all gateways."""
        found = [counts.get((namespace, revision), (0, 0, 0)) for counts in self._shadows.values()]
        sent, errors, skipped = (sum(column) for column in zip((0, 0, 0), *found, strict=False))
        return sent, errors, skipped

    def _forget_before(self, oldest: float) -> None:
        for reporter, seconds in list(self._reporters.items()):
            for second in [s for s in seconds if s < oldest]:
                del seconds[second]
            if not seconds:
                del self._reporters[reporter]
                self._shadows.pop(reporter, None)
