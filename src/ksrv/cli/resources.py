"""`ksrv apply | get | describe | delete | logs`: kubectl's habits against the management API.

Every command talks HTTP to the control plane (`--server`, env `KSRV_SERVER`) except
`apply --dry-run`, which defaults and validates locally through the same `admission` code the
server runs, so it works without `ksrv up`. Errors are one line and exit 1, as kubectl's are.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import click
import yaml

from ksrv import errors
from ksrv.api.kinds import COMPONENTS
from ksrv.cli import waiting, watch
from ksrv.cli.api_client import APIFailure, ControlPlaneClient, server_option
from ksrv.cli.description import description
from ksrv.cli.output import Output
from ksrv.control import api_paths
from ksrv.control.api_paths import ResourceType

Document = dict[str, Any]

APPLY_PATCH = "application/apply-patch+yaml"
APPLY_RESULT_HEADER = "x-ksrv-apply"  # set by control.api_server: created|configured|unchanged
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
ISVC_LABEL = "serving.kserve.io/inferenceservice"  # KServe's label on a component's revisions

namespace_option = click.option(
    "-n", "--namespace", default=None, help="Namespace (default: the document's, else default)."
)
filename_option = click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    help="A manifest file, a directory of *.yaml/*.yml/*.json, or - for stdin (repeatable).",
)


class _Target:
    """One document from a manifest, placed: its type, namespace and name."""

    def __init__(self, resource_type: ResourceType, namespace: str, document: Document) -> None:
        self.type = resource_type
        self.namespace = namespace
        self.document = document
        self.name = str(document["metadata"]["name"])

    @property
    def path(self) -> str:
        return self.type.item_path(self.namespace, self.name)

    @property
    def label(self) -> str:
        return f"{self.type.singular}.{self.type.group}/{self.name}"


# libyaml's dumper when built in (the same YAML, many times faster for many documents).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@click.command()
@filename_option
@namespace_option
@click.option(
    "--dry-run",
    "is_dry_run",
    is_flag=True,
    help="Default and validate locally, print the result; no server needed.",
)
@click.option(
    "--wait",
    "is_waiting",
    is_flag=True,
    help="Wait until each InferenceService (and InferenceGraph) is Ready; stop at once (exit 1) "
    "on a failure that waiting will not change.",
)
@click.option("--timeout", default="120s", show_default=True, help="How long --wait waits.")
@server_option
def apply(
    filenames: tuple[str, ...],
    namespace: str | None,
    is_dry_run: bool,
    is_waiting: bool,
    timeout: str,
    server: str,
) -> None:
    """Create or update resources from manifests (server-side apply)."""
    if not filenames:
        raise click.UsageError("must specify -f FILE|DIR|-")
    timeout_s = _duration_s(timeout)
    targets = [_place(document, namespace) for document in _read_manifests(filenames)]
    if is_dry_run:
        _dry_run(targets)
        return
    failed = 0
    applied: list[_Target] = []
    with ControlPlaneClient(server) as client:
        for target in targets:
            body = yaml.dump(target.document, Dumper=_DUMPER, sort_keys=False).encode()
            try:
                response = client.request(
                    "PATCH", target.path, content=body, headers={"content-type": APPLY_PATCH}
                )
            except APIFailure as exc:
                heading = f"Error from server ({exc.reason}): {_invalid_heading(target)}"
                click.echo(
                    _field_report(heading, exc.causes) if exc.causes else exc.message, err=True
                )
                failed += 1
                continue
            click.echo(f"{target.label} {response.headers.get(APPLY_RESULT_HEADER, 'configured')}")
            applied.append(target)
        if failed:
            sys.exit(1)
        if is_waiting:
            waited = [(t.label, t.path) for t in applied
                      if t.type.kind in ("InferenceService", "InferenceGraph")]  # fmt: skip
            waiting.wait_ready(client, waited, timeout_s)


@click.command()
@click.argument("resource")
@click.argument("names", nargs=-1)
@namespace_option
@click.option("-A", "--all-namespaces", "is_all_namespaces", is_flag=True)
@click.option(
    "-o", "--output", default=None, help="yaml, json, wide, name or jsonpath=TEMPLATE (kubectl's)."
)
@click.option(
    "-w", "--watch", "is_watching", is_flag=True, help="Then print what changes, until Ctrl-C."
)
@server_option
def get(
    resource: str,
    names: tuple[str, ...],
    namespace: str | None,
    is_all_namespaces: bool,
    output: str | None,
    is_watching: bool,
    server: str,
) -> None:
    """List resources (isvc, servingruntimes, csr, ig, tm, revisions), or show some by name."""
    resource_type, names = _resource_and_names(resource, names)
    show_namespace = is_all_namespaces and resource_type.is_namespaced
    type_name = f"{resource_type.singular}.{resource_type.group}"
    printer = Output.parse(resource_type.kind, output, show_namespace, type_name)
    namespace = namespace or "default"
    scope = None if is_all_namespaces else namespace

    def fetch() -> list[Document]:
        return _fetch(server, resource_type, names, namespace, scope)

    documents = fetch()
    if documents or not printer.is_table:
        printer.show(documents, len(names) == 1)
    else:
        where = (
            ""
            if is_all_namespaces or not resource_type.is_namespaced
            else f" in {namespace} namespace"
        )
        click.echo(f"No resources found{where}.", err=True)
    if is_watching:
        has_header = bool(documents)
        with watch.until_interrupted():
            for changed in watch.changes(fetch, documents):
                printer.show_changed(changed, has_header)
                has_header = True


def _fetch(
    server: str,
    resource_type: ResourceType,
    names: tuple[str, ...],
    namespace: str,
    scope: str | None,
) -> list[Document]:
    """The named resources, or every one in `scope` (None: all namespaces)."""
    with ControlPlaneClient(server) as client:
        if names:
            return [client.get_json(resource_type.item_path(namespace, n)) for n in names]
        items: list[Document] = client.get_json(resource_type.collection_path(scope))["items"]
        return items


@click.command()
@click.argument("resource")
@click.argument("names", nargs=-1)
@namespace_option
@server_option
def describe(resource: str, names: tuple[str, ...], namespace: str | None, server: str) -> None:
    """Show resources in detail: spec summary, status, conditions, revisions, last failure."""
    resource_type, names = _resource_and_names(resource, names)
    namespace = namespace or "default"
    documents = _fetch(server, resource_type, names, namespace, namespace)
    kind = resource_type.kind
    revisions = _revisions(server, namespace) if kind == "InferenceService" else None
    services = None
    if kind == "InferenceGraph":  # each step's service, as the graph's namespace holds it
        isvc = api_paths.by_kind("InferenceService")
        assert isvc is not None
        services = {
            s["metadata"]["name"]: s for s in _fetch(server, isvc, (), namespace, namespace)
        }
    now = time.time()
    described = [
        description(document, now, _owned(revisions, document["metadata"]["name"]), services)
        for document in documents
    ]
    click.echo("\n\n".join(described))


def _revisions(server: str, namespace: str) -> list[Document] | None:
    """The namespace's revisions; None from a control plane that serves none."""
    try:
        return _fetch(server, api_paths.REVISION, (), namespace, namespace)
    except APIFailure as exc:
        if exc.code in (404, 405):
            return None
        raise


def _owned(revisions: list[Document] | None, isvc: str) -> list[Document] | None:
    if revisions is None:
        return None
    return [r for r in revisions if r["metadata"].get("labels", {}).get(ISVC_LABEL) == isvc]


@click.command()
@click.argument("resource", required=False)
@click.argument("names", nargs=-1)
@filename_option
@namespace_option
@click.option("--ignore-not-found", is_flag=True, help="A missing resource is not an error.")
@server_option
def delete(
    resource: str | None,
    names: tuple[str, ...],
    filenames: tuple[str, ...],
    namespace: str | None,
    ignore_not_found: bool,
    server: str,
) -> None:
    """Delete resources by type and name, or those a manifest names (-f)."""
    if filenames:
        if resource:
            raise click.UsageError("give either -f FILE or TYPE NAME..., not both")
        targets = [_place(document, namespace) for document in _read_manifests(filenames)]
    else:
        if not resource:
            raise click.UsageError("must specify TYPE NAME... or -f FILE")
        resource_type, names = _resource_and_names(resource, names)
        if not names:
            raise click.UsageError(f"name the {resource_type.plural} to delete")
        namespace = namespace or "default"
        targets = [_Target(resource_type, namespace, _stub(resource_type, n)) for n in names]
    failed = 0
    with ControlPlaneClient(server) as client:
        for target in targets:
            try:
                client.request("DELETE", target.path)
            except APIFailure as exc:
                if exc.code == 404 and ignore_not_found:
                    continue
                click.echo(f"Error: {exc.message}", err=True)
                failed += 1
                continue
            click.echo(f'{target.type.singular}.{target.type.group} "{target.name}" deleted')
    if failed:
        sys.exit(1)


@click.command()
@click.argument("name")
@namespace_option
@click.option(
    "-c",
    "--component",
    type=click.Choice((*COMPONENTS, "router")),
    default="predictor",
    help="An InferenceService's component, or router for an InferenceGraph's router.",
)
@click.option("--tail", type=int, default=-1, show_default=True, help="Lines per replica.")
@click.option(
    "-f", "--follow", "is_following", is_flag=True, help="Keep printing new lines until Ctrl-C."
)
@server_option
def logs(
    name: str, namespace: str | None, component: str, tail: int, is_following: bool, server: str
) -> None:
    """Print the logs of an InferenceService component's replicas (or a graph's router)."""
    namespace = namespace or "default"
    path = f"/ksrv/v1/namespaces/{namespace}/logs/{name}"
    params = {"component": component, "tail": tail}
    with ControlPlaneClient(server) as client:
        if is_following:
            watch.follow_logs(client, path, params)
            return
        response = client.request("GET", path, params=params)
    click.echo(response.text, nl=False)


# -- manifests ------------------------------------------------------------------------------
def _read_manifests(filenames: tuple[str, ...]) -> list[Document]:
    """Every document of the files (a directory: its manifests in name order; -: stdin)."""
    from ksrv.control import admission  # pydantic models: only for commands that read files

    sources: list[tuple[str, str]] = []
    for filename in filenames:
        if filename == "-":
            sources.append(("<stdin>", sys.stdin.read()))
            continue
        path = Path(filename)
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
            if not files:
                raise click.ClickException(f"no *.yaml, *.yml or *.json files in {filename}")
            sources += [(str(p), p.read_text()) for p in files]
        elif path.is_file():
            sources.append((filename, path.read_text()))
        else:
            raise click.ClickException(f'the path "{filename}" does not exist')
    documents: list[Document] = []
    for source, text in sources:
        try:
            parsed = admission.parse(text)
        except errors.ResourceInvalid as exc:
            raise click.ClickException(f"error parsing {source}: {exc}") from exc
        for document in parsed:
            if not isinstance(document, dict):
                raise click.ClickException(f"error parsing {source}: a document is not a mapping")
            documents.append(document)
    if not documents:
        raise click.ClickException("no objects passed")
    return documents


def _place(document: Document, namespace: str | None) -> _Target:
    """The document's type and namespace (the document's, else -n, else default)."""
    kind = document.get("kind")
    resource_type = api_paths.by_kind(kind) if isinstance(kind, str) else None
    if resource_type is None:
        if kind == api_paths.REVISION.kind:
            raise click.ClickException(
                "a Revision is read-only: the control plane makes one for each change of an "
                "InferenceService component; apply the InferenceService instead"
            )
        known = ", ".join(t.kind for t in api_paths.RESOURCE_TYPES)
        raise click.ClickException(f"kind {kind!r} is not one ksrv serves ({known})")
    metadata = document.setdefault("metadata", {})
    if not isinstance(metadata, dict) or not metadata.get("name"):
        raise click.ClickException(f"a {kind} has no metadata.name")
    if not resource_type.is_namespaced:
        metadata.pop("namespace", None)
        return _Target(resource_type, "", document)
    own = metadata.get("namespace")
    if own and namespace and own != namespace:
        raise click.ClickException(
            f'the namespace from the provided object "{own}" does not match the namespace '
            f'"{namespace}"; pass --namespace={own} or drop it'
        )
    metadata["namespace"] = own or namespace or "default"
    return _Target(resource_type, metadata["namespace"], document)


def _dry_run(targets: list[_Target]) -> None:
    """Print each defaulted document; list the field errors of invalid ones; exit 1 if any."""
    from ksrv.control import admission

    shown: list[str] = []
    invalid = 0
    for target in targets:
        try:
            admitted = admission.admit(target.document)
        except errors.ResourceInvalid as exc:
            invalid += 1
            causes = admission.field_errors(exc)
            heading = f"error: {_invalid_heading(target)}"
            report = _field_report(heading, causes) if causes else f"{heading}\n  * {exc}"
            click.echo(report, err=True)
            continue
        shown.append(yaml.safe_dump(admitted, sort_keys=False))
    if shown:
        click.echo("---\n".join(shown).rstrip("\n"))
    if invalid:
        sys.exit(1)


def _invalid_heading(target: _Target) -> str:
    return f'{target.type.kind} "{target.name}" is invalid:'


def _field_report(heading: str, causes: list[tuple[str, str]]) -> str:
    """kubectl's shape for a refused object: the heading, then one `* path: why` per field."""
    return "\n".join([heading, *(f"  * {path}: {message}" for path, message in causes)])


# -- arguments ------------------------------------------------------------------------------
def _resource_and_names(
    resource: str, names: tuple[str, ...]
) -> tuple[ResourceType, tuple[str, ...]]:
    """`isvc NAME...` or kubectl's `isvc/NAME`."""
    if "/" in resource:
        resource, _, name = resource.partition("/")
        names = (name, *names)
    resource_type = api_paths.resolve(resource)
    if resource_type is None:
        raise click.UsageError(
            f'the server doesn\'t have a resource type "{resource}" '
            "(try isvc, servingruntimes, csr, ig, tm, rev)"
        )
    return resource_type, names


def _stub(resource_type: ResourceType, name: str) -> Document:
    return {"kind": resource_type.kind, "metadata": {"name": name}}


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration_s(text: str) -> float:
    """`120s`, `2m`, `1h`, `500ms` or plain seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not a duration like 120s, 2m or 1h", param_hint="--timeout"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
