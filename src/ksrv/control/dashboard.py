"""The web dashboard, served by the control plane beside the management API it reads.

`Dashboard` wraps `ManagementAPI` on the same port: the page and its assets (plain HTML, CSS
and JS shipped as package data in `dashboard_assets/`, no CDN) under `/dashboard/`, and three
small endpoints the API lacks; everything else goes to the API unchanged. The page reads
resources, revisions and logs from the API's own endpoints, as `ksrv get` does, with the
bearer token the user typed in, so it works behind `ksrv up --auth`. The assets need no token:
they hold no data. The added endpoints, each checked as the API checks its own paths:

- `GET /ksrv/v1[/namespaces/{ns}]/series?since=T`: the in-memory history (`timeseries`);
- `POST /ksrv/v1/apply?namespace=NS[&dryRun=All]`: a YAML text of one or more documents,
  each applied through the API's own server-side apply (so the field errors are the API's,
  the same admission `ksrv apply --dry-run` runs, and each document's namespace is checked
  against the token), one result per document;
- `/ksrv/v1/namespaces/{ns}/proxy/{name}/{path}`: the "try it" panel's requests, forwarded to
  the gateway's `/serving/{ns}/{name}/{path}` and timed there, so the browser needs neither
  CORS nor the gateway's address.
"""

from __future__ import annotations

import json
import ssl
import time
from importlib import resources
from typing import Any

import httpx
import yaml

from ksrv import errors
from ksrv.control import admission, api_paths, api_request, api_status
from ksrv.control.api_server import APPLY_PATCH, APPLY_RESULT_HEADER, ManagementAPI
from ksrv.control.timeseries import ReplicaSource, SeriesBook
from ksrv.http.server import Request, Response, StreamingResponse

PREFIX = "/dashboard/"
PROXY_TIMEOUT_S = 60.0
LATENCY_HEADER = "x-ksrv-latency-ms"
_TYPES = {
    "html": b"text/html; charset=utf-8",
    "js": b"text/javascript; charset=utf-8",
    "css": b"text/css; charset=utf-8",
    "svg": b"image/svg+xml",
}
# No inline script or style, nothing from elsewhere: the page runs only its own files.
_PAGE_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
     b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
]  # fmt: skip
_FORWARDED = ("content-type", "accept", "authorization")


def assets() -> dict[str, bytes]:
    """Every file of the page by name, as shipped in the package."""
    folder = resources.files("ksrv.control") / "dashboard_assets"
    return {
        item.name: item.read_bytes()
        for item in folder.iterdir()
        if item.is_file() and item.name.rpartition(".")[2] in _TYPES
    }


class Dashboard:
    """The management API with the dashboard in front of it (an `HTTPServer` handler)."""

    def __init__(
        self,
        api: ManagementAPI,
        replicas: ReplicaSource,
        gateway_url: str,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """`gateway_url`: where the "try it" requests and the reads of the gateway's metrics
        go (`http[s]://host:port`); `series.run()` samples them with `replicas`."""
        self.api = api
        self.too_large = api.too_large
        self.gateway_url = gateway_url.rstrip("/")
        self.files = assets()
        self._client = httpx.AsyncClient(timeout=PROXY_TIMEOUT_S, verify=verify)
        self.series = SeriesBook(replicas, self.gateway_metrics)

    async def close(self) -> None:
        await self._client.aclose()

    async def gateway_metrics(self) -> str:
        """The gateway's Prometheus exposition (its `/metrics`, as Prometheus scrapes it)."""
        answer = await self._client.get(f"{self.gateway_url}/metrics", timeout=5.0)
        answer.raise_for_status()
        return answer.text

    async def __call__(self, request: Request) -> Response | StreamingResponse:
        path = request.path
        if path in ("/", "/dashboard"):
            return Response(b"", 302, [(b"location", PREFIX.encode())])
        if path.startswith(PREFIX):
            return self._asset(request.method, path[len(PREFIX) :] or "index.html")
        parts = [part for part in path.split("/") if part]
        try:
            if parts[:2] == ["ksrv", "v1"] and parts[2:3] == ["apply"]:
                return await self._apply(request)
            if parts[:2] == ["ksrv", "v1"] and self._is_ours(parts[2:]):
                if self.api.tokens is not None:
                    self.api.tokens.check(request, parts)
                if parts[-1] == "series":
                    return self._series(parts, api_request.query_params(request))
                return await self._proxy(request, parts[3], parts[5], parts[6:])
        except Exception as exc:
            return api_status.failure(exc, {}, False)
        return await self.api(request)

    @staticmethod
    def _is_ours(rest: list[str]) -> bool:
        if rest == ["series"]:
            return True
        is_namespaced = rest[:1] == ["namespaces"] and len(rest) >= 3
        return is_namespaced and (rest[2:] == ["series"] or (rest[2] == "proxy" and len(rest) >= 4))

    # -- the page --------------------------------------------------------------------------
    def _asset(self, method: str, name: str) -> Response:
        body = self.files.get(name)
        if method not in ("GET", "HEAD"):
            return _plain(405, b"the dashboard's files are read with GET")
        if body is None:
            return _plain(404, b"no such file in the dashboard")
        content_type = _TYPES[name.rpartition(".")[2]]
        headers = [(b"content-type", content_type), *_PAGE_HEADERS]
        return Response(b"" if method == "HEAD" else body, 200, headers)

    # -- series ----------------------------------------------------------------------------
    def _series(self, parts: list[str], query: dict[str, str]) -> Response:
        namespace = parts[3] if parts[2] == "namespaces" else None
        since = api_request.float_param(query, "since", 0.0)
        items = self.series.series(namespace, since)
        body = {"kind": "SeriesList", "intervalSeconds": self.series.interval_s, "items": items}
        return api_status.encode(body, 200)

    # -- apply -----------------------------------------------------------------------------
    async def _apply(self, request: Request) -> Response:
        if request.method != "POST":
            raise errors.MethodNotAllowed(f"{request.method} is not supported here")
        query = api_request.query_params(request)
        namespace = query.get("namespace") or "default"
        if self.api.tokens is not None:  # a caller the namespace's own calls would admit
            self.api.tokens.check(request, ["ksrv", "v1", "namespaces", namespace, "apply"])
        dry_run = "?dryRun=All" if query.get("dryRun") == "All" else ""
        try:
            documents = admission.parse(request.body.decode("utf-8"))
        except (errors.ResourceInvalid, UnicodeDecodeError) as exc:
            raise errors.InvalidInput(f"the YAML: {exc}") from exc
        if not documents:
            raise errors.InvalidInput("the YAML holds no document")
        results = [await self._apply_one(request, d, namespace, dry_run) for d in documents]
        # Refused documents: their one status (401 for all, say), or 422 for a mixture.
        failed = {result["code"] for result in results if result["code"] >= 400}
        code = (failed.pop() if len(failed) == 1 else 422) if failed else 200
        return api_status.encode({"kind": "ApplyResultList", "items": results}, code)

    async def _apply_one(
        self, request: Request, document: dict[str, Any], namespace: str, dry_run: str
    ) -> dict[str, Any]:
        """One document through the API's server-side apply (`PATCH` on the item's path)."""
        kind = str(document.get("kind", ""))
        given = document.get("metadata")
        metadata: dict[str, Any] = given if isinstance(given, dict) else {}
        name = str(metadata.get("name") or "")
        resource_type = api_paths.by_kind(kind)
        if resource_type is None or not name:
            why = f"unknown kind {kind!r}" if resource_type is None else "no metadata.name"
            return _refused(kind, name, namespace, why)
        own = str(metadata.get("namespace") or namespace)
        path = resource_type.item_path(own, name) + dry_run
        headers = {
            "content-type": APPLY_PATCH,
            "accept": "application/json",
            **{k: v for k, v in request.headers.items() if k == "authorization"},
        }
        body = yaml.safe_dump(document, sort_keys=False).encode()
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        inner = Request("PATCH", None, None, body, path.encode(), raw, request.client)
        answer = await self.api(inner)
        assert isinstance(answer, Response)
        result: dict[str, Any] = {"kind": kind, "name": name, "code": answer.status}
        result["namespace"] = own if resource_type.is_namespaced else ""
        outcome = dict(answer.headers).get(APPLY_RESULT_HEADER.encode())
        if outcome is not None:
            result["outcome"] = outcome.decode()
        if answer.status >= 400:
            result["status"] = json.loads(answer.body)
        return result

    # -- try it ----------------------------------------------------------------------------
    async def _proxy(
        self, request: Request, namespace: str, name: str, rest: list[str]
    ) -> Response:
        if request.method not in ("GET", "POST"):
            raise errors.MethodNotAllowed(f"{request.method} is not supported here")
        if any(part in (".", "..") for part in rest):
            raise errors.InvalidInput("the path after the service must not hold . or ..")
        query = request.target.partition(b"?")[2].decode("latin-1")
        path = "/".join(api_paths.segment(p) for p in ["serving", namespace, name, *rest])
        url = f"{self.gateway_url}/{path}" + (f"?{query}" if query else "")
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        started = time.perf_counter()
        try:
            answer = await self._client.request(
                request.method, url, content=request.body, headers=headers
            )
        except httpx.TimeoutException as exc:
            raise errors.UpstreamTimeout(f"the gateway did not answer: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise errors.UpstreamFailed(f"the gateway is unreachable: {exc!r}") from exc
        latency_ms = (time.perf_counter() - started) * 1000.0
        content_type = answer.headers.get("content-type", "application/octet-stream")
        return Response(
            answer.content,
            answer.status_code,
            [
                (b"content-type", content_type.encode("latin-1")),
                (LATENCY_HEADER.encode(), f"{latency_ms:.2f}".encode()),
            ],
        )


def _plain(code: int, text: bytes) -> Response:
    return Response(text, code, [(b"content-type", b"text/plain; charset=utf-8")])


def _refused(kind: str, name: str, namespace: str, why: str) -> dict[str, Any]:
    status = api_status.status_object(errors.InvalidInput(why), {"name": name})
    return {"kind": kind, "name": name, "namespace": namespace, "code": 400, "status": status}
