"""The gateway's traffic report, as it travels to the control plane: one shape, checked once.

Each gateway process counts, per revision and per wall-clock second, the requests it had in
flight (averaged over the second) and the requests that arrived (`gateway/traffic.py`), and
POSTs what it has not delivered yet to `/ksrv/v1/traffic` on the management API about once
a second. The control plane's autoscaler reads the sums (`control/traffic.py`). A report
says which seconds it covers, so a second without a sample for a revision is a 0, not a gap.

```json
{"reporter": "gateway-4242", "first": 1700000000, "last": 1700000002,
 "samples": [{"namespace": "default", "revision": "iris-predictor-00001",
              "second": 1700000001, "concurrency": 1.5, "requests": 7}],
 "shadow": [{"namespace": "default", "revision": "iris-predictor-00002",
             "sent": 50, "errors": 1, "skipped": 0}]}
```

`shadow` (optional, so an older gateway's report still parses) is the reporter's cumulative
shadow-copy counts per shadow revision (`gateway/shadow.py`): each report replaces the last.
"""

from __future__ import annotations

from typing import Any, Final, NotRequired, TypedDict

from ksrv.errors import InvalidInput

# A gateway keeps at most this many undelivered seconds (the longest stable window is 1 h,
# but a control plane that is away that long has restarted and lost its history anyway).
MAX_REPORT_SECONDS: Final = 600
# What one report may span: twice that, for seconds a busy gateway closed late.
MAX_REPORT_SPAN_S: Final = 2 * MAX_REPORT_SECONDS
MAX_SAMPLES: Final = 100_000


class SampleDoc(TypedDict):
    namespace: str
    revision: str
    second: int
    """The wall-clock second the gateway closed the count at: it covers the one before."""
    concurrency: float
    """Requests in flight at the revision, averaged over the second."""
    requests: int
    """Requests that reached the revision in the second."""


class ShadowCountDoc(TypedDict):
    """Copies one gateway process sent a shadow revision, since it became the shadow."""

    namespace: str
    revision: str
    sent: int
    errors: int
    """Sent copies answered non-2xx, dropped or timed out."""
    skipped: int
    """Copies drawn but not sent: a streamed body, no ready replica, too many in flight."""


class TrafficReportDoc(TypedDict):
    reporter: str
    """One gateway process (a resent second replaces, never adds to, its earlier count)."""
    first: int
    last: int
    """The seconds the report covers, both included."""
    samples: list[SampleDoc]
    shadow: NotRequired[list[ShadowCountDoc]]


def parse_report(document: Any) -> TrafficReportDoc:
    """The report, every field checked.

    Raises:
        InvalidInput: a field is missing or of the wrong type, or the seconds are not in order.
    """
    if not isinstance(document, dict):
        raise InvalidInput("a traffic report must be a JSON object")
    reporter = _field(document, "reporter", str, "report")
    first = _field(document, "first", int, "report")
    last = _field(document, "last", int, "report")
    if last < first or last - first >= MAX_REPORT_SPAN_S:
        raise InvalidInput(f"report: seconds {first}..{last} are not a range of at most "
                           f"{MAX_REPORT_SPAN_S}")  # fmt: skip
    raw = _field(document, "samples", list, "report")
    if len(raw) > MAX_SAMPLES:
        raise InvalidInput(f"report: more than {MAX_SAMPLES} samples")
    samples: list[SampleDoc] = []
    for index, item in enumerate(raw):
        where = f"samples[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object")
        sample: SampleDoc = {
            "namespace": _field(item, "namespace", str, where),
            "revision": _field(item, "revision", str, where),
            "second": _field(item, "second", int, where),
            "concurrency": float(_field(item, "concurrency", (int, float), where)),
            "requests": _field(item, "requests", int, where),
        }
        if not first <= sample["second"] <= last:
            raise InvalidInput(f"{where}.second is outside {first}..{last}")
        if sample["concurrency"] < 0 or sample["requests"] < 0:
            raise InvalidInput(f"{where}: counts cannot be negative")
        samples.append(sample)
    report: TrafficReportDoc = {
        "reporter": reporter, "first": first, "last": last, "samples": samples
    }  # fmt: skip
    if "shadow" in document:
        report["shadow"] = _parse_shadow(_field(document, "shadow", list, "report"))
    return report


def _parse_shadow(raw: list[Any]) -> list[ShadowCountDoc]:
    if len(raw) > MAX_SAMPLES:
        raise InvalidInput(f"report: more than {MAX_SAMPLES} shadow counts")
    counts: list[ShadowCountDoc] = []
    for index, item in enumerate(raw):
        where = f"shadow[{index}]"
        if not isinstance(item, dict):
            raise InvalidInput(f"{where} must be an object")
        count: ShadowCountDoc = {
            "namespace": _field(item, "namespace", str, where),
            "revision": _field(item, "revision", str, where),
            "sent": _field(item, "sent", int, where),
            "errors": _field(item, "errors", int, where),
            "skipped": _field(item, "skipped", int, where),
        }
        if min(count["sent"], count["errors"], count["skipped"]) < 0:
            raise InvalidInput(f"{where}: counts cannot be negative")
        counts.append(count)
    return counts


def _field(document: dict[str, Any], name: str, kind: Any, where: str) -> Any:
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise InvalidInput(f"{where}.{name} is missing or of the wrong type")
    return value


class ActivationDoc(TypedDict):
    """The gateway's word that a revision has requests held and no ready replica
    (`POST /ksrv/v1/activate`): the control plane scales it from zero at once."""

    namespace: str
    revision: str


def parse_activation(document: Any) -> ActivationDoc:
    """The activation, every field checked.

    Raises:
        InvalidInput: a field is missing or of the wrong type.
    """
    if not isinstance(document, dict):
        raise InvalidInput("an activation must be a JSON object")
    return {
        "namespace": _field(document, "namespace", str, "activation"),
        "revision": _field(document, "revision", str, "activation"),
    }
