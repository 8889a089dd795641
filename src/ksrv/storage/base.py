"""storageUri -> local directory: the `Provider` seam, the scheme table and `download`.

A provider only lists what a URI names and reads byte ranges of it; everything else (parallel
ranged transfers, retries, the content cache, archive unpacking, atomic placement, limits) lives
here and in its helper modules, once for every scheme. Providers are imported lazily from
`SCHEMES`, so `import ksrv.storage` never imports boto3, google-cloud or azure.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import importlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Protocol
from urllib.parse import urlsplit

from ksrv.errors import StorageError
from ksrv.storage import archive, cache, transfer
from ksrv.storage.progress import Progress

logger = logging.getLogger(__name__)

# scheme -> "module:Provider", imported on first use (STYLE.md section 2: lazy heavy imports).
SCHEMES: dict[str, str] = {
    "": "ksrv.storage.local:LocalProvider",
    "file": "ksrv.storage.local:LocalProvider",
    "pvc": "ksrv.storage.pvc:PVCProvider",
    "http": "ksrv.storage.http:HTTPProvider",
    "https": "ksrv.storage.http:HTTPProvider",
    "s3": "ksrv.storage.s3:S3Provider",
    "gs": "ksrv.storage.gcs:GCSProvider",
    "az": "ksrv.storage.azure:AzureBlobProvider",
    "hf": "ksrv.storage.hf:HFProvider",
}
AZURE_BLOB_HOST = re.compile(
    r"^[a-z0-9]+\.(blob\.core\.windows\.net|z\d+\.blob\.storage\.azure\.net)$"
)
# KServe accepts these; ksrv names them instead of failing with "unknown scheme".
NOT_YET = ("oci", "oci+native", "oci+fetch", "hdfs", "webhdfs", "modelscope")


# Providers raise this for failures worth retrying; `transfer` is the one place that retries.
TransientError = transfer.TransientError


@dataclass(frozen=True, slots=True)
class RemoteObject:
    """One object a URI names: where it goes under the destination and how to find it again."""

    path: str  # relative POSIX path under the destination directory
    key: str  # provider-specific locator: object key, blob name, URL
    size: int | None  # None when the store does not say (HTTP without Content-Length)
    version: str | None  # etag, generation or commit; None means "cannot tell if it changed"
    local_path: Path | None = None  # already on this machine (file://, pvc://, hf cache)
    is_ranged: bool = True  # the store serves byte ranges, so big objects split into parts


@dataclass(frozen=True, slots=True)
class Listing:
    """Everything a URI names, in one consistent view."""

    objects: tuple[RemoteObject, ...]
    is_single: bool = False  # the URI named one object (an archive there gets unpacked)
    local_root: Path | None = None  # on this machine already: used in place or copied, not cached

    @property
    def total_bytes(self) -> int:
        return sum(obj.size or 0 for obj in self.objects)

    @property
    def is_cacheable(self) -> bool:
        return self.local_root is None and all(obj.version for obj in self.objects)


class Provider(Protocol):
    """One storage scheme: list what a URI names, read byte ranges of one object."""

    def listing(self, uri: str) -> Listing: ...

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        """Bytes `offset .. offset+length` of `obj` (to the end when `length` is None)."""
        ...


@dataclass(frozen=True, slots=True)
class DownloadOptions:
    """How to download. `env` stands for `os.environ` (credentials, endpoints, KServe flags)."""

    cache_dir: Path | None = None  # None: $KSRV_CACHE_DIR, else ~/.cache/ksrv/storage
    enable_cache: bool = True
    max_bytes: int | None = None  # total size limit, archives unpacked included
    concurrency: int = 10  # parallel range requests (boto3's transfer manager uses 10)
    part_bytes: int = 8 * 1024 * 1024  # smallest range; boto3's default multipart chunk
    max_attempts: int = 3  # per part; a retry resumes where the part stopped
    progress: bool | None = None  # None: a bar when stderr is a terminal, else log lines
    env: Mapping[str, str] | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)  # serving.kserve.io/s3-*

    def environ(self) -> Mapping[str, str]:
        return os.environ if self.env is None else self.env

    def resolved_cache_dir(self) -> Path:
        if self.cache_dir is not None:
            return self.cache_dir
        env = self.environ()
        if env.get("KSRV_CACHE_DIR"):
            return Path(env["KSRV_CACHE_DIR"])
        base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "ksrv" / "storage"


def scheme_of(uri: str) -> str:
    """The SCHEMES key serving `uri`; Azure blob URLs are https by scheme but `az` here."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if len(scheme) == 1:  # a Windows drive letter is a local path
        return ""
    if scheme in ("http", "https") and AZURE_BLOB_HOST.match(parts.hostname or ""):
        return "az"
    if scheme in ("http", "https") and parts.path.endswith(".git"):
        raise StorageError(f"{uri}: git repositories are not supported yet")
    if scheme in NOT_YET:
        raise StorageError(f"{uri}: {scheme}:// storage URIs are not supported yet")
    if scheme not in SCHEMES:
        known = ", ".join(f"{name}://" for name in sorted(SCHEMES) if name)
        raise StorageError(f"{uri}: unknown storage scheme {scheme!r}; known: {known}")
    return scheme


def provider_for(uri: str, options: DownloadOptions) -> Provider:
    """The provider for `uri`, importing its module on first use."""
    target = SCHEMES[scheme_of(uri)]
    module_name, _, attribute = target.partition(":")
    provider: Provider = getattr(importlib.import_module(module_name), attribute)(options)
    return provider


def download(
    uri: str, dest: str | Path | None = None, options: DownloadOptions | None = None
) -> Path:
    """Put what `uri` names into `dest` (or the cache when `dest` is None) and return the path.

    Raises:
        StorageError: naming the URI and the cause; nothing partial is left in `dest`.
    """
    options = options or DownloadOptions()
    provider = provider_for(uri, options)
    listing = filtered(uri, _list(provider, uri, options), options.environ())
    if not listing.objects:
        raise StorageError(f"{uri}: no objects found")
    if listing.local_root is not None and dest is None:
        return listing.local_root  # KServe: a local URI without out_dir is used in place
    _check_limits(uri, listing, options)
    target = Path(dest) if dest is not None else None
    if target is not None and not (options.enable_cache and listing.is_cacheable):
        return _fetch_into(uri, provider, listing, target, options)
    entry = cache.Cache(options.resolved_cache_dir())
    key = cache.key(uri, [(o.path, o.size, o.version) for o in listing.objects])
    if not (options.enable_cache and listing.is_cacheable):
        # Nothing to key on (no ETag, or caching off) and no destination: fetch again and
        # swap the new copy in for the old one under the same key.
        with entry.lock(key):
            return _fetch_into(uri, provider, listing, entry.path(key), options, is_swap=True)
    with entry.lock(key):
        hit = entry.get(key)
        if hit is None:
            hit = _fetch_into(uri, provider, listing, entry.path(key), options)
            entry.record(key, uri, listing.total_bytes)
        else:
            logger.info("storage cache hit uri=%s path=%s", uri, hit)
    if target is None:
        return hit
    return cache.place_copy(hit, target)


def _list(provider: Provider, uri: str, options: DownloadOptions) -> Listing:
    """The provider's listing, retried like a transfer when the failure is transient."""
    for attempt in range(1, options.max_attempts + 1):
        try:
            return provider.listing(uri)
        except TransientError as exc:
            if attempt == options.max_attempts:
                raise transfer.gave_up(uri, attempt, exc) from exc
            logger.warning("storage retry uri=%s attempt=%d error=%s", uri, attempt, exc)
            time.sleep(transfer.BACKOFF_S * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def patterns(raw: str | None) -> list[str]:
    """KServe's STORAGE_ALLOW_PATTERNS / STORAGE_IGNORE_PATTERNS: a JSON list or CSV."""
    if not raw or not raw.strip():
        return []
    text = raw.strip()
    if text.startswith("["):
        try:
            return [str(item) for item in json.loads(text)]
        except ValueError as exc:
            raise StorageError(f"storage patterns are not a JSON list: {raw!r}") from exc
    return [item.strip() for item in text.split(",") if item.strip()]


def filtered(uri: str, listing: Listing, env: Mapping[str, str]) -> Listing:
    """Keep the objects the allow patterns match and the ignore patterns do not (fnmatch)."""
    allow = patterns(env.get("STORAGE_ALLOW_PATTERNS"))
    ignore = patterns(env.get("STORAGE_IGNORE_PATTERNS"))
    if not allow and not ignore:
        return listing
    kept = tuple(
        obj
        for obj in listing.objects
        if (not allow or any(fnmatch.fnmatch(obj.path, pattern) for pattern in allow))
        and not any(fnmatch.fnmatch(obj.path, pattern) for pattern in ignore)
    )
    logger.info("storage patterns uri=%s kept=%d of=%d", uri, len(kept), len(listing.objects))
    return dataclasses.replace(listing, objects=kept)


def _fetch_into(
    uri: str,
    provider: Provider,
    listing: Listing,
    dest: Path,
    options: DownloadOptions,
    is_swap: bool = False,
) -> Path:
    """Download into a staging directory beside `dest`, unpack, then move it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        progress = Progress(uri, listing.total_bytes, options.progress)
        with progress:
            transfer.fetch_all(provider, listing.objects, staging, options, progress)
        if listing.is_single:
            _unpack_if_archive(uri, staging, options)
        logger.info(
            "storage downloaded uri=%s bytes=%d seconds=%.2f files=%d",
            uri,
            progress.done_bytes,
            progress.elapsed_s,
            len(listing.objects),
        )
        return cache.swap(staging, dest) if is_swap else cache.place(staging, dest)
    except StorageError:
        raise
    except OSError as exc:
        raise StorageError(f"{uri}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unpack_if_archive(uri: str, staging: Path, options: DownloadOptions) -> None:
    (only,) = list(staging.iterdir())
    if not archive.is_archive(only.name):
        return
    limit = options.max_bytes if options.max_bytes is not None else archive.disk_limit(staging)
    unpacked = staging / ".unpacked"
    try:
        archive.unpack(only, unpacked, limit)
    except StorageError as exc:
        raise StorageError(f"{uri}: {exc}") from exc
    only.unlink()
    for entry in list(unpacked.iterdir()):
        entry.rename(staging / entry.name)
    unpacked.rmdir()


def _check_limits(uri: str, listing: Listing, options: DownloadOptions) -> None:
    for obj in listing.objects:
        safe_relative(uri, obj.path)
    total = listing.total_bytes
    if options.max_bytes is not None and total > options.max_bytes:
        raise StorageError(f"{uri}: {total} bytes exceeds the limit of {options.max_bytes} bytes")


def relative_path(prefix: str, key: str) -> str | None:
    """Where object `key` goes under the destination, or None if it is not under `prefix` as
    a folder (s3://b/iris must not pick up iris-v2/...). Shared by the object stores."""
    if key.endswith("/"):
        return None  # a "folder" marker object
    if key == prefix:
        return key.rsplit("/", 1)[-1]
    folder = prefix.rstrip("/") + "/" if prefix else ""
    return key[len(folder) :] if key.startswith(folder) else None


def safe_relative(uri: str, path: str) -> PurePosixPath:
    """`path` as a relative path that stays inside its destination, else StorageError."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise StorageError(f"{uri}: refusing unsafe path {path!r} (outside the destination)")
    return pure


def read_local(path: Path, offset: int, length: int | None, chunk_bytes: int) -> Iterator[bytes]:
    """Ranged reads of a local file, for providers whose objects are already on disk."""
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            block = handle.read(chunk_bytes if remaining is None else min(chunk_bytes, remaining))
            if not block:
                return
            if remaining is not None:
                remaining -= len(block)
            yield block


def local_listing(uri: str, path: Path) -> Listing:
    """A file or a directory tree on this machine, as a listing (file://, pvc://, hf cache)."""
    if path.is_file():
        stat = path.stat()
        obj = RemoteObject(path.name, str(path), stat.st_size, _stamp(stat), path.resolve())
        return Listing((obj,), is_single=True, local_root=path)
    if not path.is_dir():
        # `file:///a/b` names its path already; `pvc://claim/b` does not (say where it looked).
        where = "" if str(path) in uri else f" ({path})"
        raise StorageError(f"{uri} does not exist{where}")
    objects = []
    for folder, folders, names in os.walk(path, followlinks=True):
        _refuse_loops(uri, Path(folder), folders)
        for name in sorted(names):
            file = Path(folder, name)
            try:
                stat = file.stat()
            except OSError as exc:  # a dangling link
                raise StorageError(f"{uri}: cannot read {file}: {exc.strerror}") from exc
            relative = file.relative_to(path).as_posix()
            objects.append(RemoteObject(relative, str(file), stat.st_size, _stamp(stat), file))
    return Listing(tuple(sorted(objects, key=lambda o: o.path)), local_root=path)


def _refuse_loops(uri: str, folder: Path, folders: list[str]) -> None:
    """A linked folder that leads back to one being walked would list its files without end
    (two such links: 2**40 copies before the kernel's link limit stops the walk)."""
    here = folder.resolve()
    for name in folders:
        link = folder / name
        if link.is_symlink() and here.is_relative_to(target := link.resolve()):
            raise StorageError(f"{uri}: {link} links back to {target}, a loop")


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}-{stat.st_mtime_ns}"
