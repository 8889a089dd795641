"""A Kubernetes API server good enough to run the operator against: kmock's emulator plus the
apiserver semantics an operator relies on (tier 2 of ../shared/k8s/TESTING.md).

Adds: uid/resourceVersion/generation/creationTimestamp/namespace stamping, generateName,
status-subresource split, JSON-patch `test` failures as 422, PUT (replace) with rv conflicts,
server-side-apply create-if-absent, label/field selectors on list/watch, watch resume from
resourceVersion, ownerReferences cascade GC, CRD creation -> discovery, /api/v1/namespaces fix.
Copied from ../shared/k8s/strict_emulator.py and owned here; pinned to kmock==0.8's internals
(kopf 1.45.2, kubernetes 37). Test code: mypy checks only src/, so this file is not typed.
"""

import asyncio
import collections
import copy
import datetime
import itertools
import re
import threading
import uuid

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import dicts, enums, parsing

RV = itertools.count(1)

# kmock 0.8 crashes (500) on /api/v1/namespaces[/NAME]: it takes 'namespaces' as the namespace
# prefix.
_orig_parse_path = parsing.parse_path
_NS_PATH = re.compile(r"^/api/v1/namespaces(?:/([^/]+))?(?:/(status|finalize))?/?$")


def _parse_path(path):
    m = _NS_PATH.match(path)
    if m:
        return parsing.ParsedPath(
            group="", version="v1", plural="namespaces", name=m.group(1), subresource=m.group(2)
        )
    return _orig_parse_path(path)


parsing.parse_path = _parse_path


class LoggedBus(kmock.Bus):
    """A bus that also keeps (seq, event) history, so that watches can resume from a
    resourceVersion."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.log = []

    async def put(self, event):
        obj = event.get("object", {})
        rv = obj.get("metadata", {}).get("resourceVersion")
        if event.get("type") == "DELETED" or not rv:  # deletions get a fresh resourceVersion
            rv = str(next(RV))
            event = dict(
                event, object=dict(obj, metadata=dict(obj.get("metadata", {}), resourceVersion=rv))
            )
        self.log.append((int(rv), event))
        await super().put(event)


@attrs.define(kw_only=True)
class StrictEmulator(kmock.KubernetesEmulator):
    _buses: dict = attrs.field(factory=lambda: collections.defaultdict(LoggedBus))

    def _has_status(self, resource) -> bool:
        return resource in self.resources and "status" in self.resources[resource].subresources

    def _current(self, request):
        key = (request.resource, request.namespace, request.name)
        # kmock's mappings answer `in` correctly but have no usable .get()
        obj = self.objects[key] if key in self.objects else None  # noqa: SIM401
        return None if obj is None or obj.deleted else copy.deepcopy(obj.raw)

    async def _handle(self, request):
        if request.resource is None:
            return await super()._handle(request)
        if request.method == enums.method.PUT and request.name:
            return await self._replace(request)
        if request.action == enums.action.DELETE and request.name:
            return await self._delete(request)
        key = (request.resource, request.namespace, request.name)
        was_alive = self._current(request) if request.name else None
        ctype = request.headers.get("Content-Type", "")
        if request.action == enums.action.UPDATE and was_alive is None and "apply-patch" in ctype:
            return await self._apply_create(request)  # server-side apply creates absent objects
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            self._stamp_new(request, request.data)
            if request.resource.plural == "customresourcedefinitions":
                self._register_crd(request.data)
        elif request.action == enums.action.UPDATE and was_alive is not None:
            self._prepare_patch(request, was_alive)
        response = await super()._handle(request)
        if (
            request.action == enums.action.CREATE
            and response.status == 200
            and not response.prepared
        ):
            response.set_status(
                201
            )  # the v37 client's CustomObjectsApi.create_* returns None on a 200
        if was_alive is not None and key in self.objects and self.objects[key].deleted:
            await self._collect_garbage({was_alive["metadata"].get("uid")})
        return response

    def _register_crd(self, crd):
        # Make a created CRD discoverable (kmock otherwise serves discovery only from
        # kmock.resources).
        spec, names = crd["spec"], crd["spec"]["names"]
        for v in spec.get("versions", []):
            if v.get("served", True):
                self.resources[f"{spec['group']}/{v['name']}/{names['plural']}"] = (
                    kmock.ResourceInfo(
                        kind=names["kind"],
                        singular=names.get("singular", names["kind"].lower()),
                        namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                        shortnames=names.get("shortNames", []),
                        categories=names.get("categories", []),
                        subresources={k for k in v.get("subresources", {})},
                        verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                    )
                )

    def _kind(self, resource):
        info = self.resources[resource] if resource in self.resources else None  # noqa: SIM401
        return info.kind if info and info.kind else resource.plural.capitalize()

    def _stamp_new(self, request, data):
        res = (
            request.resource
        )  # responses always carry apiVersion/kind (the dynamic client needs them)
        data.setdefault("apiVersion", f"{res.group}/{res.version}" if res.group else res.version)
        data.setdefault("kind", self._kind(res))
        meta = data.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if request.namespace:
            meta["namespace"] = request.namespace
        meta.update(
            uid=str(uuid.uuid4()),
            resourceVersion=str(next(RV)),
            generation=1,
            creationTimestamp=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        if self._has_status(request.resource):
            data.pop("status", None)

    async def _apply_create(self, request):
        data = copy.deepcopy(request.data)
        self._stamp_new(request, data)
        async with self._lock:
            self.objects[request.resource, request.namespace, request.name] = data
            await self._buses[request.resource].put({"type": "ADDED", "object": data})
        return aiohttp.web.json_response(data, status=201)

    def _prepare_patch(self, request, current):
        data, status_only = request.data, request.subresource == "status"
        if isinstance(data, list):  # JSON-patch: the `test` ops must fail with 422, not 500
            if self._has_status(request.resource):
                data[:] = [
                    op
                    for op in data
                    if op["op"] == "test" or (op["path"].startswith("/status") == status_only)
                ]
            try:
                new = jsonpatch.apply_patch(current, data, in_place=False)
            except (jsonpatch.JsonPatchTestFailed, jsonpatch.JsonPatchConflict) as e:
                raise kmock.KubernetesError(status=422, reason="Invalid", message=str(e)) from None
        else:  # merge / strategic-merge / apply: all treated as a JSON merge-patch (lists replaced)
            if self._has_status(request.resource):
                for k in list(data):
                    if (k == "status") != status_only and k != "metadata":
                        data.pop(k)
            new = dicts.patch_dict(current, data)
        if {k: v for k, v in new.items() if k != "metadata"} == {
            k: v for k, v in current.items() if k != "metadata"
        } and new.get("metadata") == current.get("metadata"):
            return  # a no-op patch keeps the resourceVersion, as in a real apiserver
        stamp = {"resourceVersion": str(next(RV))}
        if new.get("spec") != current.get("spec"):
            stamp["generation"] = current["metadata"].get("generation", 1) + 1
        if isinstance(data, list):
            data.extend(
                {"op": "add", "path": f"/metadata/{k}", "value": v} for k, v in stamp.items()
            )
        else:
            data.setdefault("metadata", {}).update(stamp)

    async def _replace(self, request):
        current = self._current(request)
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        new = copy.deepcopy(request.data)
        rv = new.get("metadata", {}).get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise kmock.KubernetesError(
                status=409, reason="Conflict", message="resourceVersion mismatch"
            )
        if self._has_status(request.resource):
            if request.subresource == "status":
                new = dict(current, status=new.get("status"))
            else:
                new["status"] = current.get("status")
        new.setdefault("metadata", {}).update(
            {
                k: current["metadata"][k]
                for k in ("uid", "creationTimestamp", "namespace", "generation")
                if k in current["metadata"]
            }
        )
        new["metadata"]["resourceVersion"] = str(next(RV))
        if new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        async with self._lock:
            self.objects[request.resource, request.namespace, request.name].create(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})
        return aiohttp.web.json_response(new)

    async def _delete(self, request):
        current = self._current(request)
        if current is None:
            raise kmock.KubernetesObjectNotFoundError()
        obj = self.objects[request.resource, request.namespace, request.name]
        async with self._lock:
            if current["metadata"].get("deletionTimestamp"):
                pass
            elif current["metadata"].get("finalizers"):
                obj.patch(
                    {
                        "metadata": {
                            "resourceVersion": str(next(RV)),
                            "deletionTimestamp": datetime.datetime.now(datetime.UTC).strftime(
                                "%Y-%m-%dT%H:%M:%SZ"
                            ),
                        }
                    }
                )
                current = copy.deepcopy(obj.raw)
                await self._buses[request.resource].put({"type": "MODIFIED", "object": current})
            else:
                obj.delete()
                await self._buses[request.resource].put({"type": "DELETED", "object": current})
        if obj.deleted:
            await self._collect_garbage({current["metadata"].get("uid")})
        return aiohttp.web.json_response(current)

    async def _collect_garbage(self, uids):
        while uids:  # cascade (background propagation) through ownerReferences
            async with self._lock:
                next_uids = set()
                for (resource, _, _), obj in list(self.objects.items()):
                    if obj.deleted:
                        continue
                    owners = {
                        ref.get("uid") for ref in obj.get("metadata", {}).get("ownerReferences", [])
                    }
                    if not owners & uids:
                        continue
                    if obj.get("metadata", {}).get("finalizers"):
                        obj.patch(
                            {
                                "metadata": {
                                    "resourceVersion": str(next(RV)),
                                    "deletionTimestamp": datetime.datetime.now(
                                        datetime.UTC
                                    ).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                }
                            }
                        )
                        await self._buses[resource].put({"type": "MODIFIED", "object": obj.raw})
                    else:
                        raw = obj.raw
                        obj.delete()
                        next_uids.add(raw.get("metadata", {}).get("uid"))
                        await self._buses[resource].put({"type": "DELETED", "object": raw})
            uids = next_uids - {None}

    @staticmethod
    def _match_fields(obj, selector):  # only metadata.name / metadata.namespace, '=' and '!='
        meta = obj.get("metadata", {})
        for term in filter(None, (selector or "").split(",")):
            neg = "!=" in term
            k, v = term.replace("!=", "=").replace("==", "=").split("=", 1)
            if (meta.get(k.strip().removeprefix("metadata.")) == v.strip()) == neg:
                return False
        return True

    @staticmethod
    def _match_labels(obj, selector):
        labels = obj.get("metadata", {}).get("labels") or {}
        for term in filter(None, (selector or "").split(",")):
            if "!=" in term:
                k, v = term.split("!=", 1)
                if labels.get(k.strip()) == v.strip():
                    return False
            elif "=" in term:
                k, v = term.replace("==", "=").split("=", 1)
                if labels.get(k.strip()) != v.strip():
                    return False
            elif term.startswith("!"):
                if term[1:].strip() in labels:
                    return False
            elif term.strip() not in labels:
                return False
        return True

    async def _serve_list(self, request):
        result = await super()._serve_list(request)
        sel = request.params.get("labelSelector")
        fsel = request.params.get("fieldSelector")
        result["items"] = [
            o for o in result["items"] if self._match_labels(o, sel) and self._match_fields(o, fsel)
        ]
        result["metadata"]["resourceVersion"] = str(next(RV))
        res = request.resource
        result.update(
            apiVersion=f"{res.group}/{res.version}" if res.group else res.version,
            kind=self._kind(res) + "List",
        )
        return result

    async def _serve_watch(self, request):
        # Unlike kmock's own watch: honour ?resourceVersion= (replay only newer events), and take
        # the snapshot and the bus mark atomically, so that no event is lost or duplicated.
        yield b""
        sel, since = request.params.get("labelSelector"), request.params.get("resourceVersion")
        bus = self._buses[request.resource]
        async with self._lock:
            mark = await bus.mark()
            if since and since != "0":
                replay = [e for seq, e in bus.log if seq > int(since)]
            else:
                replay = [
                    {"type": "ADDED", "object": copy.deepcopy(o.raw)}
                    for (res, ns, _), o in self.objects.items()
                    if res == request.resource
                    and not o.deleted
                    and (request.namespace is None or ns == request.namespace)
                ]
        try:
            for event in replay:
                if self._wanted(request, event, sel):
                    yield event
            async for event in bus.stream(since=mark):
                if self._wanted(request, event, sel):
                    yield event
        finally:
            await bus.unmark(mark)

    def _wanted(self, request, event, sel):
        meta = event.get("object", {}).get("metadata", {})
        return (
            (request.namespace is None or meta.get("namespace") == request.namespace)
            and (request.name is None or meta.get("name") == request.name)
            and self._match_labels(event.get("object", {}), sel)
            and self._match_fields(event.get("object", {}), request.params.get("fieldSelector"))
        )


class EmulatorThread:
    """Serve an emulator on 127.0.0.1:<random port> from a background thread with its own event
    loop, so that sync clients (kubernetes.client, kopf.testing.KopfRunner) can be used from the
    test body."""

    def __init__(self, setup=None, cls=StrictEmulator):
        self.setup, self.cls, self.ready, self.emu, self.url = (
            setup,
            cls,
            threading.Event(),
            None,
            None,
        )

    async def _main(self):
        self.stop_ev = asyncio.Event()
        async with self.cls() as emu, kmock.Server(emu, host="127.0.0.1") as srv:
            if self.setup:
                self.setup(emu)
            self.emu, self.url = emu, str(srv.url).rstrip("/")
            self.ready.set()
            await self.stop_ev.wait()

    def __enter__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._main(),), daemon=True
        )
        self.thread.start()
        assert self.ready.wait(10), "emulator did not start"
        return self

    def __exit__(self, *exc):
        self.loop.call_soon_threadsafe(self.stop_ev.set)
        self.thread.join(10)
        assert not self.thread.is_alive(), "emulator did not stop"
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()
