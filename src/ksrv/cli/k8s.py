"""`ksrv k8s ...`: ksrv on a Kubernetes cluster. `ksrv k8s operator` runs the operator (which
applies KServe's resources there, `ksrv.k8s.operator`); kopf and the client load lazily."""

from __future__ import annotations

import logging

import click


@click.group("k8s")
def k8s() -> None:
    """Run InferenceServices on a Kubernetes cluster."""


@k8s.command("operator")
@click.option(
    "-n",
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only this namespace (repeat for more; globs allowed). Default: all.",
)
@click.option(
    "--config-namespace",
    default="kserve",
    show_default=True,
    help="Namespace of the inferenceservice-config ConfigMap.",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False),
    default=None,
    help="Kubeconfig file (default: in-cluster, else KUBECONFIG or ~/.kube/config).",
)
@click.option("--context", default=None, help="Kubeconfig context to use.")
@click.option(
    "--liveness",
    "liveness_endpoint",
    default=None,
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
    """Run ksrv's operator: InferenceServices on the cluster, as KServe's controller runs them."""
    from ksrv.k8s import operator as k8s_operator
    from ksrv.k8s import reconcile

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    k8s_operator.run(
        namespaces, kubeconfig=kubeconfig, context=context, liveness_endpoint=liveness_endpoint,
        settings=reconcile.Settings(config_namespace=config_namespace),
    )  # fmt: skip
