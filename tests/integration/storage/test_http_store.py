"""http(s):// against a real HTTP server on 127.0.0.1: files, archives, safety, ranges, retries."""

from __future__ import annotations

import concurrent.futures
import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import DownloadOptions, download
from tests.conftest import wait_until


def tar_gz(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def zipped(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def leftovers(root: Path) -> list[str]:
    """Everything under `root` except the cache's lock files: what a failure left behind."""
    return [
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.suffix != ".lock" and p.name != "cache"
    ]


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_plain_file_lands_under_its_own_name(isolated_env, http_store, tmp_path):
    url = http_store.put("model.joblib", b"model")
    assert files(download(url, tmp_path / "out")) == {"model.joblib": b"model"}


def test_a_tar_gz_is_unpacked(isolated_env, http_store, tmp_path):
    url = http_store.put("model.tar.gz", tar_gz({"iris/model.joblib": b"m", "README": b"r"}))
    assert files(download(url, tmp_path / "out")) == {"iris/model.joblib": b"m", "README": b"r"}


def test_a_zip_is_unpacked(isolated_env, http_store, tmp_path):
    url = http_store.put("model.zip", zipped({"model.joblib": b"m", "sub/a.txt": b"a"}))
    assert files(download(url, tmp_path / "out")) == {"model.joblib": b"m", "sub/a.txt": b"a"}


def test_an_archive_known_only_by_its_content_type_is_unpacked(isolated_env, http_store, tmp_path):
    url = http_store.put("download", tar_gz({"model.joblib": b"m"})) + "?gzip"
    assert files(download(url, tmp_path / "out")) == {"model.joblib": b"m"}


def test_second_download_of_the_same_url_sends_no_get(isolated_env, http_store, tmp_path):
    url = http_store.put("model.joblib", b"m" * 1000)
    download(url, tmp_path / "a")
    download(url, tmp_path / "b")
    assert http_store.gets(url) == 1
    assert files(tmp_path / "b") == {"model.joblib": b"m" * 1000}


def test_a_big_file_arrives_in_parallel_ranges(isolated_env, http_store, tmp_path):
    data = os.urandom(3 * 1024 * 1024)
    url = http_store.put("weights.bin", data)
    options = DownloadOptions(part_bytes=512 * 1024, concurrency=4)
    path = download(url, tmp_path / "out", options)
    assert (path / "weights.bin").read_bytes() == data
    assert http_store.gets(url) == 6


def test_a_dropped_connection_resumes_where_the_part_stopped(isolated_env, http_store, tmp_path):
    data = os.urandom(2 * 1024 * 1024)
    url = http_store.put("weights.bin", data) + "?drop=100000"
    options = DownloadOptions(part_bytes=4 * 1024 * 1024)
    path = download(url, tmp_path / "out", options)
    assert (path / "weights.bin").read_bytes() == data
    ranges = [
        line for line in http_store.log if line.startswith(f"GET {url[len(http_store.url) :]}")
    ]
    assert ranges[-1].endswith("bytes=100000-")  # the retry asked only for the rest


def test_a_server_without_ranges_still_works_after_a_drop(isolated_env, http_store, tmp_path):
    data = os.urandom(300_000)
    url = http_store.put("weights.bin", data) + "?noranges&drop=1000"
    path = download(url, tmp_path / "out")
    assert (path / "weights.bin").read_bytes() == data


def test_a_404_names_the_url_and_the_status(isolated_env, http_store, tmp_path):
    url = f"{http_store.url}/missing/model.joblib"
    with pytest.raises(StorageError, match=rf"{url}: HTTP 404 \(not found\)"):
        download(url, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_tar_with_a_path_traversal_is_refused_and_leaves_nothing(
    isolated_env, http_store, tmp_path
):
    url = http_store.put("evil.tar.gz", tar_gz({"ok.txt": b"ok", "../../escape.txt": b"x"}))
    with pytest.raises(StorageError, match=r"evil.tar.gz.*'\.\./\.\./escape.txt' points outside"):
        download(url, tmp_path / "out")
    assert leftovers(tmp_path) == []
    assert not (tmp_path.parent / "escape.txt").exists()


def test_a_tar_with_a_link_out_of_the_target_is_refused(isolated_env, http_store, tmp_path):
    url = http_store.put("link.tar.gz", tar_gz({}, links={"etc": "../../../etc"}))
    with pytest.raises(StorageError, match="points outside the destination"):
        download(url, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_corrupt_archive_is_a_clear_error(isolated_env, http_store, tmp_path):
    url = http_store.put("model.tar.gz", b"\x1f\x8b\x08 definitely not gzip")
    with pytest.raises(StorageError, match=r"model.tar.gz: corrupt archive"):
        download(url, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_a_decompression_bomb_stops_at_the_limit(isolated_env, http_store, tmp_path):
    url = http_store.put("bomb.zip", zipped({"zeros.bin": bytes(20 * 1024 * 1024)}))
    with pytest.raises(StorageError, match="unpacked size exceeds the limit of 1000000 bytes"):
        download(url, tmp_path / "out", DownloadOptions(max_bytes=1_000_000))
    assert leftovers(tmp_path) == []


def test_per_host_headers_from_the_environment_are_sent(
    isolated_env, http_store, tmp_path, monkeypatch
):
    url = http_store.put("model.joblib", b"m")
    monkeypatch.setenv("127.0.0.1-headers", '{"x-token": "abc"}')
    download(url, tmp_path / "out")  # the handler accepts any header; this checks parsing
    monkeypatch.setenv("127.0.0.1-headers", "not json")
    with pytest.raises(StorageError, match=r"127\.0\.0\.1-headers is not JSON"):
        download(url, tmp_path / "again")


def test_a_server_that_keeps_failing_gives_up_after_the_retries(isolated_env, http_store, tmp_path):
    url = http_store.put("model.joblib", b"m" * 1000) + "?status=503"
    with pytest.raises(StorageError) as caught:
        download(url, tmp_path / "out")
    assert str(caught.value) == f"{url}: failed after 3 attempts: HTTP 503"  # the URL once
    assert http_store.gets(url) == 3
    assert leftovers(tmp_path) == []


def lock_waiters(cache_dir: Path) -> int:
    """Callers blocked on a lock file of the cache (blocked flocks in Linux's /proc/locks)."""
    inodes = {str(path.stat().st_ino) for path in cache_dir.glob("*.lock")}
    with open("/proc/locks") as locks:
        blocked = [line.split() for line in locks if " -> " in line]
    return sum(1 for fields in blocked if fields[-3].rpartition(":")[2] in inodes)


def test_concurrent_downloads_of_one_uri_fetch_it_once(isolated_env, http_store, tmp_path):
    url = http_store.put("weights.bin", os.urandom(1024 * 1024))
    http_store.hold(url)  # the first GET waits until the other three wait for its lock
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(download, url, tmp_path / f"out{i}") for i in range(4)]
        try:
            wait_until(
                lambda: http_store.gets(url) == 1 and lock_waiters(isolated_env) == 3,
                "one download fetches while the three others wait for it",
            )
        finally:
            http_store.release(url)
        paths = [future.result() for future in futures]
    assert http_store.gets(url) == 1
    assert len({(path / "weights.bin").read_bytes() for path in paths}) == 1


def test_without_a_version_to_key_on_each_download_fetches_and_swaps(isolated_env, http_store):
    url = http_store.put("model.joblib", b"v1") + "?noetag"
    first = download(url)
    (http_store.root / url.split("/")[-2] / "model.joblib").write_bytes(b"v2")
    second = download(url)
    assert first == second
    assert (second / "model.joblib").read_bytes() == b"v2"
    assert http_store.gets(url) == 2
