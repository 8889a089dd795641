"""A multi-model predictor's placement at the gateway: each model's home replica, spilling to
the least loaded one when home is busy (plain values; no sockets)."""

from __future__ import annotations

import collections

import pytest

from ksrv.gateway import model_affinity
from ksrv.gateway.balancer import Balancer
from ksrv.gateway.routes import parse_table
from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb

REPLICAS = ("127.0.0.1:9001", "127.0.0.1:9002")


@pytest.mark.parametrize(
    ("target", "model"),
    [
        (b"/v1/models/m7:predict", "m7"),
        (b"/v2/models/m7/infer", "m7"),
        (b"/v2/models/m7", "m7"),
        (b"/serving/default/isvc/v1/models/m-1:explain?x=1", "m-1"),
        (b"/v2/health/ready", None),
        (b"/v1/models/", None),
    ],
)
def test_the_model_comes_from_the_rest_path(target, model):
    assert model_affinity.rest_model(target) == model


def test_the_model_comes_from_a_grpc_requests_first_field():
    message = pb.ModelInferRequest(model_name="m" * 200, id="x").SerializeToString()
    assert model_affinity.grpc_model(message) == "m" * 200
    assert model_affinity.grpc_model(pb.ServerLiveRequest().SerializeToString()) is None
    assert model_affinity.grpc_model(b"\x0a\x05ab") is None  # truncated


def test_models_split_across_replicas_and_keep_their_home_when_a_replica_is_added():
    homes = {f"m{i}": model_affinity.home(REPLICAS, f"m{i}") for i in range(1000)}
    counts = collections.Counter(homes.values())
    assert min(counts.values()) > 400  # about half each
    third = (*REPLICAS, "127.0.0.1:9003")
    moved = [m for m, at in homes.items() if model_affinity.home(third, m) != at]
    assert all(model_affinity.home(third, m) == third[2] for m in moved)
    assert 200 < len(moved) < 470  # about a third move, all to the new replica


def test_a_model_goes_home_until_home_is_busy_then_to_the_least_loaded_replica():
    balancer = Balancer(lambda address: address)
    home = model_affinity.home(REPLICAS, "hot")
    taken = [balancer.take_home(REPLICAS, home, 0, spill_at=2) for _ in range(4)]
    assert [e.address for e in taken if e] == [home, home, *[a for a in REPLICAS if a != home] * 2]


def test_a_down_home_is_passed_over():
    balancer = Balancer(lambda address: address)
    home = model_affinity.home(REPLICAS, "m")
    balancer.endpoint(home).mark_down()
    endpoint = balancer.take_home(REPLICAS, home, 0, spill_at=4)
    assert endpoint is not None and endpoint.address != home


def test_the_route_table_marks_a_multi_model_predictor():
    replica = {"http": REPLICAS[0], "grpc": ""}
    backend = {"revision": "r1", "percent": 100, "replicas": [replica]}
    service = {"namespace": "default", "name": "mms", "components": {
        "predictor": {"backends": [backend], "multi_model": True}}}  # fmt: skip
    table = parse_table({"version": 1, "domain": "example.com", "services": [service]})
    match = table.match("mms-default.example.com", b"/v1/models/a:predict")
    assert match is not None and match.component.is_multi_model
