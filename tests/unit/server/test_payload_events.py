"""payload_events: KServe's payload-logger CloudEvents from recorded payloads (pure)."""

from __future__ import annotations

import json
import random
import uuid

import pytest
from cloudevents.http import from_http, from_json

from ksrv.server import payload_events
from ksrv.server.payload_events import REQUEST_TYPE, RESPONSE_TYPE, Payload
from ksrv.server.settings import PayloadLogSettings

IDS = payload_events.EventIds()
SETTINGS = PayloadLogSettings(
    url="http://sink",
    inference_service="iris",
    namespace="ns",
    component="predictor",
    endpoint="default",
    metadata_headers=("X-Team",),
)


def payload(**changes) -> Payload:
    values = {
        "event_type": REQUEST_TYPE,
        "event_id": "abc",
        "data": b'{"instances":[[1,2]]}',
        "content_type": "application/json",
        "metadata": {"X-Team": ["fraud"]},
        "recorded_s": 1_700_000_000.25,
    }
    return Payload(**{**values, **changes})


def test_binary_mode_carries_kserves_attributes_as_ce_headers_and_the_body_as_is():
    event = payload_events.build_event(SETTINGS, "http://127.0.0.1:9000/", payload(), IDS)
    headers, body = payload_events.binary_http(event)
    assert body == b'{"instances":[[1,2]]}'
    assert headers == {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": "abc",
        "ce-source": "http://127.0.0.1:9000/",
        "ce-type": "org.kubeflow.serving.inference.request",
        "ce-time": "2023-11-14T22:13:20.250000+00:00",
        "ce-inferenceservicename": "iris",
        "ce-namespace": "ns",
        "ce-component": "predictor",
        "ce-endpoint": "default",
        "ce-metadata": '{"X-Team":["fraud"]}',
    }
    parsed = from_http(headers, body)
    assert parsed["type"] == REQUEST_TYPE and parsed.data == {"instances": [[1, 2]]}


def test_metadata_annotations_become_the_annotations_extension():
    settings = PayloadLogSettings(url="stdout", metadata_annotations=(("team", "fraud"),))
    event = payload_events.build_event(settings, "s", payload(metadata={}), IDS)
    assert json.loads(event["annotations"]) == {"team": "fraud"}
    assert event["metadata"] == "{}"
    without = payload_events.build_event(SETTINGS, "s", payload(), IDS)
    assert "annotations" not in without.get_attributes()


def test_an_encoder_turns_a_recorded_value_into_the_body_when_the_event_is_built():
    def encode(value, event_id):
        return json.dumps({**value, "id": event_id}).encode()

    recorded = payload(data={"kept": "as a value"}, encode=encode)
    event = payload_events.build_event(SETTINGS, "s", recorded, IDS)
    assert payload_events.binary_http(event)[1] == b'{"kept": "as a value", "id": "abc"}'


@pytest.mark.parametrize(
    ("ce_id", "request_id", "expected"),
    [
        ("from-ce", "from-request", "from-ce"),  # KServe's agent reads Ce-Id first
        (None, "from-request", "from-request"),
        ("", "from-request", "from-request"),
        (None, "not a token!", None),  # not echoed: EventIds gives one
        (None, None, None),
    ],
)
def test_the_event_id_is_the_callers_ce_id_else_its_request_id(ce_id, request_id, expected):
    assert payload_events.caller_id(ce_id, request_id) == expected


def test_fresh_ids_are_distinct_version_4_uuids_formatted_only_when_built():
    ids = payload_events.EventIds(random.Random(7))
    numbers = [ids.next() for _ in range(3)]
    assert numbers == [0, 1, 2]
    texts = [ids.text(number) for number in numbers]
    assert len(set(texts)) == 3 and all(uuid.UUID(text).version == 4 for text in texts)
    assert ids.text("given") == "given"
    event = payload_events.build_event(SETTINGS, "s", payload(event_id=1), ids)
    assert event["id"] == texts[1]


def test_metadata_headers_match_any_case_keep_repeats_and_the_configured_spelling():
    headers = [("x-team", "a"), ("x-user", "u"), ("X-TEAM", "b"), ("x-team", "c")]
    found = payload_events.selected_headers(
        [(k.lower(), v) for k, v in headers], ("X-Team", "X-Missing")
    )
    assert found == {"X-Team": ["a", "b", "c"]}
    assert payload_events.selected_headers(headers, ()) == {}


@pytest.mark.parametrize(
    ("mode", "requests", "responses"),
    [("all", True, True), ("request", True, False), ("response", False, True)],
)
def test_modes_choose_the_sides_logged(mode, requests, responses):
    settings = PayloadLogSettings(url="stdout", mode=mode)
    assert payload_events.logs_requests(settings) is requests
    assert payload_events.logs_responses(settings) is responses


def test_a_json_line_shows_a_json_payload_as_json_and_anything_else_as_base64():
    event = payload_events.build_event(SETTINGS, "s", payload(event_type=RESPONSE_TYPE), IDS)
    line = payload_events.json_line(event)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line)["data"] == {"instances": [[1, 2]]}
    assert from_json(line)["type"] == RESPONSE_TYPE
    raw = payload(data=b"\x00\x01", content_type="application/octet-stream")
    line = payload_events.json_line(payload_events.build_event(SETTINGS, "s", raw, IDS))
    assert json.loads(line)["data_base64"] == "AAE="
