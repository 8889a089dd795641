"""Azure Blob Storage through azure-storage-blob.

URIs: `https://{account}.blob.core.windows.net/{container}/{prefix}` (KServe's form, also
`*.zN.blob.storage.azure.net`) and `az://{account}/{container}/{prefix}`. Credentials as in
KServe: `AZURE_STORAGE_ACCESS_KEY`, or a service principal from `AZURE_TENANT_ID`,
`AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (legacy `AZ_*` names accepted; needs azure-identity),
else anonymous for public containers. `AZURE_STORAGE_CONNECTION_STRING` for the same account
also sets the endpoint, which is how an emulator such as Azurite is reached.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ksrv.errors import StorageError
from ksrv.storage.base import (
    DownloadOptions,
    Listing,
    RemoteObject,
    TransientError,
    relative_path,
)

CHUNK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class BlobLocation:
    """Account, container and blob prefix named by a URI."""

    account: str
    account_url: str
    container: str
    prefix: str


def parse_connection_string(text: str) -> dict[str, str]:
    """`Key=Value;Key=Value` -> dict (values may contain '=')."""
    pairs = (item.partition("=") for item in text.split(";") if item.strip())
    return {name.strip(): value.strip() for name, _, value in pairs}


def locate(uri: str, env: Mapping[str, str]) -> BlobLocation:
    """Where `uri` lives; a connection string for the same account overrides the endpoint."""
    parts = urlsplit(uri)
    if parts.scheme == "az":
        account = parts.netloc
        account_url = f"https://{account}.blob.core.windows.net"
        path = parts.path
    else:
        account = (parts.hostname or "").split(".", 1)[0]
        account_url = f"{parts.scheme}://{parts.netloc}"
        path = parts.path
    container, _, prefix = unquote(path).lstrip("/").partition("/")
    if not account or not container:
        raise StorageError(
            f"{uri}: expected https://{{account}}.blob.core.windows.net/{{container}}/"
        )
    settings = parse_connection_string(env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    if settings.get("AccountName") == account and settings.get("BlobEndpoint"):
        account_url = settings["BlobEndpoint"].rstrip("/")
    return BlobLocation(account, account_url, container, prefix)


def credential(location: BlobLocation, env: Mapping[str, str]) -> Any:
    """KServe's order: account key, service principal, then anonymous (None)."""
    settings = parse_connection_string(env.get("AZURE_STORAGE_CONNECTION_STRING", ""))
    key = env.get("AZURE_STORAGE_ACCESS_KEY")
    if not key and settings.get("AccountName") == location.account:
        key = settings.get("AccountKey")
    if key:
        return {"account_name": location.account, "account_key": key}

    def pick(name: str) -> str | None:
        return env.get(f"AZURE_{name}") or env.get(f"AZ_{name}")

    tenant, client, secret = pick("TENANT_ID"), pick("CLIENT_ID"), pick("CLIENT_SECRET")
    if tenant and client and secret:
        try:
            from azure.identity import (  # type: ignore[import-untyped,unused-ignore]
                ClientSecretCredential,
            )
        except ImportError as exc:
            raise StorageError("service principal credentials need azure-identity") from exc
        return ClientSecretCredential(tenant, client, secret)
    return None


class AzureBlobProvider:
    """Blobs under a container prefix, or one blob."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self._containers: dict[str, Any] = {}
        self._location: BlobLocation | None = None  # set by listing(); read() follows it

    def _container(self, location: BlobLocation) -> Any:
        from azure.storage.blob import ContainerClient

        cache_key = f"{location.account_url}/{location.container}"
        if cache_key not in self._containers:
            self._containers[cache_key] = ContainerClient(
                location.account_url,
                location.container,
                credential=credential(location, self.options.environ()),
                max_single_get_size=CHUNK_BYTES,
            )
        return self._containers[cache_key]

    def listing(self, uri: str) -> Listing:
        location = locate(uri, self.options.environ())
        container = self._container(location)
        objects: list[RemoteObject] = []
        is_single = False
        try:
            for blob in container.list_blobs(name_starts_with=location.prefix or None):
                path = relative_path(location.prefix, blob.name)
                if path is None:
                    continue
                is_single = is_single or blob.name == location.prefix
                etag = str(blob.etag).strip('"') or None
                objects.append(RemoteObject(path, blob.name, blob.size, etag))
        except Exception as exc:
            raise _wrap(uri, exc) from exc
        self._location = location
        return Listing(tuple(objects), is_single=is_single and len(objects) == 1)

    def read(self, obj: RemoteObject, offset: int, length: int | None) -> Iterator[bytes]:
        location = self._location
        assert location is not None, "listing() comes first"
        container = self._container(location)
        try:
            from azure.core import MatchConditions

            stream = container.download_blob(
                obj.key,
                offset=offset,
                length=length,
                max_concurrency=1,
                etag=f'"{obj.version}"' if obj.version else None,
                match_condition=MatchConditions.IfNotModified if obj.version else None,
            )
            yield from stream.chunks()
        except Exception as exc:
            url = f"{location.account_url}/{location.container}/{obj.key}"
            raise _wrap(url, exc) from exc


def _wrap(uri: str, exc: Exception) -> StorageError:
    from azure.core import exceptions as ace

    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, ace.ResourceNotFoundError):
        code = getattr(exc, "error_code", None) or "not found"
        return StorageError(f"{uri}: container or blob does not exist ({code})")
    status = getattr(exc, "status_code", None) or 0
    if isinstance(exc, ace.ClientAuthenticationError) or status in (401, 403):
        code = getattr(exc, "error_code", None) or status
        return StorageError(f"{uri}: access denied ({code}); check AZURE_STORAGE_ACCESS_KEY")
    if isinstance(exc, ace.ResourceModifiedError):
        return StorageError(f"{uri}: the blob changed during the download")
    if isinstance(exc, (ace.ServiceRequestError, ace.ServiceResponseError, OSError)):
        return TransientError(f"{uri}: {exc}")
    if isinstance(exc, ace.HttpResponseError) and (exc.status_code or 0) >= 500:
        return TransientError(f"{uri}: {exc.message}")
    return StorageError(f"{uri}: {exc.__class__.__name__}: {exc}")
