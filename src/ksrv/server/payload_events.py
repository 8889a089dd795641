"""KServe's payload-logger CloudEvents, built from what one request or response carried.

Pure: a `Payload` is recorded on the request path (cheap: references and a number, no
encoding) and becomes a CloudEvent here, on a sender thread. The attributes are those of
KServe's agent (`pkg/logger`): `ce-type` `org.kubeflow.serving.inference.request|response`,
`ce-id` shared by a request and its response, extensions `inferenceservicename`,
`namespace`, `component`, `endpoint`, `metadata` (the selected headers as JSON) and
`annotations`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.conversion import to_binary, to_json
from cloudevents.http import CloudEvent

from ksrv.protocol import correlation
from ksrv.server.settings import PayloadLogSettings

REQUEST_TYPE: Final = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"
MODES: Final = ("all", "request", "response")
# KServe's `logger.defaultUrl` in the inferenceservice-config ConfigMap.
DEFAULT_URL: Final = "http://default-broker"
JSON: Final = "application/json"


@dataclass(slots=True)
class Payload:
    """One message to log, as recorded on the request path.

    `event_id` is the caller's id, or a number `EventIds` turns into a uuid when the event is
    built. `data` is the body as bytes, or any value `encode(data, event_id)` turns into
    bytes then (a gRPC message): the request path never pays for encoding.
    """

    event_type: str
    event_id: str | int
    data: Any
    content_type: str
    metadata: dict[str, list[str]]
    recorded_s: float
    encode: Callable[[Any, str], bytes] | None = None

    def body(self, event_id: str) -> bytes:
        if self.encode is not None:
            return self.encode(self.data, event_id)
        return bytes(self.data)


class EventIds:
    """Ids for calls that bring none: a random 128-bit base per process plus a counter,
    shown as a version-4 uuid. Only the number is taken on the request path; formatting a
    fresh `uuid4()` there would cost more than the rest of the logger's work per call."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._base = (rng or random.SystemRandom()).getrandbits(128)
        self.next = itertools.count().__next__

    def text(self, event_id: str | int) -> str:
        if isinstance(event_id, str):
            return event_id
        return str(uuid.UUID(int=(self._base + event_id) % (1 << 128), version=4))


def logs_requests(settings: PayloadLogSettings) -> bool:
    return settings.mode in ("all", "request")


def logs_responses(settings: PayloadLogSettings) -> bool:
    return settings.mode in ("all", "response")


def caller_id(ce_id: str | None, request_id: str | None) -> str | None:
    """The caller's `ce-id` (as KServe's agent reads it), else its `x-request-id` (when it
    is a sane token, `protocol.correlation`); None when neither: `EventIds` gives one."""
    if ce_id:
        return ce_id
    return correlation.sane_request_id(request_id)


def selected_headers(
    headers: Iterable[tuple[str, str]], names: tuple[str, ...]
) -> dict[str, list[str]]:
    """The values of the `metadataHeaders` among `headers` (lower-case names, repeats kept),
    keyed by the names as configured; headers match case-insensitively."""
    if not names:
        return {}
    wanted = {name.lower(): name for name in names}
    found: dict[str, list[str]] = {}
    for key, value in headers:
        name = wanted.get(key)
        if name is not None:
            found.setdefault(name, []).append(value)
    return found


def build_event(
    settings: PayloadLogSettings, source: str, payload: Payload, ids: EventIds
) -> CloudEvent:
    """The CloudEvent KServe's agent would send for `payload`."""
    event_id = ids.text(payload.event_id)
    attributes = {
        "type": payload.event_type,
        "source": source,
        "id": event_id,
        "time": datetime.fromtimestamp(payload.recorded_s, UTC).isoformat(),
        "datacontenttype": payload.content_type,
        "inferenceservicename": settings.inference_service,
        "namespace": settings.namespace,
        "component": settings.component,
        "endpoint": settings.endpoint,
        "metadata": json.dumps(payload.metadata, separators=(",", ":")),
    }
    if settings.metadata_annotations:
        attributes["annotations"] = json.dumps(
            dict(settings.metadata_annotations), separators=(",", ":")
        )
    return CloudEvent(attributes, payload.body(event_id))


def binary_http(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary content mode: attributes as `ce-*` headers, the payload as the body, as is."""
    headers, body = to_binary(event, data_marshaller=_as_is)
    return headers, body


def json_line(event: CloudEvent) -> bytes:
    """Structured mode on one line (file and stdout sinks): a JSON payload appears as JSON,
    anything else as `data_base64`."""
    data = event.get_data()
    if isinstance(data, bytes) and "json" in str(event.get("datacontenttype", "")):
        with contextlib.suppress(ValueError):
            event = CloudEvent(event.get_attributes(), json.loads(data))
    return to_json(event).replace(b"\n", b" ") + b"\n"


def _as_is(data: Any) -> Any:
    return data
