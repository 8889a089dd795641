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


def test_a_model_goes_home_until_home_is_busy_then_its_holders_share_it():
    balancer = Balancer(lambda address: address)
    placement = model_affinity.ModelPlacement()
    home = model_affinity.home(REPLICAS, "hot")
    other = next(a for a in REPLICAS if a != home)
    hot = model_affinity.HOT_AT
    taken = [placement.take(balancer, REPLICAS, "hot", 0) for _ in range(hot + 1)]
    assert [e.address for e in taken if e] == [home] * hot + [other]
    assert placement.holders("hot") == [home, other]
    for endpoint in taken:
        balancer.release(endpoint)
        placement.done("hot", endpoint.address)
    # both hold it now: the least busy one gets it
    balancer.endpoint(home).outstanding = 2
    endpoint = placement.take(balancer, REPLICAS, "hot", 0)
    assert endpoint is not None and endpoint.address == other


def test_a_cold_model_stays_on_one_replica_however_busy_that_one_is():
    balancer = Balancer(lambda address: address)
    placement = model_affinity.ModelPlacement()
    home = model_affinity.home(REPLICAS, "cold")
    balancer.endpoint(home).outstanding = 50  # other models' requests
    for _ in range(10):
        endpoint = placement.take(balancer, REPLICAS, "cold", 0)
        assert endpoint is not None
        balancer.release(endpoint)
        placement.done("cold", endpoint.address)
    assert placement.holders("cold") == [home]


def test_a_down_holder_is_passed_over_and_the_memory_is_bounded():
    balancer = Balancer(lambda address: address)
    placement = model_affinity.ModelPlacement(max_models=2)
    home = model_affinity.home(REPLICAS, "m")
    balancer.endpoint(home).mark_down()
    endpoint = placement.take(balancer, REPLICAS, "m", 0)
    assert endpoint is not None and endpoint.address != home
    for name in ("x", "y"):
        placement.take(balancer, REPLICAS, name, 0)
    assert placement.holders("m") == []


def test_the_route_table_marks_a_multi_model_predictor():
    replica = {"http": REPLICAS[0], "grpc": ""}
    backend = {"revision": "r1", "percent": 100, "replicas": [replica]}
    service = {"namespace": "default", "name": "mms", "components": {
        "predictor": {"backends": [backend], "multi_model": True}}}  # fmt: skip
    table = parse_table({"version": 1, "domain": "example.com", "services": [service]})
    match = table.match("mms-default.example.com", b"/v1/models/a:predict")
    assert match is not None and match.component.is_multi_model
