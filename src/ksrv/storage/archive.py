"""Safe unpacking of .tar(.gz/.bz2/.xz), .tgz and .zip model archives.

Nothing is trusted from the archive: every name must stay inside the destination (no absolute
paths, no `..`, no writing through a link that points out), links must point inside, device
files are refused, and the bytes actually written (not the sizes the headers claim) count
against a limit, which stops decompression bombs. A link is judged where it really lands (its
folder may itself be reached through a link) and once more after the last entry, since a later
link can redirect an earlier one (`x -> y/q/../..`, then `y -> .`).
"""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import IO

from ksrv.errors import StorageError

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_ENTRIES = 1_000_000
DISK_RESERVE = 0.05  # without an explicit limit, leave this fraction of the disk free
COPY_BYTES = 1024 * 1024


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def disk_limit(directory: Path) -> int:
    """The default unpack limit: what the disk holds, less a reserve."""
    usage = shutil.disk_usage(directory)
    return max(0, usage.free - int(usage.total * DISK_RESERVE))


def unpack(archive: Path, dest: Path, limit_bytes: int) -> None:
    """Unpack `archive` into `dest` (created), writing at most `limit_bytes`.

    Raises:
        StorageError: corrupt archive, unsafe entry, or more data than the limit; `dest` is
            removed then, so no half-unpacked tree (or link it planted) is left behind.
    """
    dest.mkdir(parents=True)
    try:
        _unpack_into(archive, dest, _Budget(limit_bytes))
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # rmtree removes links, never follows them
        raise


def _unpack_into(archive: Path, dest: Path, budget: _Budget) -> None:
    try:
        if archive.name.lower().endswith(".zip"):
            _unpack_zip(archive, dest, budget)
        else:
            _unpack_tar(archive, dest, budget)
    except (tarfile.TarError, zipfile.BadZipFile, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        raise StorageError(f"corrupt archive {archive.name}: {exc}") from exc
    except (OSError, ValueError) as exc:  # ValueError: a NUL in a name
        raise StorageError(f"unpacking {archive.name}: {exc}") from exc


class _Budget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.used_bytes = 0
        self.entries = 0

    def entry(self) -> None:
        self.entries += 1
        if self.entries > MAX_ENTRIES:
            raise StorageError(f"archive has more than {MAX_ENTRIES} entries")

    def spend(self, size: int) -> None:
        self.used_bytes += size
        if self.used_bytes > self.limit_bytes:
            raise StorageError(
                f"unpacked size exceeds the limit of {self.limit_bytes} bytes "
                "(a decompression bomb, or raise the limit)"
            )


def _inside(dest: Path, name: str) -> Path:
    """`dest/name`, refusing names or links that lead outside `dest`."""
    pure = PurePosixPath(name.replace("\\", "/"))
    parts = [part for part in pure.parts if part not in ("", ".")]
    if pure.is_absolute() or ".." in parts or not parts:
        raise StorageError(f"archive entry {name!r} points outside the destination")
    target = dest.joinpath(*parts)
    # The parent may contain a link the archive made earlier: resolve it and look again.
    if not target.parent.resolve().is_relative_to(dest.resolve()):
        raise StorageError(f"archive entry {name!r} is written through a link out of the target")
    return target


def _link_inside(dest: Path, target: Path, link: str, name: str) -> None:
    """A symlink at `target` (entry `name`) pointing to `link` must stay inside `dest`, step by
    step from the folder it really lives in, and where it resolves to now (through any links
    already unpacked)."""
    root = Path(os.path.realpath(dest))
    folder = Path(os.path.realpath(target.parent))
    if PurePosixPath(link).is_absolute() or not folder.is_relative_to(root):
        raise StorageError(f"archive link {name!r} -> {link!r} points outside the destination")
    depth = len(folder.relative_to(root).parts)
    for part in PurePosixPath(link).parts:
        if part in ("", "."):
            continue
        depth += -1 if part == ".." else 1
        if depth < 0:
            raise StorageError(f"archive link {name!r} -> {link!r} points outside the destination")
    if not Path(os.path.realpath(folder / link)).is_relative_to(root):
        raise StorageError(f"archive link {name!r} -> {link!r} resolves outside the destination")


def _recheck_links(dest: Path, links: dict[Path, str]) -> None:
    """After the last entry, every link still in place resolves inside `dest`: a later link
    may have redirected an earlier one."""
    for path, name in links.items():
        if path.is_symlink():
            _link_inside(dest, path, os.readlink(path), name)


def _replace(target: Path) -> Path:
    """Clear a link or file already at `target`, as tar does, so nothing is written through it."""
    if target.is_symlink() or target.is_file():
        target.unlink()
    return target


def _copy(source: IO[bytes], target: Path, budget: _Budget) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        while block := source.read(COPY_BYTES):
            budget.spend(len(block))
            out.write(block)


def _unpack_tar(archive: Path, dest: Path, budget: _Budget) -> None:
    links: dict[Path, str] = {}
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            budget.entry()
            target = _inside(dest, member.name)
            if not member.isdir():
                _replace(target)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            elif member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                _copy(source, target, budget)
                target.chmod(0o644 | (member.mode & 0o111))
            elif member.issym():
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_inside(dest, target, member.linkname, member.name)
                os.symlink(member.linkname, target)
                # Keyed by where it really is: its folder may be a link a later entry replaces.
                links[Path(os.path.realpath(target.parent), target.name)] = member.name
            elif member.islnk():
                # A hard link names an earlier member; copy it rather than link across trees.
                try:
                    source_path = _inside(dest, member.linkname)
                except StorageError as exc:
                    raise StorageError(f"archive hard link {member.name!r}: {exc}") from exc
                if not source_path.is_file() or source_path.is_symlink():
                    raise StorageError(f"archive hard link {member.name!r} has no target")
                with source_path.open("rb") as source_file:
                    _copy(source_file, target, budget)
            else:
                raise StorageError(f"archive entry {member.name!r} is a device or fifo")
    _recheck_links(dest, links)


def _unpack_zip(archive: Path, dest: Path, budget: _Budget) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for info in zipped.infolist():
            budget.entry()
            target = _inside(dest, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise StorageError(f"archive entry {info.filename!r}: links in zip are refused")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            with zipped.open(info) as source:
                _copy(source, target, budget)
