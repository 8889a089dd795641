"""`ksrv k8s`: take the YAML that runs locally to a cluster.

`render` prints what the operator would apply for some resources (pure: no cluster needed),
`install` applies (or prints) ksrv's cluster side, `operator` runs the operator. Only `install`
without `--dry-run` and `operator` talk to a cluster, so only they need the `k8s` extra.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from ksrv.api import resources
from ksrv.errors import KsrvError, ResourceInvalid
from ksrv.k8s import config as cluster_config
from ksrv.k8s import install as k8s_install
from ksrv.k8s import render as k8s_render

_SUFFIXES = (".yaml", ".yml", ".json")
_LOADED_KINDS = (
    "InferenceService", "ServingRuntime", "ClusterServingRuntime", "InferenceGraph", "TrainedModel",
    "LLMInferenceService", "LLMInferenceServiceConfig",
)  # fmt: skip


@click.group()
def k8s() -> None:
    """Run InferenceServices on Kubernetes, in KServe's Standard or Knative mode.

    \b
    ksrv k8s install [--mode standard|knative]   # CRDs, RBAC, operator, config, runtimes
    kubectl apply -f isvc.yaml                   # the same YAML `ksrv apply` takes
    ksrv k8s render -f isvc.yaml                 # what the operator makes of it
    """


def _mode(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return cluster_config.normalise_mode(value)
    except ResourceInvalid as exc:
        raise click.BadParameter(str(exc)) from None


MODE = click.option(
    "--mode",
    callback=_mode,
    metavar="standard|knative",
    help="Deployment mode (KServe's RawDeployment/Serverless spellings work too); "
    "default: the config's defaultDeploymentMode, else standard.",
)
CONFIG = click.option(
    "--config",
    "configmap",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An inferenceservice-config ConfigMap (YAML) to read settings from.",
)
OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["yaml", "json"]), default="yaml", show_default=True
)


@k8s.command()
@click.option(
    "-f",
    "--filename",
    "filenames",
    multiple=True,
    required=True,
    help="A manifest file, a directory of them, or - for stdin; repeatable.",
)
@MODE
@CONFIG
@OUTPUT
def render(
    filenames: tuple[str, ...], mode: str | None, configmap: Path | None, output: str
) -> None:
    """Print the objects the operator would apply for these resources.

    ServingRuntimes, ServiceAccounts, Secrets and ClusterStorageContainers in the files are read
    (runtime selection, storage credentials), not rendered. Problems go to stderr, exit 1;
    warnings (what the objects do not carry out, e.g. enable-auth) to stderr too, exit 0.
    """
    settings = _settings(configmap, mode)
    documents = _read(filenames)
    invalid = _invalid(documents)
    if invalid:
        click.echo("\n".join(invalid), err=True)
        sys.exit(1)
    try:
        rendered = k8s_render.render_documents(documents, settings)
    except KsrvError as exc:
        raise click.ClickException(str(exc)) from None
    if rendered.objects:
        click.echo(_dump(rendered.objects, output))
    for warning in rendered.warnings:
        click.echo(f"warning: {warning}", err=True)
    for problem in rendered.problems:
        click.echo(f"error: {problem}", err=True)
    if rendered.problems:
        sys.exit(1)


@k8s.command()
@MODE
@CONFIG
@click.option("--dry-run", is_flag=True, help="Print the manifests instead of applying them.")
@click.option(
    "-n",
    "--namespace",
    default=cluster_config.CONFIGMAP_NAMESPACE,
    show_default=True,
    help="Namespace of the operator and its inferenceservice-config.",
)
@OUTPUT
def install(
    mode: str | None, configmap: Path | None, dry_run: bool, namespace: str, output: str
) -> None:
    """Install ksrv on the cluster KUBECONFIG points at (or this pod's).

    KServe's serving.kserve.io CRDs, the operator (ServiceAccount, ClusterRole, Deployment),
    the inferenceservice-config ConfigMap and ksrv's default ClusterServingRuntimes, applied
    server-side. Knative mode needs Knative Serving and Istio installed first; Standard mode
    needs an Ingress controller or the Gateway API, and KEDA for `autoscalerClass: keda`.
    """
    settings = _settings(configmap, mode)
    if not dry_run:
        _require("install", "kubernetes")
    objects = k8s_install.manifests(settings, namespace)
    if dry_run:
        click.echo(_dump(objects, output))
        return
    try:
        k8s_install.apply(objects, click.echo)
    except KsrvError as exc:
        raise click.ClickException(str(exc)) from None


@k8s.command()
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeat for more; globs allowed). Default: all.",
)
@click.option(
    "--config-namespace",
    default=cluster_config.CONFIGMAP_NAMESPACE,
    show_default=True,
    help="Namespace of the inferenceservice-config ConfigMap.",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig file.")
@click.option("--context", help="Kubeconfig context to use.")
@click.option(
    "--liveness",
    "liveness_endpoint",
    help="Serve a liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def operator(
    namespaces: tuple[str, ...],
    config_namespace: str,
    kubeconfig: str | None,
    context: str | None,
    liveness_endpoint: str | None,
    verbose: bool,
) -> None:
    """Run the operator (in-cluster account, else KUBECONFIG or ~/.kube/config)."""
    _require("operator", "kopf", "kubernetes")
    from ksrv.k8s import operator as k8s_operator  # kopf and the client: only for this command
    from ksrv.k8s import reconcile

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    k8s_operator.run(
        namespaces, kubeconfig=kubeconfig, context=context, liveness_endpoint=liveness_endpoint,
        settings=reconcile.Settings(config_namespace=config_namespace),
    )  # fmt: skip


def _require(command: str, *modules: str) -> None:
    """One clear line instead of an ImportError when the `k8s` extra is missing."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise click.ClickException(
                f"ksrv k8s {command} needs the k8s extra ({name} is not installed): "
                "pip install 'ksrv[k8s]'"
            ) from None


def _settings(configmap: Path | None, mode: str | None) -> cluster_config.ClusterConfig:
    settings = cluster_config.ClusterConfig()
    if configmap is not None:
        try:
            settings = cluster_config.from_configmap(_configmap_data(configmap))
        except ResourceInvalid as exc:
            raise click.BadParameter(f"{configmap}: {exc}", param_hint="--config") from None
    return settings.with_mode(mode) if mode else settings


def _configmap_data(path: Path) -> dict[str, str]:
    """The `data` of the file's inferenceservice-config ConfigMap (or its only ConfigMap)."""
    try:
        found = [
            d for d in resources.parse_documents(path.read_text()) if d.get("kind") == "ConfigMap"
        ]
    except ResourceInvalid as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--config") from None
    named = [
        d for d in found if (d.get("metadata") or {}).get("name") == cluster_config.CONFIGMAP_NAME
    ]
    chosen = named or found
    if len(chosen) != 1:
        raise click.BadParameter(
            f"{path} holds no ConfigMap named {cluster_config.CONFIGMAP_NAME}",
            param_hint="--config",
        )
    data = chosen[0].get("data") or {}
    if not isinstance(data, dict):
        raise click.BadParameter(f"{path}: data must be a mapping", param_hint="--config")
    return {str(key): str(value) for key, value in data.items()}


def _read(filenames: tuple[str, ...]) -> list[dict[str, Any]]:
    """Every document of the files (a directory: its manifests in name order; -: stdin)."""
    sources: list[tuple[str, str]] = []
    for filename in filenames:
        path = Path(filename)
        if filename == "-":
            sources.append(("<stdin>", sys.stdin.read()))
        elif path.is_dir():
            sources += [(str(p), p.read_text()) for p in sorted(path.iterdir())
                        if p.is_file() and p.suffix in _SUFFIXES]  # fmt: skip
        elif path.is_file():
            sources.append((filename, path.read_text()))
        else:
            raise click.ClickException(f'the path "{filename}" does not exist')
    documents: list[dict[str, Any]] = []
    for source, text in sources:
        try:
            documents += resources.parse_documents(text)
        except ResourceInvalid as exc:
            raise click.ClickException(f"error parsing {source}: {exc}") from None
    if not documents:
        raise click.ClickException("no objects passed")
    return documents


def _invalid(documents: list[dict[str, Any]]) -> list[str]:
    """kubectl's report for each resource the API server would refuse."""
    reports = []
    for document in documents:
        if document.get("kind") not in _LOADED_KINDS:
            continue
        try:
            resources.load(document)
        except ResourceInvalid as exc:
            name = (document.get("metadata") or {}).get("name")
            causes = [f"  * {path}: {message}" for path, message in exc.field_errors]
            reports.append("\n".join([f'error: {document["kind"]} "{name}" is invalid:', *causes])
                           if causes else f'error: {document["kind"]} "{name}": {exc}')  # fmt: skip
    return reports


def _dump(objects: list[dict[str, Any]], output: str) -> str:
    if output == "json":
        return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}, indent=2)
    return k8s_install.to_yaml(objects).rstrip("\n")
