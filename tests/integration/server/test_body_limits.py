"""One request cannot take a replica's memory: JSON past `rest_codec.MAX_JSON_BYTES` is 413
before it is decoded (decoding costs about 14 times its size), while the same tensor sent
with the binary extension is served; and large bodies leave no resident memory behind."""

from __future__ import annotations

import socket

import httpx
import numpy as np

from ksrv.protocol import rest_codec
from tests.conftest import toy_script_server

MIB = 1024 * 1024

ROWS = rest_codec.MAX_JSON_BYTES // 16 + 1  # 4 FP32 features of "0.5," each: past the limit


def _json_rows(rows: int) -> bytes:
    data = b"0.5," * (rows * 4)
    return b'{"inputs":[{"name":"x","shape":[%d,4],"datatype":"FP32","data":[%b]}]}' % (
        rows,
        data[:-1],
    )


def test_json_past_the_decoder_limit_is_413_and_the_same_tensor_in_binary_is_served(
    iris_server,
):
    body = _json_rows(ROWS)
    assert len(body) > rest_codec.MAX_JSON_BYTES
    v2 = f"{iris_server.url}/v2/models/iris/infer"
    refused = httpx.post(v2, content=body, timeout=60)
    assert refused.status_code == 413, refused.text[:300]
    assert "binary tensor extension" in refused.json()["error"]
    v1 = httpx.post(
        f"{iris_server.url}/v1/models/iris:predict",
        content=b'{"instances":[' + b"[0.5,0.5,0.5,0.5]," * ROWS + b"[0.5,0.5,0.5,0.5]]}",
        timeout=60,
    )
    assert v1.status_code == 413, v1.text[:300]

    tensor = np.full((ROWS, 4), 0.5, dtype=np.float32).tobytes()
    header = (
        b'{"inputs":[{"name":"x","shape":[%d,4],"datatype":"FP32",'
        b'"parameters":{"binary_data_size":%d}}]}' % (ROWS, len(tensor))
    )
    served = httpx.post(
        v2,
        content=header + tensor,
        headers={"inference-header-content-length": str(len(header))},
        timeout=120,
    )
    assert served.status_code == 200, served.text[:300]


def test_large_bodies_leave_no_memory_behind_in_the_replica():
    # Kept as a list of 256 KB reads, 4 x 60 MiB left about 300 MB resident for good.
    server = toy_script_server(grpc=False)
    try:
        before = _rss_mb(server.process.pid)
        piece = b"x" * MIB
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
                sock.sendall(b"POST /v2/models/sum/infer HTTP/1.1\r\nhost: x\r\n"
                             b"content-length: %d\r\n\r\n" % (60 * MIB))  # fmt: skip
                for _ in range(60):
                    sock.sendall(piece)
                assert sock.recv(12) == b"HTTP/1.1 413"  # past MAX_JSON_BYTES, read whole
        assert _rss_mb(server.process.pid) - before < 150
    finally:
        server.stop()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))
