"""Storage benchmark: ksrv.storage.download vs boto3's transfer manager, same S3 server, same run.

Starts moto's S3 server on 127.0.0.1, uploads an object set (default 1 GiB: a few large
objects and many small ones, like a sharded checkpoint plus its configs), then downloads the
whole prefix with each client in interleaved rounds into a fresh directory and reports MB/s
(median over rounds). ksrv runs with its cache off, so every round transfers every byte.

    .venv/bin/python bench/storage.py                  # 1 GiB, 3 rounds
    .venv/bin/python bench/storage.py --size-mib 256 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / ".work"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    moto = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto_server did not start")


def object_set(size_mib: int) -> list[tuple[str, int]]:
    """Three quarters in 4 large shards, the rest in 4 MiB files (at least one of each)."""
    mib = 1024 * 1024
    large_total = size_mib * 3 // 4
    small = [(f"model/small-{i:03d}.bin", 4 * mib) for i in range((size_mib - large_total) // 4)]
    shards = [(f"model/shard-{i}.bin", large_total * mib // 4) for i in range(4)]
    return shards + small


def upload(client: object, bucket: str, objects: list[tuple[str, int]]) -> None:
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=64 * 1024 * 1024)
    block = os.urandom(4 * 1024 * 1024)
    for key, size in objects:
        path = WORK / "upload.bin"
        with path.open("wb") as handle:
            for offset in range(0, size, len(block)):
                handle.write(block[: min(len(block), size - offset)])
        client.upload_file(str(path), bucket, key, Config=config)  # type: ignore[attr-defined]
        path.unlink()


def run_ksrv(uri: str, dest: Path) -> None:
    from ksrv.storage import DownloadOptions, download

    download(uri, dest, DownloadOptions(enable_cache=False, progress=False))


def run_boto3(client: object, bucket: str, keys: list[str], dest: Path) -> None:
    """boto3's own transfer manager, every object submitted at once (its best case)."""
    from s3transfer.manager import TransferConfig, TransferManager

    config = TransferConfig()  # boto3 defaults: 8 MiB parts, 10 threads
    with TransferManager(client, config) as manager:
        futures = []
        for key in keys:
            target = dest / key
            target.parent.mkdir(parents=True, exist_ok=True)
            futures.append(manager.download(bucket, key, str(target)))
        for future in futures:
            future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import boto3

    WORK.mkdir(exist_ok=True)
    port = free_port()
    os.environ.update(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    moto = start_moto(port, WORK / "moto.log")
    try:
        client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
        bucket = "bench"
        client.create_bucket(Bucket=bucket)
        objects = object_set(args.size_mib)
        total = sum(size for _, size in objects)
        print(f"uploading {len(objects)} objects, {total / 2**20:.0f} MiB to moto ...", flush=True)
        upload(client, bucket, objects)
        results: dict[str, list[float]] = {"ksrv": [], "boto3": []}
        for round_index in range(args.rounds):
            order = ["ksrv", "boto3"] if round_index % 2 == 0 else ["boto3", "ksrv"]
            for name in order:
                dest = Path(tempfile.mkdtemp(dir=WORK, prefix=f"{name}-"))
                started = time.perf_counter()
                if name == "ksrv":
                    run_ksrv(f"s3://{bucket}/model", dest / "out")
                else:
                    run_boto3(client, bucket, [key for key, _ in objects], dest / "out")
                seconds = time.perf_counter() - started
                got = sum(p.stat().st_size for p in (dest / "out").rglob("*") if p.is_file())
                shutil.rmtree(dest)
                if got != total:
                    raise SystemExit(f"{name}: got {got} bytes, expected {total}")
                results[name].append(total / seconds / 1e6)
                print(f"round {round_index + 1} {name:6s} {total / seconds / 1e6:8.1f} MB/s")
        summary = {name: statistics.median(values) for name, values in results.items()}
        print()
        print(f"{'client':8s} {'MB/s (median)':>14s}")
        for name, value in summary.items():
            print(f"{name:8s} {value:14.1f}")
        print(f"ksrv / boto3 = {summary['ksrv'] / summary['boto3']:.2f}")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        record = {"size_bytes": total, "objects": len(objects), "runs": results}
        (WORK / f"storage-{stamp}.json").write_text(json.dumps(record, indent=2))
    finally:
        os.killpg(moto.pid, signal.SIGTERM)
        moto.wait(10)


if __name__ == "__main__":
    main()
