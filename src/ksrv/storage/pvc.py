"""`pvc://{claim}/{path}`: a PersistentVolumeClaim, which on the local platform is a directory.

KServe mounts the claim read-only instead of copying. Here each claim maps to a local root:
`KSRV_PVC_ROOTS="claim=/dir,other=/dir2"` names them one by one, and `KSRV_PVC_ROOT` (default
`~/.local/share/ksrv/pvc`) holds the rest as `{root}/{claim}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from ksrv.errors import StorageError
from ksrv.storage.base import DownloadOptions, Listing, RemoteObject, local_listing, read_local


def claim_roots(env: Mapping[str, str]) -> dict[str, Path]:
    """`KSRV_PVC_ROOTS` parsed: claim name -> local directory."""
    roots: dict[str, Path] = {}
    for item in filter(None, (part.strip() for part in env.get("KSRV_PVC_ROOTS", "").split(","))):
        claim, sep, directory = item.partition("=")
        if not sep or not claim or not directory:
            raise StorageError(f"KSRV_PVC_ROOTS: expected claim=/dir, got {item!r}")
        roots[claim.strip()] = Path(directory.strip()).expanduser()
    return roots


def claim_path(uri: str, env: Mapping[str, str]) -> Path:
    """The local path of `pvc://claim/path`."""
    rest = uri[len("pvc://") :]
    claim, _, sub = rest.partition("/")
    if not claim:
        raise StorageError(f"{uri}: expected pvc://{{claim}}/{{path}}")
    root = claim_roots(env).get(claim)
    if root is None:
        default = Path(env.get("KSRV_PVC_ROOT") or Path.home() / ".local/share/ksrv/pvc")
        root = default.expanduser() / claim
    if not root.is_dir():
        raise StorageError(
            f"{uri}: claim {claim!r} has no local directory ({root}); "
            "set KSRV_PVC_ROOTS=claim=/dir or KSRV_PVC_ROOT"
        )
    path = (root / sub).resolve()
    if not path.is_relative_to(root.resolve()):
        raise StorageError(f"{uri}: path leaves the claim")
    return path


class PVCProvider:
    """A claim's directory on this machine."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def listing(self, uri: str) -> Listing:
        return local_listing(uri, claim_path(uri, self.options.environ()))

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        return read_local(Path(obj.key), offset, length, self.options.part_bytes)
