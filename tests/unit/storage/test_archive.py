"""archive.unpack on archives built in tmp_path: safe names, links, limits, corruption."""

from __future__ import annotations

import io
import os
import re
import stat
import tarfile
import zipfile

import pytest

from ksrv.errors import StorageError
from ksrv.storage import archive, cache, progress


def make_tar(path, members):
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def member(name, data=b"", kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data if kind == tarfile.REGTYPE else None


def test_links_inside_the_archive_are_kept(tmp_path):
    tar = make_tar(tmp_path / "m.tar", [
        member("model/weights.bin", b"w"),
        member("model/latest", kind=tarfile.SYMTYPE, link="weights.bin"),
        member("model/copy", kind=tarfile.LNKTYPE, link="model/weights.bin"),
    ])  # fmt: skip
    archive.unpack(tar, tmp_path / "out", limit_bytes=100)
    assert (tmp_path / "out/model/latest").read_bytes() == b"w"
    assert (tmp_path / "out/model/copy").read_bytes() == b"w"


@pytest.mark.parametrize(
    "members",
    [
        [member("/etc/passwd", b"x")],
        [member("a/../../x", b"x")],
        [member("l", kind=tarfile.SYMTYPE, link="/etc")],
        [member("a/l", kind=tarfile.SYMTYPE, link="../../x")],
        [member("h", kind=tarfile.LNKTYPE, link="../outside")],
        # a link that is fine by itself, then a file written through it
        [member("up", kind=tarfile.SYMTYPE, link="."), member("up/../../x", b"x")],
    ],
)
def test_entries_that_leave_the_target_are_refused(tmp_path, members):
    tar = make_tar(tmp_path / "m.tar", members)
    with pytest.raises(StorageError, match=r"outside|out of the target"):
        archive.unpack(tar, tmp_path / "out", limit_bytes=100)
    assert not (tmp_path / "x").exists()


def tree(root):
    """Every path under `root`, links listed as `name -> text`, without following them."""
    return sorted(
        f"{p.relative_to(root)} -> {os.readlink(p)}" if p.is_symlink() else str(p.relative_to(root))
        for p in root.rglob("*")
    )


SYM, HARD = tarfile.SYMTYPE, tarfile.LNKTYPE


@pytest.mark.parametrize(
    ("members", "culprit"),
    [
        # issue 12: each link is fine by its text; together `esc` lands two levels above `out`
        (
            [member("d/a", kind=SYM, link=".."), member("d/a/esc", kind=SYM, link="../..")],
            "d/a/esc",
        ),
        # a link made harmless-looking first, redirected by a later one (`y -> .`)
        ([member("x", kind=SYM, link="y/q/../../.."), member("y", kind=SYM, link=".")], "x"),
        ([member("x", kind=SYM, link="y/q/../.."), member("y", kind=SYM, link=".")], "x"),
        ([member("l", kind=SYM, link="/tmp")], "l"),
        ([member("d/l", kind=SYM, link="../../out")], "d/l"),
        ([member("up", kind=SYM, link="."), member("up/up/../../x", b"x")], "up/up/../../x"),
        ([member("d/a", kind=SYM, link=".."), member("d/a/h", kind=HARD, link="../x")], "d/a/h"),
        ([member("h", kind=HARD, link="/etc/hostname")], "h"),
    ],
)
def test_links_that_resolve_outside_fail_naming_the_entry_and_leave_nothing_out(
    tmp_path, members, culprit
):
    work = tmp_path / "work"
    work.mkdir()
    tar = make_tar(tmp_path / "m.tar", members)
    before = tree(tmp_path)
    with pytest.raises(StorageError, match=re.escape(repr(culprit))):
        archive.unpack(tar, work / "out", limit_bytes=100)
    assert tree(tmp_path) == before  # nothing written, and `out` with its links removed


@pytest.mark.parametrize("name", ["/abs/x", "../x", "a/../../x", "a\\..\\..\\x"])
def test_zip_names_that_leave_the_target_fail_naming_the_entry(tmp_path, name):
    (tmp_path / "work").mkdir()
    with zipfile.ZipFile(tmp_path / "m.zip", "w") as zipped:
        zipped.writestr("ok.txt", b"ok")
        zipped.writestr(zipfile.ZipInfo(name), b"x")
    before = tree(tmp_path)
    with pytest.raises(StorageError, match="points outside the destination"):
        archive.unpack(tmp_path / "m.zip", tmp_path / "work" / "out", limit_bytes=100)
    assert tree(tmp_path) == before


def test_a_file_entry_replaces_a_link_instead_of_writing_through_it(tmp_path):
    tar = make_tar(tmp_path / "m.tar", [
        member("sub/f", b"inside"),
        member("l", kind=SYM, link="sub/f"),
        member("l", b"new"),
    ])  # fmt: skip
    archive.unpack(tar, tmp_path / "out", limit_bytes=100)
    assert tree(tmp_path / "out") == ["l", "sub", "sub/f"]
    assert (tmp_path / "out/sub/f").read_bytes() == b"inside"
    assert (tmp_path / "out/l").read_bytes() == b"new"


def test_device_files_are_refused(tmp_path):
    tar = make_tar(tmp_path / "m.tar", [member("dev", kind=tarfile.CHRTYPE)])
    with pytest.raises(StorageError, match="device or fifo"):
        archive.unpack(tar, tmp_path / "out", limit_bytes=100)


def test_the_limit_counts_bytes_written_not_header_sizes(tmp_path):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("a", bytes(600))
        zipped.writestr("b", bytes(600))
    with pytest.raises(StorageError, match="exceeds the limit of 1000 bytes"):
        archive.unpack(path, tmp_path / "out", limit_bytes=1000)


def test_zip_traversal_and_links_are_refused(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zipped:
        zipped.writestr("../evil", b"x")
    with pytest.raises(StorageError, match="points outside"):
        archive.unpack(path, tmp_path / "out", limit_bytes=100)
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zipped:
        zipped.writestr(link, "/etc/passwd")
    with pytest.raises(StorageError, match="links in zip are refused"):
        archive.unpack(tmp_path / "link.zip", tmp_path / "out2", limit_bytes=100)


@pytest.mark.parametrize("name", ["m.zip", "m.tar.gz", "m.tgz", "m.tar"])
def test_corrupt_archives_are_storage_errors(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04garbage" if name.endswith("zip") else b"\x1f\x8bgarbage")
    with pytest.raises(StorageError, match="corrupt archive"):
        archive.unpack(path, tmp_path / "out", limit_bytes=100)


def test_cache_keys_change_with_any_version_and_not_with_order():
    objects = [("a", 1, "e1"), ("b", 2, "e2")]
    assert cache.key("s3://b/p", objects) == cache.key("s3://b/p", objects[::-1])
    assert cache.key("s3://b/p", objects) != cache.key("s3://b/p", [("a", 1, "e9"), objects[1]])
    assert cache.key("s3://b/p", objects) != cache.key("s3://b/q", objects)


def test_placing_into_an_existing_directory_replaces_entries_of_the_same_name(tmp_path):
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "old.txt").write_text("old")
    (dest / "keep.txt").write_text("keep")
    staging = tmp_path / "staging"
    (staging / "sub").mkdir(parents=True)
    (staging / "sub" / "new.txt").write_text("new")
    cache.place(staging, dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "keep.txt", "sub", "sub/new.txt"
    ]  # fmt: skip


def test_progress_line_shows_fraction_size_and_rate():
    stream = io.StringIO()
    bar = progress.Progress("s3://b/m", 2_000_000, enable_bar=True, stream=stream)
    bar.add(1_000_000)
    assert "50.0%" in bar.line() and "1.0/2.0 MB" in bar.line() and "s3://b/m" in bar.line()
    with bar:
        bar.add(1_000_000)
    assert stream.getvalue().endswith("\n") and "100.0%" in stream.getvalue()
