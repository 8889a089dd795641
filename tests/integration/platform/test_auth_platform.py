"""Bearer tokens and TLS on a real `ksrv up --auth --tls-cert --tls-key` platform.

The bar: with `serving.kserve.io/enable-auth: "true"`, a request without a token gets 401 and
reaches no replica (the `calls` toy counts what reached it), a token of the service's
namespace works, one of another namespace gets 403, a revoked one 401; REST and gRPC. The
management API takes admin tokens only; the gateway still gets its routes (its own token).
Every client verifies the test CA's certificate.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest

from tests.conftest import KSRV, TESTS_DIR, wait_until
from tests.integration.platform.conftest import _assert_no_leftovers
from tests.platform_support import LocalKsrv
from tests.tls_support import PKI, make_pki

NAMESPACE = "team-a"
ISVCS = "/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices"
ROWS = [[6.8, 2.8, 4.8, 1.4], [6.0, 3.4, 4.5, 1.6]]
PROTECTED = {"serving.kserve.io/enable-auth": "true"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, pki: PKI) -> Iterator[LocalKsrv]:
    state = tmp_path_factory.mktemp("ksrv-auth")
    args = ("--auth", "--tls-cert", str(pki.cert), "--tls-key", str(pki.key))
    running = LocalKsrv(state, args=args, ca=pki.ca).start()
    try:
        yield running
    finally:
        running.stop()
        _assert_no_leftovers(running)


@pytest.fixture(scope="module")
def services(platform: LocalKsrv, model_dirs: dict[str, Path]) -> LocalKsrv:
    iris = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "iris", "namespace": NAMESPACE, "annotations": PROTECTED},
        "spec": {
            "predictor": {
                "model": {
                    "modelFormat": {"name": "sklearn"},
                    "storageUri": str(model_dirs["sklearn"]),
                }
            }
        },
    }
    platform.apply([iris, calls_service(NAMESPACE)])
    platform.wait_ready("iris", NAMESPACE)
    platform.wait_ready("calls", NAMESPACE)
    return platform


def calls_service(namespace: str) -> dict:
    """The `calls` toy (it answers how many predictions reached it), protected."""
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": "calls", "namespace": namespace, "annotations": PROTECTED},
        "spec": {"predictor": {"containers": [{
            "name": "kserve-container", "image": "ksrv-toys",
            "command": ["ksrv", "serve", f"{TESTS_DIR / 'toys.py'}:Calls"],
            "args": ["--model-name", "calls"],
        }]}},
    }  # fmt: skip


def create_token(platform: LocalKsrv, *args: str) -> str:
    """The secret `ksrv token create` prints alone on stdout."""
    output = platform.cli("token", "create", *args)
    return output.splitlines()[0]


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def predict(platform: LocalKsrv, name: str, headers: dict[str, str]) -> httpx.Response:
    url = f"{platform.gateway}/serving/{NAMESPACE}/{name}/v1/models/{name}:predict"
    return platform.http.post(url, json={"instances": ROWS}, headers=headers)


def grpc_calls(platform: LocalKsrv, pki: PKI, token: str | None) -> int:
    """ModelInfer on the `calls` toy over TLS: the count it answers, or raises RpcError."""
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2 as pb2
    from ksrv.protocol.grpc._gen import grpc_predict_v2_pb2_grpc as pb2_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    metadata = [("host", f"calls.{NAMESPACE}.example.com")]
    if token is not None:
        metadata.append(("authorization", f"Bearer {token}"))
    request = pb2.ModelInferRequest(model_name="calls")
    tensor = request.inputs.add(name="x", datatype="INT64", shape=[1])
    tensor.contents.int64_contents.append(1)
    with grpc.secure_channel(f"127.0.0.1:{platform.grpc_port}", credentials) as channel:
        answer = pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, metadata=metadata, timeout=30
        )
    return (
        int(np.frombuffer(answer.raw_output_contents[0], np.int64)[0])
        if (answer.raw_output_contents)
        else int(answer.outputs[0].contents.int64_contents[0])
    )


def test_the_management_api_takes_admin_tokens_only(platform: LocalKsrv):
    assert platform.http.get(f"{platform.api}/healthz").status_code == 200  # probes stay open
    anonymous = platform.http.get(f"{platform.api}{ISVCS}")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert anonymous.json()["reason"] == "Unauthorized"
    wrong = platform.http.get(f"{platform.api}{ISVCS}", headers=bearer("ksrv_not-a-token"))
    assert wrong.status_code == 401
    invoke = create_token(platform, "caller", "-n", "default")
    refused = platform.http.get(f"{platform.api}{ISVCS}", headers=bearer(invoke))
    assert refused.status_code == 403 and refused.json()["reason"] == "Forbidden"
    # The CLI on this machine uses the admin token `ksrv up --auth` wrote (mode 600).
    admin_file = platform.state_dir / "admin.token"
    assert admin_file.stat().st_mode & 0o777 == 0o600
    listed = platform.cli("token", "list")
    assert "admin" in listed and "caller" in listed and invoke not in listed
    admin = admin_file.read_text().strip()
    assert platform.http.get(f"{platform.api}{ISVCS}", headers=bearer(admin)).status_code == 200
    failed = platform.cli("--token", "ksrv_wrong", "get", "isvc", check=False)
    assert "Unauthorized" in failed
    untrusting = {k: v for k, v in platform.env.items() if k != "KSRV_CA_FILE"}
    result = subprocess.run(
        [*KSRV, "get", "isvc"], capture_output=True, text=True, env=untrusting, timeout=60
    )
    assert result.returncode == 1 and "--certificate-authority" in result.stderr
    # Only TLS is served, with the certificate the test CA signed.
    plain = platform.api.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{platform.api}/healthz", timeout=5)  # the system CAs do not know it


def test_enable_auth_refuses_before_any_replica_and_admits_the_namespace_token(
    services: LocalKsrv, pki: PKI
):
    platform = services
    mine = create_token(platform, "team-a-caller", "--namespace", NAMESPACE)
    theirs = create_token(platform, "team-b-caller", "--namespace", "team-b")
    for name in ("iris", "calls"):
        missing = predict(platform, name, {})
        assert missing.status_code == 401, missing.text
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert predict(platform, name, bearer("ksrv_made-up")).status_code == 401
        assert predict(platform, name, {"authorization": "Basic eDp5"}).status_code == 401
        other = predict(platform, name, bearer(theirs))
        assert other.status_code == 403, other.text
        assert "team-b" in other.json()["error"]
    for token, code in ((None, grpc.StatusCode.UNAUTHENTICATED),
                        (theirs, grpc.StatusCode.PERMISSION_DENIED)):  # fmt: skip
        with pytest.raises(grpc.RpcError) as refused:
            grpc_calls(platform, pki, token)
        assert refused.value.code() == code
    # Nothing refused reached the replica: this is the first call it sees.
    assert predict(platform, "calls", bearer(mine)).json() == {"calls": 1}
    assert grpc_calls(platform, pki, mine) == 2
    answer = predict(platform, "iris", bearer(mine))
    assert answer.status_code == 200 and answer.json() == {"predictions": [1, 1]}


def test_a_revoked_token_is_refused_and_an_admin_token_opens_every_namespace(
    services: LocalKsrv,
):
    platform = services
    token = create_token(platform, "short-lived", "-n", NAMESPACE)
    assert predict(platform, "iris", bearer(token)).status_code == 200
    assert 'token "short-lived" revoked' in platform.cli("token", "revoke", "short-lived")
    wait_until(
        lambda: predict(platform, "iris", bearer(token)).status_code == 401, "revocation applies"
    )
    admin = (platform.state_dir / "admin.token").read_text().strip()
    assert predict(platform, "iris", bearer(admin)).status_code == 200
    listed = json.dumps(platform.cli("token", "list"))
    assert "short-lived" not in listed


def test_a_loopback_platform_without_auth_still_protects_an_annotated_service(tmp_path):
    """The common local case: `ksrv up` as before (no --auth, no TLS), tokens made without
    any credential, one protected service."""
    platform = LocalKsrv(tmp_path).start()
    try:
        platform.apply([calls_service("default")])
        token = create_token(platform)  # an invoke token for `default`, no credential needed
        assert not (tmp_path / "admin.token").exists()
        assert platform.http.get(f"{platform.api}{ISVCS}").status_code == 200  # API stays open
        platform.wait_ready("calls")
        url = f"{platform.gateway}/serving/default/calls/v1/models/calls:predict"
        assert platform.http.post(url, json={"instances": [1]}).status_code == 401
        answer = platform.http.post(url, json={"instances": [1]}, headers=bearer(token))
        assert answer.json() == {"calls": 1}
    finally:
        platform.stop()
        _assert_no_leftovers(platform)
