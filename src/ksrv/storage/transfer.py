"""Parallel, retried transfers of listed objects into a staging directory.

Objects bigger than one part are split into byte ranges fetched concurrently and written in
place with `pwrite`, as boto3's transfer manager does, but with one pool across every object of
a prefix so many small files and one huge file both keep all connections busy. A failed part
resumes from the byte where it stopped.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ksrv.errors import StorageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ksrv.storage.base import DownloadOptions, Provider, RemoteObject
    from ksrv.storage.progress import Progress

logger = logging.getLogger(__name__)

BACKOFF_S = 0.2
MIB = 1024 * 1024
PARTS_PER_CONNECTION = 4


class TransientError(StorageError):
    """A transfer failed in a way worth retrying (connection reset, timeout, 5xx)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One byte range of one object; `length` None means "to the end" (size unknown)."""

    obj: RemoteObject
    target: Path
    offset: int
    length: int | None


def gave_up(locator: str, attempts: int, exc: BaseException) -> StorageError:
    """The error after the last retry, naming `locator` once: providers start their own
    messages with it (`s3://b/m: SlowDown`), and a second copy says nothing new."""
    reason = str(exc).removeprefix(f"{locator}: ")
    return StorageError(f"{locator}: failed after {attempts} attempts: {reason}")


def parts(obj: RemoteObject, target: Path, part_bytes: int) -> list[Part]:
    """How `obj` splits into ranges: one part unless it is big and the store serves ranges."""
    if obj.size is None or not obj.is_ranged or obj.size <= part_bytes:
        return [Part(obj, target, 0, None)]
    return [
        Part(obj, target, offset, min(part_bytes, obj.size - offset))
        for offset in range(0, obj.size, part_bytes)
    ]


def part_size(total_bytes: int, min_part_bytes: int, concurrency: int) -> int:
    """Range size for a download: at least `min_part_bytes`, larger for big downloads so each
    connection gets about `PARTS_PER_CONNECTION` parts: the same parallelism with fewer
    requests (cheaper per request on S3, and far cheaper on servers that read a whole object
    to answer a range)."""
    spread = -(-total_bytes // (max(1, concurrency) * PARTS_PER_CONNECTION))
    return min_part_bytes if spread <= min_part_bytes else -(-spread // MIB) * MIB


def fetch_all(
    provider: Provider,
    objects: Sequence[RemoteObject],
    staging: Path,
    options: DownloadOptions,
    progress: Progress,
) -> None:
    """Download every object under `staging`; the first failure cancels the rest and raises."""
    work: list[Part] = []
    total = sum(obj.size or 0 for obj in objects if obj.local_path is None)
    part_bytes = part_size(total, options.part_bytes, options.concurrency)
    for obj in objects:
        target = staging / obj.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if obj.local_path is not None:
            work.append(Part(obj, target, 0, None))
            continue
        split = parts(obj, target, part_bytes)
        with target.open("wb") as handle:
            if len(split) > 1 and obj.size is not None:
                handle.truncate(obj.size)  # parts write in place, in any order
        work.extend(split)
    run = _Run(provider, options, progress)
    workers = max(1, min(options.concurrency, len(work)))
    with ThreadPoolExecutor(workers, thread_name_prefix="ksrv-storage") as pool:
        futures = [pool.submit(run.fetch, part) for part in work]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in done if f.exception() is not None), None)
        if failed is not None:
            run.stop.set()
            for future in futures:
                future.cancel()
            raise failed.exception()  # type: ignore[misc]
    for obj in objects:
        actual = (staging / obj.path).stat().st_size
        if obj.size is not None and actual != obj.size:
            raise StorageError(f"{obj.key}: got {actual} bytes, expected {obj.size}")


class _Run:
    """State shared by the parts of one download: the stop flag and the byte budget."""

    def __init__(self, provider: Provider, options: DownloadOptions, progress: Progress) -> None:
        self.provider = provider
        self.options = options
        self.progress = progress
        self.stop = threading.Event()

    def fetch(self, part: Part) -> None:
        if part.obj.local_path is not None:
            shutil.copyfile(part.obj.local_path, part.target)  # copy_file_range/sendfile
            self._count(part.target.stat().st_size)
            return
        done = 0
        for attempt in range(1, self.options.max_attempts + 1):
            try:
                done += self._write(part, done)
                return
            except (TransientError, OSError) as exc:
                written = getattr(exc, "written", 0)
                if part.obj.is_ranged:
                    done += written  # resume where this attempt stopped
                else:
                    self.progress.add(-written)  # no ranges: start the object again
                if attempt == self.options.max_attempts or self.stop.is_set():
                    raise gave_up(part.obj.key, attempt, exc) from exc
                logger.warning(
                    "storage retry key=%s offset=%d attempt=%d error=%s",
                    part.obj.key,
                    part.offset + done,
                    attempt,
                    exc,
                )
                time.sleep(BACKOFF_S * 2 ** (attempt - 1))

    def _write(self, part: Part, done: int) -> int:
        """Write the rest of `part` from `done`; on failure the exception carries `written`."""
        length = None if part.length is None else part.length - done
        fd = os.open(part.target, os.O_WRONLY)
        written = 0
        try:
            for block in self.provider.read(part.obj, part.offset + done, length):
                if self.stop.is_set():
                    raise StorageError("cancelled")
                os.pwrite(fd, block, part.offset + done + written)
                written += len(block)
                self._count(len(block))
        except (TransientError, OSError) as exc:
            exc.written = written  # type: ignore[union-attr]
            raise
        finally:
            os.close(fd)
        return written

    def _count(self, size: int) -> None:
        total = self.progress.add(size)
        limit = self.options.max_bytes
        if limit is not None and total > limit:
            self.stop.set()
            raise StorageError(f"download exceeds the limit of {limit} bytes")
