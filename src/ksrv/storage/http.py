"""`http(s)://host/file`: one object, unpacked when it is a .zip or .tar(.gz) archive.

A HEAD names the size, the version (ETag, else Last-Modified) and whether the server serves
byte ranges; without ranges the file streams in one request and a retry starts over. Extra
request headers come from the environment variable `{host}-headers` (JSON), as in KServe.
"""

from __future__ import annotations

import json
import mimetypes
from collections.abc import Iterator, Mapping
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from ksrv.errors import StorageError
from ksrv.storage.base import DownloadOptions, Listing, RemoteObject, TransientError

# Archive content types KServe unpacks, with the suffix that makes `archive` recognise them.
ARCHIVE_TYPES = {
    "application/zip": ".zip",
    "application/x-zip-compressed": ".zip",
    "application/x-tar": ".tar",
    "application/gzip": ".tar.gz",
    "application/x-gzip": ".tar.gz",
    "application/x-gtar": ".tar.gz",
}


def host_headers(url: str, env: Mapping[str, str]) -> dict[str, str]:
    """KServe's per-host headers: env `{host}-headers` holds a JSON object."""
    host = urlsplit(url).hostname or ""
    raw = env.get(f"{host}-headers")
    if not raw:
        return {}
    try:
        headers = json.loads(raw)
    except ValueError as exc:
        raise StorageError(f"{host}-headers is not JSON: {exc}") from exc
    if not isinstance(headers, dict):
        raise StorageError(f"{host}-headers must be a JSON object")
    return {str(name): str(value) for name, value in headers.items()}


def file_name(url: str, content_type: str) -> str:
    """The local name: the URL's last path segment, with an archive suffix if only the
    content type says it is one."""
    name = unquote(PurePosixPath(urlsplit(url).path).name) or "model"
    suffix = ARCHIVE_TYPES.get(content_type.split(";")[0].strip().lower())
    if suffix and not name.lower().endswith((suffix, ".tgz")):
        guessed = mimetypes.guess_type(name)[0]
        if guessed is None or guessed == "application/octet-stream":
            name += suffix
    return name


class HTTPProvider:
    """One file over HTTP(S), with parallel ranges when the server offers them."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        limits = httpx.Limits(max_connections=options.concurrency)
        timeout = httpx.Timeout(30.0, connect=15.0)
        self.client = httpx.Client(limits=limits, timeout=timeout, follow_redirects=True)

    def listing(self, uri: str) -> Listing:
        headers = self._headers(uri)
        try:
            response = self.client.head(uri, headers=headers)
        except httpx.HTTPError as exc:
            raise StorageError(f"{uri}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code in (405, 501):  # no HEAD: stream it once, uncached
            return Listing((RemoteObject(file_name(uri, ""), uri, None, None, is_ranged=False),))
        _raise_for_status(uri, response)
        size = response.headers.get("content-length")
        version = response.headers.get("etag") or response.headers.get("last-modified")
        obj = RemoteObject(
            path=file_name(str(response.url), response.headers.get("content-type", "")),
            key=str(response.url),
            size=int(size) if size is not None and size.isdigit() else None,
            version=version,
            is_ranged=response.headers.get("accept-ranges", "").lower() == "bytes",
        )
        return Listing((obj,), is_single=True)

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        headers = self._headers(obj.key)
        is_range = offset > 0 or (length is not None and length != obj.size)
        if is_range:
            end = "" if length is None else str(offset + length - 1)
            headers["range"] = f"bytes={offset}-{end}"
            if obj.version and not obj.version.startswith("W/"):  # If-Range needs a strong one
                headers["if-range"] = obj.version
        try:
            with self.client.stream("GET", obj.key, headers=headers) as response:
                _raise_for_status(obj.key, response)
                if is_range and response.status_code != 206:
                    raise TransientError(f"{obj.key}: the server ignored the byte range")
                yield from response.iter_bytes()  # as it arrives: a retry resumes from there
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientError(f"{obj.key}: {exc.__class__.__name__}: {exc}") from exc

    def _headers(self, url: str) -> dict[str, str]:
        # identity: the bytes must be the file itself, never a transfer-compressed copy.
        return {"accept-encoding": "identity", **host_headers(url, self.options.environ())}


def _raise_for_status(url: str, response: Any) -> None:
    code = response.status_code
    if code < 400:
        return
    if code >= 500 or code == 429:
        raise TransientError(f"{url}: HTTP {code}")
    reason = {401: "unauthorized", 403: "forbidden", 404: "not found"}.get(code, "client error")
    raise StorageError(f"{url}: HTTP {code} ({reason})")
