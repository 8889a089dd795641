"""`gs://bucket/key-or-prefix` through google-cloud-storage.

Credentials as in KServe: `GOOGLE_APPLICATION_CREDENTIALS` (or any application default), else
anonymous access for public buckets. `STORAGE_EMULATOR_HOST` points the client at an emulator.
The library is imported only here; each thread gets its own client (requests sessions are not
meant to be shared across threads).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from ksrv.errors import StorageError
from ksrv.storage.base import (
    DownloadOptions,
    Listing,
    RemoteObject,
    TransientError,
    relative_path,
)

DEFAULT_CREDENTIALS = "/var/secrets/gcloud-application-credentials.json"


def split_uri(uri: str) -> tuple[str, str]:
    """`gs://bucket/a/b` -> ("bucket", "a/b")."""
    bucket, _, key = uri[len("gs://") :].partition("/")
    if not bucket:
        raise StorageError(f"{uri}: expected gs://bucket/path")
    return bucket, key


def new_client(env: Mapping[str, str]) -> Any:
    """A storage client: explicit credentials file, application default, else anonymous."""
    import google.auth.exceptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage  # type: ignore[attr-defined,import-untyped,unused-ignore]

    if env.get("STORAGE_EMULATOR_HOST"):
        anonymous = AnonymousCredentials()  # type: ignore[no-untyped-call]
        return storage.Client(
            project=env.get("GOOGLE_CLOUD_PROJECT", "ksrv"), credentials=anonymous
        )
    path = env.get("GOOGLE_APPLICATION_CREDENTIALS")
    if path:
        return storage.Client.from_service_account_json(path)
    try:
        return storage.Client()
    except (google.auth.exceptions.DefaultCredentialsError, OSError):
        return storage.Client.create_anonymous_client()


class GCSProvider:
    """Blobs under a bucket prefix, or one blob."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self._local = threading.local()

    @property
    def client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = new_client(self.options.environ())
        return client

    def listing(self, uri: str) -> Listing:
        bucket_name, prefix = split_uri(uri)
        objects: list[RemoteObject] = []
        is_single = False
        try:
            for blob in self.client.list_blobs(bucket_name, prefix=prefix):
                path = relative_path(prefix, blob.name)
                if path is None:
                    continue
                is_single = is_single or blob.name == prefix
                version = str(blob.generation or blob.etag or "") or None
                objects.append(RemoteObject(path, f"{bucket_name}/{blob.name}", blob.size, version))
        except Exception as exc:
            from google.api_core import exceptions as gce

            if isinstance(exc, gce.NotFound):
                raise StorageError(f"{uri}: bucket does not exist") from exc
            raise _wrap(uri, exc) from exc
        return Listing(tuple(objects), is_single=is_single and len(objects) == 1)

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        bucket_name, _, name = obj.key.partition("/")
        generation = int(obj.version) if obj.version and obj.version.isdigit() else None
        blob = self.client.bucket(bucket_name).blob(name, generation=generation)
        end = None if length is None else offset + length - 1
        try:
            # One range in memory at a time (part_bytes); checksums cover whole objects only.
            yield blob.download_as_bytes(start=offset, end=end, raw_download=True, checksum=None)
        except Exception as exc:
            raise _wrap(f"gs://{obj.key}", exc) from exc


def _wrap(uri: str, exc: Exception) -> StorageError:
    from google.api_core import exceptions as gce
    from google.auth import exceptions as gae

    if isinstance(exc, gce.NotFound):
        return StorageError(f"{uri}: bucket or object does not exist")
    if isinstance(exc, (gce.Forbidden, gce.Unauthorized, gae.GoogleAuthError)):
        return StorageError(f"{uri}: access denied; check GOOGLE_APPLICATION_CREDENTIALS ({exc})")
    if isinstance(exc, (gce.ServerError, gce.TooManyRequests, ConnectionError, OSError)):
        return TransientError(f"{uri}: {exc}")
    if isinstance(exc, StorageError):
        return exc
    return StorageError(f"{uri}: {exc.__class__.__name__}: {exc}")
