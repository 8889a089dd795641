"""The management API: KServe's resources over Kubernetes-shaped REST, kept in the `Store`.

`ManagementAPI` is an `async (Request) -> Response` handler for `ksrv.http.HTTPServer`. Every
body goes through `admission` (KServe's defaulting and validation) before the store sees it;
every failure is a Kubernetes `Status` object, so kubectl-trained eyes and KServe's clients read
them, and a caller's mistake is never a 500. Two internal endpoints serve what the control plane
knows beyond the store: the route table (long poll, for the gateway) and replica logs; the
gateways POST traffic counts (`TrafficSink`) and activations of revisions at zero (`activate`).
A component's revisions are served read-only under `ksrv.dev/v1` (`RevisionSource`).
Bearer tokens, and the check of every call when they are required: `api_tokens`.
ClusterServingRuntimes are read with ksrv's installed defaults (`default_runtimes.installed`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from ksrv import errors
from ksrv.api import default_runtimes, names
from ksrv.api.kinds import COMPONENTS
from ksrv.control import admission, api_request, api_status, log_tail
from ksrv.control.api_request import Call
from ksrv.control.api_tokens import TokenAuthority
from ksrv.control.metrics import ControlMetrics
from ksrv.control.store import Store
from ksrv.http.server import Request, Response, StreamingResponse
from ksrv.protocol.routes import RouteTableDoc
from ksrv.protocol.traffic import ActivationDoc, parse_activation
from ksrv.telemetry.metrics import CONTENT_TYPE

Document = dict[str, Any]

MAX_BODY_BYTES = 3 * 1024 * 1024  # Kubernetes' request limit for one object
MAX_POLL_S = 300.0
LOG_POLL_S = 0.2  # `ksrv logs -f`: how often followed logs are checked for new lines
APPLY_PATCH = "application/apply-patch+yaml"
# Response header telling `ksrv apply` what an apply did, as kubectl prints it.
APPLY_RESULT_HEADER = "x-ksrv-apply"
_JSON = (b"content-type", b"application/json")
_METRICS = (b"content-type", CONTENT_TYPE.encode())


class RouteFeed(Protocol):
    """The route table the reconciler publishes (`control.routes.RoutePublisher` satisfies it)."""

    def snapshot(self) -> RouteTableDoc: ...

    async def wait_newer(self, after: int, timeout_s: float) -> RouteTableDoc | None: ...


class TrafficSink(Protocol):
    """Takes the gateways' traffic reports (`control.traffic.TrafficCollector` satisfies it)."""

    def record(self, document: Any) -> None: ...


class RevisionSource(Protocol):
    """Revisions as served (`control.revision_view.RevisionView` satisfies it)."""

    def list(self, namespace: str | None) -> list[Document]: ...

    def get(self, namespace: str, name: str) -> Document:
        """Raises: ResourceNotFound."""


class LogSource(Protocol):
    """Where a component's replica logs are (the local platform knows)."""

    def log_paths(self, namespace: str, name: str, component: str) -> list[Path]: ...


class ManagementAPI:
    """Routes `/apis/serving.kserve.io/...`, `/ksrv/v1/...` and `/healthz`.

    Writes go to the store only; the reconciler learns of them from the store's change feed.
    """

    def __init__(
        self,
        store: Store,
        routes: RouteFeed | None = None,
        logs: LogSource | None = None,
        traffic: TrafficSink | None = None,
        activate: Callable[[ActivationDoc], Awaitable[object]] | None = None,
        *,
        revisions: RevisionSource | None = None,
        tokens: TokenAuthority | None = None,
        metrics: ControlMetrics | None = None,
        scrape_targets: Callable[[], list[Document]] | None = None,
    ) -> None:
        """`metrics` are served on `/metrics`; `scrape_targets` (Prometheus's HTTP service
        discovery) on `/ksrv/v1/prometheus/targets`."""
        self.store = store
        self.tokens = tokens
        self.metrics = metrics
        self.scrape_targets = scrape_targets
        self.routes = routes
        self.logs = logs
        self.traffic = traffic
        self.revisions = revisions
        self.activate = activate
        self._closing = asyncio.Event()
        self._installed_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def close(self) -> None:
        """Answer pending and future route long polls at once (304), so a shutdown's grace
        period is not spent waiting for the gateway's open poll."""
        self._closing.set()

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        wants_yaml = "yaml" in request.headers.get("accept", "")
        call: Call | None = None
        name: str | None = None
        try:
            query = api_request.query_params(request)
            parts = [part for part in request.path.split("/") if part]
            if parts == ["healthz"]:
                return Response(b"ok", 200, [(b"content-type", b"text/plain")])
            if self.tokens is not None:
                self.tokens.check(request, parts)
                if parts[:3] == ["ksrv", "v1", "tokens"]:
                    given = _body(request) if request.method == "POST" else {}
                    return api_status.encode(*self.tokens.serve(request.method, parts[3:], given))
            if parts == ["metrics"] and self.metrics is not None and request.method == "GET":
                return Response(self.metrics.exposition(), 200, [_METRICS])
            if parts[:2] == ["ksrv", "v1"] and parts[2:] in (["traffic"], ["activate"]):
                if request.method != "POST":
                    raise errors.MethodNotAllowed(f"{request.method} is not supported here")
                if parts[2] == "traffic" and self.traffic is not None:
                    self.traffic.record(_body(request))
                elif parts[2] == "activate" and self.activate is not None:
                    await self.activate(parse_activation(_body(request)))
                return Response(b"", 204)
            if parts[:2] == ["ksrv", "v1"]:
                return await self._internal(request.method, parts[2:], query)
            call = api_request.parse_call(parts, query)
            name = call.name
            body: Document = {}
            if request.method in ("POST", "PUT", "PATCH"):
                body = _body(request)
                name = name or _name_in(body)
            result, code, headers = self._resource(request, call, body)
            return api_status.encode(result, code, wants_yaml, headers)
        except RecursionError:
            # json/yaml/pydantic give up on absurdly deep documents: the caller's mistake.
            exc = errors.InvalidInput("the document is nested too deeply")
            return api_status.failure(exc, _details(call, name), wants_yaml)
        except Exception as exc:
            return api_status.failure(exc, _details(call, name), wants_yaml)

    @staticmethod
    def too_large(size: int) -> Response:
        """The 413 answer `HTTPServer` sends for a body over `MAX_BODY_BYTES`."""
        exc = errors.PayloadTooLarge(f"request body of {size} bytes exceeds {MAX_BODY_BYTES}")
        return api_status.failure(exc, {}, False)

    # -- resources -------------------------------------------------------------------------
    def _resource(
        self, request: Request, call: Call, body: Document
    ) -> tuple[Document, int, list[Any]]:
        method = request.method
        if call.type.is_read_only:
            return self._read_only(method, call), 200, []
        if call.name is None:
            if method == "GET":
                return self._list(call), 200, []
            if method == "POST" and (call.namespace is not None or not call.type.is_namespaced):
                return self._create(call, body), 201, []
            raise _not_allowed(method, call)
        if call.subresource == "status":
            if method == "GET":
                return self._get(call), 200, []
            if method == "PUT":
                return self._replace_status(call, body), 200, []
            raise _not_allowed(method, call)
        if method == "GET":
            return self._get(call), 200, []
        if method == "PUT":
            return self._replace(call, body), 200, []
        if method == "PATCH":
            content_type = _content_type(request)
            if content_type != APPLY_PATCH:
                raise errors.UnsupportedMediaType(
                    f"PATCH takes {APPLY_PATCH} (server-side apply), not {content_type!r}"
                )
            stored, outcome = self._apply(call, body)
            code = 201 if outcome == "created" else 200
            return stored, code, [(APPLY_RESULT_HEADER.encode(), outcome.encode())]
        if method == "DELETE":
            return self._delete(call), 200, []
        raise _not_allowed(method, call)

    def _read_only(self, method: str, call: Call) -> Document:
        """GET of a kind the control plane makes (revisions); every write is refused."""
        if method != "GET":
            raise errors.MethodNotAllowed(
                f"{method} is not supported on {call.type.plural}: they are read-only, made by "
                "the control plane for each change of an InferenceService component; change "
                "the InferenceService instead"
            )
        if self.revisions is None:
            raise errors.RouteNotFound(f"this control plane serves no {call.type.plural}")
        if call.name is not None:
            assert call.namespace is not None
            return self.revisions.get(call.namespace, call.name)
        return {
            "apiVersion": call.type.api_version,
            "kind": f"{call.type.kind}List",
            "metadata": {},
            "items": self.revisions.list(call.namespace),
        }

    def _list(self, call: Call) -> Document:
        namespace = call.namespace if call.type.is_namespaced else ""
        return {
            "apiVersion": call.type.api_version,
            "kind": f"{call.type.kind}List",
            "metadata": {"resourceVersion": str(self.store.latest_version)},
            "items": self._with_installed(call, self.store.list(call.type.kind, namespace)),
        }

    def _get(self, call: Call) -> Document:
        assert call.name is not None
        try:
            return self.store.get(call.type.kind, call.store_namespace, call.name)
        except errors.ResourceNotFound:
            for document in self._with_installed(call, []):
                if document["metadata"]["name"] == call.name:
                    return document
            raise

    def _with_installed(self, call: Call, stored: list[Document]) -> list[Document]:
        """ClusterServingRuntimes: the stored ones and the defaults they do not replace."""
        if call.type.kind != "ClusterServingRuntime":
            return stored
        return default_runtimes.installed(stored, self._installed_at)

    def _create(self, call: Call, body: Document) -> Document:
        document = self._admit(call, body)
        if call.is_dry_run:
            name = document["metadata"]["name"]
            if self._find(call, name) is not None:
                raise errors.Conflict(f'{call.type.kind} "{name}" already exists')
            return {**document, "status": {}}
        return self.store.create(document)

    def _replace(self, call: Call, body: Document) -> Document:
        document = self._admit(call, body)
        current = self._get(call)
        admission.admit_update(current, document)
        if call.is_dry_run:
            if (
                document["metadata"].get("resourceVersion")
                != current["metadata"]["resourceVersion"]
            ):
                raise errors.Conflict(f'{call.type.kind} "{call.name}" has been modified')
            return _preview(current, document)
        return self.store.update(document)

    def _apply(self, call: Call, body: Document) -> tuple[Document, str]:
        document = self._admit(call, body)
        current = self._find(call, document["metadata"]["name"])
        if current is not None:
            admission.admit_update(current, document)
        if call.is_dry_run:
            if current is None:
                return {**document, "status": {}}, "created"
            preview = _preview(current, document)
            return preview, "configured" if preview != current else "unchanged"
        stored, changed = self.store.apply(document)
        if current is None:
            return stored, "created"
        return stored, "configured" if changed else "unchanged"

    def _replace_status(self, call: Call, body: Document) -> Document:
        current = self._get(call)
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise errors.InvalidInput("metadata must be a mapping")
        given = metadata.get("resourceVersion")
        if given is not None and str(given) != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(f'{call.type.kind} "{call.name}" has been modified')
        new_status = body.get("status")
        if not isinstance(new_status, dict):
            raise errors.InvalidInput("a status update needs a `status` mapping")
        if call.is_dry_run:
            return {**current, "status": new_status}
        assert call.name is not None
        return self.store.update_status(call.type.kind, call.store_namespace, call.name, new_status)

    def _delete(self, call: Call) -> Document:
        assert call.name is not None
        admission.admit_delete(call.type.kind, call.store_namespace, call.name, self.store)
        if call.is_dry_run:
            return self._get(call)
        return self.store.delete(call.type.kind, call.store_namespace, call.name)

    def _admit(self, call: Call, body: Document) -> Document:
        """The body checked against the URL, then defaulted and validated by `admission`."""
        if call.type.is_namespaced and call.namespace is not None:
            _check_namespace(call.namespace)
        _check_against_url(call, body)
        resource_version = body["metadata"].get("resourceVersion")
        document = admission.admit(body)
        metadata = document.setdefault("metadata", {})
        if call.type.is_namespaced:
            metadata["namespace"] = call.namespace
        else:
            metadata.pop("namespace", None)
        admission.admit_among(document, self.store)
        if resource_version is not None:
            metadata["resourceVersion"] = str(resource_version)
        return document

    def _find(self, call: Call, name: str) -> Document | None:
        try:
            return self.store.get(call.type.kind, call.store_namespace, name)
        except errors.ResourceNotFound:
            return None

    # -- internal endpoints ----------------------------------------------------------------
    async def _internal(
        self, method: str, parts: list[str], query: dict[str, str]
    ) -> Response | StreamingResponse:
        if method != "GET":
            raise errors.MethodNotAllowed(f"{method} is not supported here")
        if parts == ["routes"]:
            return await self._routes(query)
        if parts == ["prometheus", "targets"] and self.scrape_targets is not None:
            return Response(json.dumps(self.scrape_targets()).encode(), 200, [_JSON])
        if len(parts) == 4 and parts[0] == "namespaces" and parts[2] == "logs":
            return await self._logs(parts[1], parts[3], query)
        raise errors.RouteNotFound("the server could not find the requested resource")

    async def _routes(self, query: dict[str, str]) -> Response:
        if self.routes is None:
            raise errors.RouteNotFound("this control plane publishes no route table")
        after = api_request.int_param(query, "after", 0, minimum=0)
        timeout_s = min(api_request.float_param(query, "timeout_s", 30.0), MAX_POLL_S)
        table = self.routes.snapshot()
        if int(table.get("version", 0)) <= after:
            newer = await self._wait_newer(self.routes, after, timeout_s)
            if newer is None:
                return Response(b"", 304)
            table = newer
        return api_status.encode(dict(table), 200, False)

    async def _wait_newer(
        self, routes: RouteFeed, after: int, timeout_s: float
    ) -> RouteTableDoc | None:
        if self._closing.is_set():
            return None
        polling = asyncio.ensure_future(routes.wait_newer(after, timeout_s))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait((polling, closing), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (polling, closing):
                task.cancel()
        return polling.result() if polling.done() and not polling.cancelled() else None

    async def _logs(
        self, namespace: str, name: str, query: dict[str, str]
    ) -> Response | StreamingResponse:
        # Both name directories: `..` or a NUL must never reach a path.
        _check_namespace(namespace)
        problem = names.name_problem(name)
        if problem:
            raise errors.InvalidInput(f"name {problem}")
        component = query.get("component", "predictor")
        if component not in (*COMPONENTS, "router"):  # router: an InferenceGraph's
            raise errors.InvalidInput(f"component must be one of {', '.join(COMPONENTS)}, router")
        tail = api_request.int_param(query, "tail", 100, minimum=-1)
        if self.logs is None:
            raise errors.RouteNotFound("this control plane keeps no logs")
        logs = self.logs

        def paths_now() -> list[Path]:
            return [path for path in logs.log_paths(namespace, name, component) if path.exists()]

        paths = paths_now()
        if not paths:
            raise errors.RouteNotFound(f"no logs for the {component} of {namespace}/{name}")
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if query.get("follow") == "true":
            chunks = log_tail.follow(paths_now, tail, LOG_POLL_S, self._closing.is_set)
            return StreamingResponse(chunks, 200, headers)
        text = await asyncio.to_thread(log_tail.read_tails, paths, tail)
        return Response(text.encode(), 200, headers)


# -- request reading ------------------------------------------------------------------------
def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").partition(";")[0].strip().lower()


def _body(request: Request) -> Document:
    """The one document in the body, JSON or YAML by content type (anything else: YAML)."""
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.InvalidInput("the body is not UTF-8 text") from exc
    try:
        if _content_type(request) == "application/json":
            documents = [json.loads(text)]
        else:
            documents = admission.parse(text)
    except errors.ResourceInvalid as exc:  # its message says what is wrong with the YAML
        raise errors.InvalidInput(f"the body: {exc}") from exc
    except ValueError as exc:
        raise errors.InvalidInput(f"the body is not valid JSON: {exc}") from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise errors.InvalidInput("the body must be exactly one JSON or YAML object")
    return documents[0]


def _name_in(body: Document) -> str | None:
    metadata = body.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else None


def _check_namespace(namespace: str) -> None:
    """A namespace a write or a log read names must be valid; reads and deletes take any, so
    an object stored under older, looser rules can still be listed and deleted."""
    problem = names.namespace_problem(namespace)
    if problem:
        raise errors.InvalidInput(f"namespace {problem}")


def _check_against_url(call: Call, body: Document) -> None:
    """Kind, apiVersion, namespace and name in the body agree with the URL (or are filled)."""
    expected = call.type
    kind = body.setdefault("kind", expected.kind)
    if kind != expected.kind:
        raise errors.InvalidInput(f"the body is a {kind!r}, but the URL is for {expected.kind}")
    api_version = body.setdefault("apiVersion", expected.api_version)
    if api_version not in expected.api_versions:
        raise errors.InvalidInput(
            f"apiVersion {api_version!r} does not match {expected.api_version} in the URL"
        )
    metadata = body.setdefault("metadata", {})
    if not isinstance(metadata, dict):
        raise errors.InvalidInput("metadata must be a mapping")
    namespace = metadata.get("namespace")
    if expected.is_namespaced and namespace not in (None, "", call.namespace):
        raise errors.InvalidInput(
            f"the namespace of the object ({namespace}) does not match the namespace on the "
            f"request ({call.namespace})",
        )
    if call.name is not None:
        name = metadata.setdefault("name", call.name)
        if name != call.name:
            raise errors.InvalidInput(
                f"the name of the object ({name}) does not match the name on the URL"
            )


# -- answers --------------------------------------------------------------------------------
def _preview(current: Document, document: Document) -> Document:
    """What an update would store (for dryRun): the new user fields over the stored object."""
    preview = {key: value for key, value in document.items() if key != "status"}
    metadata = {**document.get("metadata", {})}
    for field in ("uid", "resourceVersion", "generation", "creationTimestamp"):
        metadata[field] = current["metadata"][field]
    if document.get("spec") != current.get("spec"):
        metadata["generation"] = current["metadata"]["generation"] + 1
    preview["metadata"] = metadata
    preview["status"] = current.get("status", {})
    return preview


def _details(call: Call | None, name: str | None) -> Document:
    """Status `details`: which resource the failed call was about."""
    if call is None:
        return {}
    details: Document = {"kind": call.type.plural, "group": call.type.group}
    if name:
        details["name"] = name
    return details


def _not_allowed(method: str, call: Call) -> errors.MethodNotAllowed:
    where = f"{call.type.plural}/{call.name}" if call.name else call.type.plural
    return errors.MethodNotAllowed(f"{method} is not supported on {where}")
