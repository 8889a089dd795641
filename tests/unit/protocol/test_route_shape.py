"""The route table's one shape: what the control plane publishes is what the gateway parses."""

from __future__ import annotations

from ksrv.api.kinds import COMPONENTS as RESOURCE_COMPONENTS
from ksrv.gateway.routes import parse_table
from ksrv.protocol import routes
from ksrv.protocol.routes import RouteTableDoc


def test_the_wire_and_the_resources_name_the_same_components():
    assert routes.COMPONENTS == RESOURCE_COMPONENTS


def test_a_published_document_parses_with_every_field_kept():
    document: RouteTableDoc = {
        "version": 7,
        "domain": "example.com",
        "services": [
            {
                "namespace": "default",
                "name": "iris",
                "timeout_s": 30.0,
                "entry": "transformer",
                "components": {
                    "transformer": {"backends": [], "timeout_s": None},
                    "predictor": {
                        "timeout_s": 5.0,
                        "backends": [
                            {
                                "revision": "iris-predictor-00002",
                                "percent": 90,
                                "tag": "latest",
                                "replicas": [{"http": "127.0.0.1:1", "grpc": "127.0.0.1:2"}],
                            },
                            {
                                "revision": "iris-predictor-00001",
                                "percent": 10,
                                "replicas": [{"http": "127.0.0.1:3", "grpc": ""}],
                            },
                        ],
                    },
                },
            }
        ],
    }
    table = parse_table(document)
    assert (table.version, table.domain) == (7, "example.com")
    (service,) = table.services
    assert (service.name, service.timeout_s, service.entry) == ("iris", 30.0, "transformer")
    predictor = service.components["predictor"]
    assert predictor.timeout_s == 5.0
    assert [(b.revision, b.percent, b.tag) for b in predictor.backends] == [
        ("iris-predictor-00002", 90, "latest"),
        ("iris-predictor-00001", 10, ""),
    ]
    assert [r.grpc for b in predictor.backends for r in b.replicas] == ["127.0.0.1:2", ""]
    assert service.components["transformer"].backends == ()
    assert service.components["transformer"].timeout_s is None
