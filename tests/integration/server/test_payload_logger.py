"""The payload logger of a real `ksrv serve`: KServe's CloudEvents reach a real HTTP sink for
REST V1, V2 and gRPC, and a sink that is down or hangs never costs a request (its losses are
counted, on /metrics too)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from cloudevents.http import from_json
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TESTS_DIR, free_port, wait_until
from tests.event_sink import EventSink

pytestmark = pytest.mark.timeout(120)

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"
ECHO = [f"{TESTS_DIR / 'toys.py'}:Echo", "--model-name", "echo"]
IDENTITY = ["--inference-service", "iris", "--namespace", "ns", "--component", "predictor",
            "--endpoint", "default"]  # fmt: skip
V2_BODY = {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.0, 2.0]}]}


@pytest.fixture
def sink() -> Iterator[EventSink]:
    sink = EventSink()
    yield sink
    sink.close()


def logged_server(start_server, url: str, *flags: str):
    return start_server([*ECHO, "--log-url", url, *IDENTITY, *flags])


def predict_many(client: httpx.Client, server, count: int) -> None:
    """`count` V1 requests, each answered 200."""
    for n in range(count):
        response = client.post(f"{server.url}/v1/models/echo:predict", json={"instances": [n]})
        assert response.status_code == 200


def grpc_infer(server, headers: dict[str, str]) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(server.grpc_target)
    try:
        data = grpcclient.InferInput("x", [2], "FP32")
        data.set_data_from_numpy(np.array([3.0, 4.0], dtype=np.float32))
        result = client.infer("echo", [data], request_id="grpc-1", headers=headers)
        assert result.as_numpy("x").tolist() == [3.0, 4.0]
    finally:
        client.close()


def test_v1_v2_and_grpc_payloads_reach_the_sink_as_kserves_cloudevents(start_server, sink):
    server = logged_server(start_server, sink.url, "--log-metadata-headers", "X-Team,X-User")
    v1 = httpx.post(f"{server.url}/v1/models/echo:predict", json={"instances": [[1, 2]]},
                    headers={"ce-id": "v1-call", "x-team": "fraud"})  # fmt: skip
    v2 = httpx.post(f"{server.url}/v2/models/echo/infer", json=V2_BODY,
                    headers={"x-request-id": "v2-call", "x-user": "ann"})  # fmt: skip
    assert v1.status_code == v2.status_code == 200
    grpc_infer(server, {"x-request-id": "grpc-call", "x-team": "risk"})
    wait_until(lambda: sink.count() == 6, what="six events at the sink")

    by_id: dict[str, dict[str, dict]] = {}
    for event, headers in zip(sink.events, sink.raw_headers, strict=True):
        assert headers["ce-specversion"] == "1.0"  # binary mode: attributes are headers
        assert event["source"] == f"{server.url}/"
        assert (event["inferenceservicename"], event["namespace"]) == ("iris", "ns")
        assert (event["component"], event["endpoint"]) == ("predictor", "default")
        kind = "request" if event["type"] == REQUEST else "response"
        assert event["type"] in (REQUEST, RESPONSE)
        by_id.setdefault(event["id"], {})[kind] = {
            "data": event.data,
            "metadata": json.loads(event["metadata"]),
            "content_type": headers["content-type"],
        }
    assert set(by_id) == {"v1-call", "v2-call", "grpc-call"}
    v1_events, v2_events, grpc_events = by_id["v1-call"], by_id["v2-call"], by_id["grpc-call"]
    assert v1_events["request"]["data"] == {"instances": [[1, 2]]}
    assert v1_events["response"]["data"] == {"predictions": [[1, 2]]}
    assert v1_events["request"]["metadata"] == {"X-Team": ["fraud"]}
    assert v2_events["request"]["data"] == V2_BODY
    assert v2_events["response"]["data"]["outputs"][0]["data"] == [1.0, 2.0]
    assert v2_events["response"]["metadata"] == {"X-User": ["ann"]}
    assert v2_events["response"]["content_type"] == "application/json"
    # gRPC messages arrive as their V2 REST JSON.
    grpc_request = grpc_events["request"]["data"]
    assert grpc_request["id"] == "grpc-1" and grpc_request["inputs"][0]["data"] == [3.0, 4.0]
    assert grpc_events["response"]["data"]["outputs"][0]["data"] == [3.0, 4.0]
    assert grpc_events["request"]["metadata"] == {"X-Team": ["risk"]}


@pytest.mark.parametrize(("mode", "expected"), [("request", REQUEST), ("response", RESPONSE)])
def test_a_mode_logs_only_its_side(start_server, sink, mode, expected):
    server = logged_server(start_server, sink.url, "--log-mode", mode)
    for _ in range(3):
        response = httpx.post(f"{server.url}/v2/models/echo/infer", json=V2_BODY)
        assert response.status_code == 200
    grpc_infer(server, {})
    wait_until(lambda: sink.count() == 4, what="four events")
    assert {event["type"] for event in sink.events} == {expected}
    assert len({event["id"] for event in sink.events}) == 4  # each call its own uuid


def test_a_failed_request_is_logged_without_a_response_and_probes_are_not_logged(
    start_server, sink
):
    server = logged_server(start_server, sink.url)
    assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/echo").status_code == 200
    bad = httpx.post(f"{server.url}/v2/models/echo/infer", content=b"{not json",
                     headers={"ce-id": "bad"})  # fmt: skip
    assert bad.status_code == 400
    good = httpx.post(f"{server.url}/v1/models/echo:predict", json={"instances": [1]},
                      headers={"ce-id": "good"})  # fmt: skip
    assert good.status_code == 200
    wait_until(lambda: sink.count() == 3, what="three events")
    assert sorted((e["id"], e["type"]) for e in sink.events) == [
        ("bad", REQUEST), ("good", REQUEST), ("good", RESPONSE),
    ]  # fmt: skip


def test_a_thousand_requests_make_two_thousand_events(start_server, sink):
    server = logged_server(start_server, sink.url)

    def call(index: int) -> int:
        # http.client: a light client keeps this test to seconds on a busy machine.
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        answered = 0
        for n in range(index, 1000, 8):
            body = json.dumps({"instances": [n]})
            headers = {"ce-id": f"call-{n}", "content-type": "application/json"}
            connection.request("POST", "/v1/models/echo:predict", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            answered += response.status == 200
        connection.close()
        return answered

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(call, range(8))) == 1000
    wait_until(lambda: sink.count() == 2000, what="2000 events", timeout_s=60)
    requests, responses = sink.of_type(".request"), sink.of_type(".response")
    assert len(requests) == len(responses) == 1000
    assert (
        {e["id"] for e in requests}
        == {e["id"] for e in responses}
        == {f"call-{n}" for n in range(1000)}
    )
    for event in responses:
        assert event.data == {"predictions": [int(event["id"].removeprefix("call-"))]}
        assert event["inferenceservicename"] == "iris" and event["component"] == "predictor"
    stats = httpx.get(f"{server.url}/ksrv/server/payload-logger").json()
    assert (stats["submitted"], stats["sent"], stats["failed"], stats["dropped"]) == (
        2000, 2000, 0, 0
    )  # fmt: skip


def test_with_the_sink_down_every_request_is_answered_and_the_losses_are_counted(
    start_server,
):
    down = f"http://127.0.0.1:{free_port()}/"
    server = logged_server(start_server, down, "--log-queue-size", "16")
    with httpx.Client() as client:
        predict_many(client, server, 200)
        grpc_infer(server, {})
        stats = client.get(f"{server.url}/ksrv/server/payload-logger").json()
    assert stats["submitted"] == 402 and stats["sent"] == 0
    assert stats["dropped"] > 0  # the queue filled while the senders retried
    assert stats["dropped"] + stats["failed"] + stats["queued"] <= 402
    log = server.log()
    assert "payload logger: queue full" in log
    assert server.stop() == 0
    final = server.log_path.read_text().splitlines()[-1]
    assert "payload logger stopped: 402 submitted, 0 sent" in final, final
    failed = int(final.split(" sent, ")[1].split(" failed")[0])
    dropped = int(final.split(" failed, ")[1].split(" dropped")[0])
    assert failed + dropped == 402  # every event accounted for


def test_metrics_show_the_payload_loggers_counts_with_the_sink_down(start_server):
    down = f"http://127.0.0.1:{free_port()}/"
    server = logged_server(start_server, down, "--log-queue-size", "4")
    with httpx.Client() as client:
        predict_many(client, server, 50)
        text = client.get(f"{server.url}/metrics").text
        stats = client.get(f"{server.url}/ksrv/server/payload-logger").json()
    found = {
        (sample.name, tuple(sample.labels.values())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert found[("ksrv_payload_log_submitted_total", ())] == 100
    assert found[("ksrv_payload_log_events_total", ("sent",))] == 0
    # Only requests add drops, and none came between the two reads.
    assert found[("ksrv_payload_log_events_total", ("dropped",))] == stats["dropped"] > 0
    assert ("ksrv_payload_log_events_total", ("failed",)) in found
    assert 0 <= found[("ksrv_payload_log_queued", ())] <= 4


def test_metrics_sum_the_payload_loggers_counts_over_the_workers(start_server, sink):
    server = logged_server(start_server, sink.url, "--workers", "2")
    # A connection each, so the kernel spreads them over both workers.
    with httpx.Client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
        predict_many(client, server, 60)
    wait_until(lambda: sink.count() == 120, what="120 events")

    def counts() -> dict[tuple[str, tuple[str, ...]], float]:
        text = httpx.get(f"{server.url}/metrics").text
        return {
            (sample.name, tuple(sample.labels.values())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("ksrv_payload_log")
        }

    # Each worker copies its counts to the shared files once a second.
    wait_until(
        lambda: counts().get(("ksrv_payload_log_events_total", ("sent",))) == 120,
        what="120 sent in /metrics",
    )
    found = counts()
    assert found[("ksrv_payload_log_submitted_total", ())] == 120
    assert found[("ksrv_payload_log_events_total", ("dropped",))] == 0
    assert found[("ksrv_payload_log_queued", ())] == 0


def test_a_hanging_sink_holds_no_request(start_server, sink):
    sink.hold()
    server = logged_server(start_server, sink.url, "--log-queue-size", "8")
    with httpx.Client() as client:
        predict_many(client, server, 50)
    assert sink.count() == 0  # nothing answered by the sink while every call was
    sink.release()
    wait_until(lambda: sink.waiting == 0 and sink.count() > 0, what="the held events")


def test_file_and_stdout_sinks_write_one_structured_event_per_line(start_server, tmp_path: Path):
    path = tmp_path / "events.jsonl"
    server = logged_server(start_server, f"file://{path}")
    response = httpx.post(f"{server.url}/v1/models/echo:predict", json={"instances": [7]},
                          headers={"ce-id": "filed"})  # fmt: skip
    assert response.status_code == 200
    wait_until(lambda: path.exists() and path.read_text().count("\n") == 2, what="two lines")
    events = [from_json(line) for line in path.read_text().splitlines()]
    assert [(e["id"], e["type"]) for e in events] == [("filed", REQUEST), ("filed", RESPONSE)]
    assert events[1].data == {"predictions": [7]}

    printing = logged_server(start_server, "stdout")
    httpx.post(f"{printing.url}/v1/models/echo:predict", json={"instances": [8]})
    wait_until(lambda: '"data": {"predictions": [8]}' in printing.log(), what="the stdout line")


def test_log_flags_without_a_url_or_with_a_bad_one_are_refused():
    from click.testing import CliRunner

    from ksrv.cli.serve import serve as serve_command

    runner = CliRunner()
    result = runner.invoke(serve_command, [*ECHO, "--log-mode", "request"])
    assert result.exit_code == 2 and "--log-mode needs --log-url" in result.output
    result = runner.invoke(serve_command, [*ECHO, "--log-url", "ftp://sink"])
    assert result.exit_code == 2 and "expected http(s)://host/" in result.output
    result = runner.invoke(
        serve_command, [*ECHO, "--log-url", "stdout", "--log-metadata-annotations", "team"]
    )
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.output


STREAMING_MODEL = """
from ksrv import Model


class Lines(Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None):
        for word in payload["instances"]:
            yield f"{word}\\n"
"""


def test_a_streamed_response_is_logged_whole_once_it_has_ended(start_server, sink, tmp_path):
    model = tmp_path / "lines.py"
    model.write_text(STREAMING_MODEL)
    server = start_server([f"{model}:Lines", "--model-name", "lines", "--log-url", sink.url])
    url = f"{server.url}/v1/models/lines:predict"
    body = {"instances": ["a", "b", "c"]}
    with httpx.stream("POST", url, json=body, headers={"ce-id": "s"}) as streamed:
        assert b"".join(streamed.iter_bytes()) == b"a\nb\nc\n"
    wait_until(lambda: sink.count() == 2, what="the request and the streamed response")
    response = sink.of_type(".response")[0]
    assert response["id"] == "s" and response.data == b"a\nb\nc\n"


def test_a_refusing_sink_is_retried_on_5xx_not_on_4xx_and_closed_connections_are_reopened(
    start_server, sink
):
    sink.is_closing_idle = True  # every event after the first finds its connection closed
    sink.answers = [503, 400]
    server = logged_server(start_server, sink.url, "--log-mode", "request")
    url = f"{server.url}/v1/models/echo:predict"
    for name in ("retried", "refused", "fine-1", "fine-2", "fine-3"):
        assert httpx.post(url, json={"instances": [1]}, headers={"ce-id": name}).status_code == 200

    def counts() -> dict:
        return httpx.get(f"{server.url}/ksrv/server/payload-logger").json()

    wait_until(lambda: counts()["sent"] + counts()["failed"] == 5, what="every event settled")
    assert (counts()["sent"], counts()["failed"]) == (4, 1)
    # Whichever event arrived first got the 503 and came again; the next got the 400.
    received = [event["id"] for event in sink.events]
    assert len(received) == 6 and set(received) == {"retried", "refused", "fine-1", "fine-2",
                                                    "fine-3"}  # fmt: skip
