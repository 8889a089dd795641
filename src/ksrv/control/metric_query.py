"""The model-server metrics a KEDA-style `autoScaling.metrics` entry scales on, evaluated locally.

KServe's LLM autoscaling guide scales an InferenceService with KEDA on a Prometheus query of the
model server's own gauges (`vllm:num_requests_running`, ...). On a cluster Prometheus scrapes the
pods and KEDA asks it; locally there is no Prometheus in the loop, so the autoscaler reads each
ready replica's /metrics itself and evaluates the query here. The subset of PromQL a scaling
query on instant gauges needs is understood: a sum of terms, each a selector or `sum`, `avg`,
`max`, `min` or `count` of one, with `=`, `!=`, `=~`, `!~` label matchers. A bare selector is
summed (KEDA needs one number). Matchers on the labels Prometheus adds to a scraped target
(`namespace`, `pod`, ...) are left out: the replicas read are the revision's own. Anything else
(`rate`, ranges, arithmetic other than `+`) is refused with a reason, so the platform can say
why it does not scale on it. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

# Labels Prometheus attaches to a scraped pod (and KServe's PodMetric query injects).
TARGET_LABELS: Final = frozenset(
    {"namespace", "pod", "instance", "job", "service", "container", "endpoint", "deployment"}
)
_AGGREGATIONS: Final[dict[str, Callable[[list[float]], float]]] = {
    "sum": sum,
    "avg": lambda values: sum(values) / len(values),
    "max": max,
    "min": min,
    "count": lambda values: float(len(values)),
}
_NAME: Final = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_TERM: Final = re.compile(
    rf"\s*(?:(?P<agg>{'|'.join(_AGGREGATIONS)})\s*\(\s*(?P<inner>{_NAME}\s*(?:\{{[^{{}}]*\}})?)\s*\)"
    rf"|(?P<bare>{_NAME}\s*(?:\{{[^{{}}]*\}})?))\s*"
)
_SELECTOR: Final = re.compile(rf"(?P<name>{_NAME})\s*(?:\{{(?P<matchers>[^{{}}]*)\}})?")
_MATCHER: Final = re.compile(
    r'\s*(?P<label>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*'
)

Series = tuple[str, Mapping[str, str], float]
"""One sample of a replica's exposition: metric name, labels, value."""


@dataclass(frozen=True, slots=True)
class Matcher:
    label: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        found = labels.get(self.label, "")
        if self.op in ("=~", "!~"):
            is_match = re.fullmatch(self.value, found) is not None
            return is_match if self.op == "=~" else not is_match
        return (found == self.value) == (self.op == "=")


@dataclass(frozen=True, slots=True)
class Term:
    aggregation: str
    metric: str
    matchers: tuple[Matcher, ...]

    def value(self, series: Iterable[Series]) -> float:
        values = [
            value
            for name, labels, value in series
            if name == self.metric and all(m.matches(labels) for m in self.matchers)
        ]
        return _AGGREGATIONS[self.aggregation](values) if values else 0.0


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """A parsed scaling query: the sum of its terms."""

    text: str
    terms: tuple[Term, ...]

    def value(self, series: Sequence[Series]) -> float:
        """The query's value over every ready replica's samples (none: 0, as KEDA's
        `ignoreNullValues` reads an empty answer)."""
        return sum(term.value(series) for term in self.terms)


@dataclass(frozen=True, slots=True)
class MetricTarget:
    """One `autoScaling.metrics` entry that names a query: KEDA's threshold per replica."""

    kind: str
    """`External` (a Prometheus trigger) or `PodMetric` (OpenTelemetry)."""
    path: str
    """Where it was written, for messages (`autoScaling.metrics[0].external`)."""
    query: str
    target: float


def parse(text: str) -> MetricQuery:
    """The query, or ValueError saying what ksrv cannot evaluate locally."""
    terms: list[Term] = []
    for part in _split_sum(text):
        found = _TERM.fullmatch(part)
        if found is None:
            raise ValueError(
                f"{part.strip()!r} is not a selector or sum/avg/max/min/count of one "
                "(the part of PromQL ksrv evaluates on the replicas' /metrics)"
            )
        aggregation = found.group("agg") or "sum"
        terms.append(_term(aggregation, found.group("inner") or found.group("bare")))
    return MetricQuery(text, tuple(terms))


def _split_sum(text: str) -> list[str]:
    """The top-level `+` operands (a `+` inside braces or quotes is part of a matcher)."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "({":
            depth += 1
        elif not quoted and char in ")}":
            depth -= 1
        elif not quoted and depth == 0 and char == "+":
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    if any(not part.strip() for part in parts):
        raise ValueError(f"{text!r}: an operand of + is empty")
    return parts


def _term(aggregation: str, selector: str) -> Term:
    found = _SELECTOR.fullmatch(selector.strip())
    assert found is not None  # _TERM matched the same shape
    matchers: list[Matcher] = []
    body = (found.group("matchers") or "").strip().rstrip(",")
    for raw in filter(str.strip, body.split(",")) if body else ():
        matcher = _MATCHER.fullmatch(raw)
        if matcher is None:
            raise ValueError(f'{raw.strip()!r} is not a label matcher (label="value")')
        if matcher.group("label") not in TARGET_LABELS:
            value = matcher.group("value").encode().decode("unicode_escape")
            matchers.append(Matcher(matcher.group("label"), matcher.group("op"), value))
    return Term(aggregation, found.group("name"), tuple(matchers))


def metric_targets(auto_scaling: Mapping[str, Any] | None) -> tuple[MetricTarget, ...]:
    """The `autoScaling.metrics` entries that scale on a query (External with a Prometheus
    backend, PodMetric with OpenTelemetry's), each with its target value."""
    found = []
    for index, metric in enumerate((auto_scaling or {}).get("metrics") or ()):
        kind = metric.get("type")
        source = metric.get("external" if kind == "External" else "podmetric") or {}
        spec = source.get("metric") or {}
        backend = spec.get("backend")
        if (kind, backend) not in (("External", "prometheus"), ("PodMetric", "opentelemetry")):
            continue
        query = spec.get("query") or next(iter(spec.get("metricNames") or ()), None)
        target = source.get("target") or {}
        value = target.get("value", target.get("averageValue"))
        if query:
            try:
                threshold = quantity(value)
            except ValueError:
                threshold = -1.0  # refused where the settings are resolved, naming the field
            path = f"autoScaling.metrics[{index}].{kind.lower()}"
            found.append(MetricTarget(kind, path, str(query), threshold))
    return tuple(found)


def quantity(value: Any) -> float:
    """A Kubernetes quantity as KEDA reads a threshold ("2", "500m", 1.5); 0 when unset."""
    if value is None or value == "":
        return 0.0
    text = str(value).strip()
    suffixes = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 1024.0, "Mi": 1024.0**2}
    for suffix, factor in sorted(suffixes.items(), key=lambda item: -len(item[0])):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)
