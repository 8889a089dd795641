"""storageUri -> local files, cached: `download(uri, dest)` for every scheme KServe knows."""

from ksrv.storage.base import (
    DownloadOptions,
    Listing,
    Provider,
    RemoteObject,
    download,
    scheme_of,
)

__all__ = ["DownloadOptions", "Listing", "Provider", "RemoteObject", "download", "scheme_of"]
