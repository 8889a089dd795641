"""Local paths and `file://` URIs: used in place, or copied when a destination is given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ksrv.storage.base import DownloadOptions, Listing, RemoteObject, local_listing, read_local


def local_path(uri: str) -> Path:
    """`/a/b`, `a/b`, `file:///a/b` or `file://a/b` (relative, as KServe accepts) -> a path."""
    if not uri.lower().startswith("file://"):
        return Path(uri).expanduser()
    parts = urlsplit(uri)
    return Path(unquote(parts.netloc + parts.path))


class LocalProvider:
    """Files already on this machine."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def listing(self, uri: str) -> Listing:
        return local_listing(uri, local_path(uri))

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        return read_local(Path(obj.key), offset, length, self.options.part_bytes)
