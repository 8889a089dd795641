"""ClusterStorageContainer (`serving.kserve.io/v1alpha1`, cluster-scoped): which container
downloads the models whose storage URI it matches.

On Kubernetes the first enabled `initContainer` one whose `supportedUriFormats` (a prefix, or a
regular expression searched anywhere in the URI, as Go's `regexp.MatchString` does) match a URI
supplies the storage-initializer's container (`k8s.storage_init`). The local platform stores
them and says in their status that it downloads with ksrv's own storage layer instead.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from ksrv.api.meta import ApiModel, ObjectMeta, PodContainer, join

API_VERSION: Final = "serving.kserve.io/v1alpha1"
INIT_CONTAINER: Final = "initContainer"
LOCAL_MODEL_DOWNLOAD_JOB: Final = "localModelDownloadJob"
WORKLOAD_TYPES: Final = (INIT_CONTAINER, LOCAL_MODEL_DOWNLOAD_JOB)
DEFAULT_NAME: Final = "default"
# What `ksrv storage download` fetches itself (KServe's default lists hdfs, webhdfs, modelscope
# and Azure files too; ksrv's storage layer does not download those yet).
_KSRV_URI_FORMATS: Final = (
    {"prefix": "gs://"},
    {"prefix": "s3://"},
    {"prefix": "hf://"},
    {"regex": "https://(.+?).blob.core.windows.net/(.+)"},
    {"regex": "https?://(.+)/(.+)"},
)


class SupportedUriFormat(ApiModel):
    """A prefix, or a regular expression; KServe tries the prefix first when both are set."""

    prefix: str | None = None
    regex: str | None = None

    def matches(self, uri: str) -> bool:
        if self.prefix:
            return uri.startswith(self.prefix)
        if self.regex:
            return re.search(self.regex, uri) is not None
        return False


class StorageContainerSpec(ApiModel):
    container: PodContainer
    supported_uri_formats: list[SupportedUriFormat]
    workload_type: str = INIT_CONTAINER
    supports_multi_model_download: bool = False

    def supports(self, uri: str) -> bool:
        """KServe's `IsStorageUriSupported`: any format matches."""
        return any(entry.matches(uri) for entry in self.supported_uri_formats)


class ClusterStorageContainer(ApiModel):
    api_version: Literal["serving.kserve.io/v1alpha1"] = API_VERSION
    kind: Literal["ClusterStorageContainer"] = "ClusterStorageContainer"
    metadata: ObjectMeta
    spec: StorageContainerSpec
    # KServe keeps `disabled` beside `spec`, not in it.
    disabled: bool | None = None
    # The CRD has no status; the local platform records one (what it cannot run).
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def is_disabled(self) -> bool:
        return self.disabled is True

    def is_usable_for(self, uri: str) -> bool:
        """Enabled, an init container, and matching `uri`: KServe's eligibility rule."""
        return (
            not self.is_disabled
            and self.spec.workload_type == INIT_CONTAINER
            and self.spec.supports(uri)
        )

    @property
    def container_spec(self) -> dict[str, Any]:
        """The container as written (camelCase), to merge over the default initializer."""
        container: dict[str, Any] = self.to_dict()["spec"]["container"]
        return container


def storage_container_errors(resource: ClusterStorageContainer) -> list[tuple[str, str]]:
    """What KServe would only find when matching a URI: a regex that does not compile, or a
    workload type it never runs (both silently skip every model there)."""
    errors: list[tuple[str, str]] = []
    for index, entry in enumerate(resource.spec.supported_uri_formats):
        path = join(join("spec.supportedUriFormats", index), "regex")
        if entry.regex and not entry.prefix:
            try:
                re.compile(entry.regex)
            except re.error as exc:
                errors.append((path, f"not a valid regular expression: {exc}"))
    if resource.spec.workload_type not in WORKLOAD_TYPES:
        errors.append(("spec.workloadType", f"must be one of {', '.join(WORKLOAD_TYPES)}"))
    return errors


def default_storage_container(image: str) -> dict[str, Any]:
    """ksrv's counterpart of KServe's `default` ClusterStorageContainer: ksrv's storage
    initializer image for the URI schemes its storage layer downloads (`ksrv k8s install`)."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterStorageContainer",
        "metadata": {"name": DEFAULT_NAME},
        "spec": {
            "container": {
                "name": "storage-initializer",
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "100Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            },
            "supportedUriFormats": [dict(entry) for entry in _KSRV_URI_FORMATS],
            "workloadType": INIT_CONTAINER,
            "supportsMultiModelDownload": True,
        },
    }
