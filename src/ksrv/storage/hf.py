"""`hf://{org}/{repo}[:{revision}]` through huggingface_hub's own cache.

`snapshot_download` fills (or, with `HF_HUB_OFFLINE=1`, only reads) the Hugging Face cache at
`HF_HUB_CACHE` / `HF_HOME`, keyed by commit, and the snapshot is then used in place like a
local directory: that cache is the content cache, so ksrv keeps no second copy. `HF_TOKEN`
authenticates, as in KServe. huggingface_hub is imported only here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

from ksrv.errors import StorageError
from ksrv.storage.base import (
    DownloadOptions,
    Listing,
    RemoteObject,
    local_listing,
    patterns,
    read_local,
)


def parse_uri(uri: str) -> tuple[str, str | None]:
    """`hf://org/repo:rev` -> ("org/repo", "rev"); no revision means the default branch."""
    rest = uri[len("hf://") :].strip("/")
    repo, _, revision = rest.partition(":")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise StorageError(f"{uri}: expected hf://{{org}}/{{repo}}[:{{revision}}]")
    return repo, revision or None


def is_offline(env: Mapping[str, str]) -> bool:
    return env.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cache_dir(env: Mapping[str, str]) -> str | None:
    if env.get("HF_HUB_CACHE"):
        return env["HF_HUB_CACHE"]
    if env.get("HF_HOME"):
        return str(Path(env["HF_HOME"]) / "hub")
    return None  # huggingface_hub's default (~/.cache/huggingface/hub)


class HFProvider:
    """A model repository snapshot in the Hugging Face cache."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options

    def listing(self, uri: str) -> Listing:
        from huggingface_hub import errors as hfe
        from huggingface_hub import snapshot_download

        env = self.options.environ()
        repo, revision = parse_uri(uri)
        try:
            snapshot = snapshot_download(
                repo,
                revision=revision,
                cache_dir=cache_dir(env),
                token=env.get("HF_TOKEN") or None,
                local_files_only=is_offline(env),
                max_workers=self.options.concurrency,
                # KServe passes its filters to the hub, so unwanted files are never fetched.
                allow_patterns=patterns(env.get("STORAGE_ALLOW_PATTERNS")) or None,
                ignore_patterns=patterns(env.get("STORAGE_IGNORE_PATTERNS")) or None,
            )
        except hfe.LocalEntryNotFoundError as exc:
            raise StorageError(
                f"{uri}: not in the Hugging Face cache ({cache_dir(env) or 'default'}) "
                "and HF_HUB_OFFLINE is set"
                if is_offline(env)
                else f"{uri}: {exc}"
            ) from exc
        except hfe.RepositoryNotFoundError as exc:
            raise StorageError(f"{uri}: repository not found or access denied") from exc
        except hfe.RevisionNotFoundError as exc:
            raise StorageError(f"{uri}: revision {revision!r} not found") from exc
        except (hfe.HfHubHTTPError, OSError, ValueError) as exc:
            raise StorageError(f"{uri}: {exc}") from exc
        if not isinstance(snapshot, str):  # only dry runs return a list
            raise StorageError(f"{uri}: huggingface_hub returned no snapshot")
        return local_listing(uri, Path(snapshot))

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        return read_local(Path(obj.key), offset, length, self.options.part_bytes)
