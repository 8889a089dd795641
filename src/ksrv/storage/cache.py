"""The content cache and atomic placement.

A cache entry is a directory named by a hash of the URI and of every object's path, size and
version (etag, generation, commit), so a changed object is a new entry and an unchanged one
costs a listing and no bytes. Entries appear only by renaming a fully downloaded staging
directory, so an entry that exists is complete; a per-key file lock keeps two processes from
downloading the same thing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from ksrv.errors import StorageError


def key(uri: str, objects: Sequence[tuple[str, int | None, str | None]]) -> str:
    """Cache key of `uri` as listed now: (path, size, version) of every object."""
    payload = json.dumps([uri, sorted(objects, key=lambda item: item[0])], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:40]


class Cache:
    """Directory of complete downloads, one per key, plus a small JSON record beside each."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        return self.root / key

    def get(self, key: str) -> Path | None:
        entry = self.path(key)
        return entry if entry.is_dir() else None

    def record(self, key: str, uri: str, size_bytes: int) -> None:
        """Write what the entry holds, for people and for future eviction."""
        record = {"uri": uri, "bytes": size_bytes, "created": time.time()}
        _write_atomic(self.root / f"{key}.json", json.dumps(record).encode())

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold the key's lock: a second process waits, then finds the entry complete."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / f"{key}.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def place(staging: Path, dest: Path) -> Path:
    """Move a complete staging directory to `dest` (same filesystem).

    A missing `dest` appears in one rename. An existing directory (an emptyDir mount such as
    KServe's /mnt/models) receives each entry by rename, replacing entries of the same name,
    so no half-written file is ever visible there.
    """
    if not dest.exists():
        staging.rename(dest)
        return dest
    if not dest.is_dir():
        raise StorageError(f"destination {dest} exists and is not a directory")
    for entry in list(staging.iterdir()):
        existing = dest / entry.name
        if existing.is_dir() and not existing.is_symlink():
            shutil.rmtree(existing)
        os.replace(entry, existing)
    return dest


def swap(staging: Path, dest: Path) -> Path:
    """Replace the directory `dest` with `staging` as a whole: never a mix of old and new."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    if dest.exists():
        dest.rename(old)
    staging.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest


def place_copy(source: Path, dest: Path) -> Path:
    """Copy a cache entry to `dest`, staged beside it and then placed atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        shutil.copytree(source, staging, symlinks=True, dirs_exist_ok=True)
        return place(staging, dest)
    except OSError as exc:
        raise StorageError(f"copying {source} to {dest}: {exc}") from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
