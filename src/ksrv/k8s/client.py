"""The operator's one door to the Kubernetes API: the official client, by apiVersion and kind.

The only module that imports `kubernetes` (STYLE.md §2: a heavy library in one module). It
connects the way kubectl does (in-cluster service account, else `KUBECONFIG`/~/.kube/config),
reaches any kind through the client's discovery (`DynamicClient`), always patches with JSON
merge patch (RFC 7386: the same meaning on a cluster and on the test emulator), and turns the
library's errors into `ApiFailure`, which says whether trying again can help.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Final

import kubernetes
import urllib3.exceptions
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

logger = logging.getLogger(__name__)

MERGE_PATCH: Final = "application/merge-patch+json"
# Conflicts (stale reads, two writers), throttling and server-side trouble pass with time.
_TRANSIENT: Final = frozenset({408, 409, 429})
MISS_TTL_S: Final = 60.0


class ApiFailure(Exception):
    """The API refused or failed a request; `status` 0 means it could not be reached."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status or 'unreachable'}: {message}")
        self.status = status
        self.message = message

    @property
    def is_transient(self) -> bool:
        """Whether the same request may succeed later (the spec being unchanged)."""
        return self.status == 0 or self.status >= 500 or self.status in _TRANSIENT


def connect(kubeconfig: str | None = None, context: str | None = None) -> Api:
    """An `Api` from the in-cluster service account, else the kubeconfig (`KUBECONFIG`)."""
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        try:
            kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return Api(kubernetes.client.ApiClient(configuration))
        except kubernetes.config.ConfigException:
            pass
    # KUBECONFIG is read now: the library reads it once, when it is imported.
    kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig or os.environ.get("KUBECONFIG"),
        context=context,
        client_configuration=configuration,
    )
    return Api(kubernetes.client.ApiClient(configuration))


class Api:
    """get / list / create / patch / delete of any served kind, as plain dicts."""

    def __init__(self, api_client: Any) -> None:
        self._client = api_client
        self._dynamic: DynamicClient | None = None
        self._misses: dict[tuple[str, str], float] = {}

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    def connection(self) -> dict[str, Any]:
        """What kopf's own connection needs to reach the same server the same way (the
        `kopf.ConnectionInfo` fields)."""
        configuration = self._client.configuration
        header = configuration.get_api_key_with_prefix(
            "BearerToken"
        ) or configuration.get_api_key_with_prefix("authorization")
        scheme, _, token = (header or "").rpartition(" ")
        return {
            "server": configuration.host,
            "ca_path": configuration.ssl_ca_cert,
            "insecure": not configuration.verify_ssl,
            "username": configuration.username or None,
            "password": configuration.password or None,
            "scheme": scheme or None,
            "token": token or None,
            "certificate_path": configuration.cert_file,
            "private_key_path": configuration.key_file,
        }

    def close(self) -> None:
        self._client.close()

    def is_served(self, api_version: str, kind: str) -> bool:
        return self._resource(api_version, kind) is not None

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it (or its kind) does not exist."""
        resource = self._resource(api_version, kind)
        if resource is None:
            return None
        try:
            return _plain(self._call(resource.get, name=name, namespace=namespace))
        except ApiFailure as failure:
            if failure.status == 404:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> list[dict[str, Any]]:
        """The objects of a kind (in `namespace`, or everywhere); none if the kind is absent."""
        resource = self._resource(api_version, kind)
        if resource is None:
            return []
        found = self._call(resource.get, namespace=namespace, label_selector=label_selector)
        items = _plain(found).get("items") or []
        for item in items:  # list items carry no apiVersion/kind of their own
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return list(items)

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        resource = self._required(body["apiVersion"], body["kind"])
        namespace = body["metadata"].get("namespace")
        return _plain(self._call(resource.create, body=body, namespace=namespace))

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch of the object (or of its `status` subresource)."""
        resource = self._required(api_version, kind)
        if subresource is not None:
            resource = resource.subresources[subresource]
        return _plain(
            self._call(
                resource.patch, body=patch, name=name, namespace=namespace,
                content_type=MERGE_PATCH,
            )
        )  # fmt: skip

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> None:
        """Delete (dependents in the background, as kubectl does); gone already is fine."""
        resource = self._resource(api_version, kind)
        if resource is None:
            return
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        try:
            self._call(resource.delete, name=name, namespace=namespace, body=body)
        except ApiFailure as failure:
            if failure.status != 404:
                raise

    def _discovery(self) -> DynamicClient:
        if self._dynamic is None:
            self._dynamic = self._call(DynamicClient, self._client)
        return self._dynamic

    def _resource(self, api_version: str, kind: str) -> Any:
        """The kind's API resource, None when the cluster does not serve it. A miss makes the
        client discover the whole API again, so misses are remembered for a while (a CRD
        installed meanwhile is found after `MISS_TTL_S`)."""
        key = (api_version, kind)
        missed_at = self._misses.get(key)
        if missed_at is not None and time.monotonic() - missed_at < MISS_TTL_S:
            return None
        try:
            return self._discovery().resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError:
            self._misses[key] = time.monotonic()
            return None

    def _required(self, api_version: str, kind: str) -> Any:
        resource = self._resource(api_version, kind)
        if resource is None:
            raise ApiFailure(404, f"the cluster does not serve {kind} ({api_version})")
        return resource

    @staticmethod
    def _call(function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except kubernetes.client.exceptions.ApiException as exc:
            raise ApiFailure(int(exc.status or 0), _message(exc)) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiFailure(0, str(exc)) from None


def _plain(found: Any) -> dict[str, Any]:
    value = found.to_dict() if hasattr(found, "to_dict") else found
    return value if isinstance(value, dict) else {}


def _message(exc: Any) -> str:
    """The API's own message (its Status body), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or exc.reason or "request failed")
