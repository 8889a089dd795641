"""file://, plain paths, pvc:// and hf:// (a Hugging Face cache, offline): files already here."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from ksrv.errors import StorageError
from ksrv.storage import download

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def hf_cache(root: Path, repo: str, model_dir: Path) -> Path:
    """A directory laid out as huggingface_hub's cache: refs, blobs, snapshot links."""
    org, name = repo.split("/")
    base = root / f"models--{org}--{name}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(COMMIT)
    (base / "blobs").mkdir()
    snapshot = base / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for index, file in enumerate(sorted(p for p in model_dir.iterdir() if p.is_file())):
        blob = base / "blobs" / f"blob{index}"
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(Path("../../blobs") / blob.name)
    return root


@pytest.fixture
def model(tmp_path) -> Path:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"model")
    (folder / "sub" / "notes.txt").write_bytes(b"notes")
    return folder


def test_a_local_path_without_destination_is_used_in_place(isolated_env, model):
    assert download(str(model)) == model
    assert download(f"file://{model}") == model


def test_a_file_uri_is_copied_into_the_destination(isolated_env, model, tmp_path):
    path = download(f"file://{model}", tmp_path / "out")
    assert files(path) == {"model.joblib": b"model", "sub/notes.txt": b"notes"}


def test_an_existing_destination_directory_receives_the_files(isolated_env, model, tmp_path):
    dest = tmp_path / "mnt-models"
    dest.mkdir()
    download(str(model / "model.joblib"), dest)
    assert files(dest) == {"model.joblib": b"model"}


@pytest.mark.parametrize("scheme", ["", "file://"])
def test_a_missing_local_path_is_named_once(isolated_env, tmp_path, scheme):
    uri = f"{scheme}{tmp_path}/nothing"
    with pytest.raises(StorageError) as caught:
        download(uri, tmp_path / "out")
    assert str(caught.value) == f"{uri} does not exist"


def test_pvc_resolves_through_the_claim_roots(isolated_env, model, monkeypatch, tmp_path):
    monkeypatch.setenv("KSRV_PVC_ROOTS", f"models-claim={model.parent}")
    assert download("pvc://models-claim/model") == model
    assert files(download("pvc://models-claim/model/sub", tmp_path / "out")) == {
        "notes.txt": b"notes"
    }


def test_pvc_falls_back_to_a_root_per_claim(isolated_env, model, monkeypatch, tmp_path):
    monkeypatch.setenv("KSRV_PVC_ROOT", str(tmp_path))
    assert download("pvc://model/sub") == model / "sub"


def test_an_unknown_claim_says_how_to_configure_it(isolated_env, monkeypatch, tmp_path):
    monkeypatch.setenv("KSRV_PVC_ROOT", str(tmp_path))
    with pytest.raises(StorageError, match="claim 'nope' has no local directory"):
        download("pvc://nope/model")


def test_pvc_paths_cannot_leave_the_claim(isolated_env, model, monkeypatch):
    monkeypatch.setenv("KSRV_PVC_ROOTS", f"c={model}")
    with pytest.raises(StorageError, match="path leaves the claim"):
        download("pvc://c/../../etc")


def test_hf_offline_reads_the_snapshot_from_the_cache(isolated_env, model, monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    cache = hf_cache(tmp_path / "hf", "org/iris", model)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = download("hf://org/iris")
    assert snapshot.name == COMMIT
    assert files(download(f"hf://org/iris:{COMMIT}", tmp_path / "out")) == {
        "model.joblib": b"model"
    }


def test_hf_offline_without_the_model_cached_says_so(isolated_env, monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(StorageError, match="hf://org/missing: not in the Hugging Face cache"):
        download("hf://org/missing")


def test_an_archive_whose_links_chain_out_fails_and_leaves_nothing(isolated_env, tmp_path):
    # issue 12: `d/a -> ..` then `d/a/esc -> ../..` passed a check that read only link text.
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tar:
        for name, link in (("d/a", ".."), ("d/a/esc", "../..")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(
        StorageError, match=r"'d/a/esc' -> '\.\./\.\.' points outside the destination"
    ):
        download(f"file://{path}", tmp_path / "models" / "evil")
    assert sorted(tmp_path.rglob("*")) == [*before, tmp_path / "models"]


def test_a_folder_linking_back_to_its_parent_is_refused_not_walked_without_end(
    isolated_env, tmp_path
):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "model.joblib").write_bytes(b"m")
    (model / "sub" / "up").symlink_to("..")
    (model / "sub" / "again").symlink_to("..")
    with pytest.raises(StorageError, match=r"links back to .*, a loop"):
        download(str(model), tmp_path / "out")


def test_a_dangling_link_in_a_local_model_is_named(isolated_env, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").symlink_to(tmp_path / "gone")
    with pytest.raises(StorageError, match=r"cannot read .*model\.joblib: No such file"):
        download(str(model), tmp_path / "out")


def test_a_link_to_a_folder_beside_the_model_is_still_followed(isolated_env, tmp_path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "vocab.txt").write_bytes(b"v")
    model = tmp_path / "model"
    model.mkdir()
    (model / "assets").symlink_to(tmp_path / "shared")
    assert files(download(str(model), tmp_path / "out")) == {"assets/vocab.txt": b"v"}
