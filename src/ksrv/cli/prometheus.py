"""`ksrv prometheus-config`: a Prometheus scrape config for a running local platform.

Printed rather than run by `ksrv up`: Prometheus's storage, retention and port are its
operator's to choose, and the config never goes stale, because it names no replica. One job
discovers every target through the management API (`http_sd_configs`): the gateway, the
control plane and each model-server replica, labelled with its InferenceService, component
and revision, followed as replicas start, stop and move ports.
"""

from __future__ import annotations

import re

import click
import yaml

from ksrv.cli.api_client import server_option

TARGETS_PATH = "/ksrv/v1/prometheus/targets"
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


def scrape_config(server: str, interval: str) -> dict[str, object]:
    """Prometheus's configuration: one job whose targets come from the management API."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {
                "job_name": "ksrv",
                "metrics_path": "/metrics",
                "http_sd_configs": [
                    {"url": server.rstrip("/") + TARGETS_PATH, "refresh_interval": interval}
                ],
            }
        ],
    }


@click.command("prometheus-config")
@server_option
@click.option(
    "--scrape-interval",
    default="15s",
    show_default=True,
    help="How often Prometheus scrapes, and looks for new replicas (a Prometheus duration).",
)
def prometheus_config(server: str, scrape_interval: str) -> None:
    """Print a Prometheus config that scrapes the platform at --server.

    \b
    ksrv prometheus-config > prometheus.yml
    prometheus --config.file=prometheus.yml
    """
    if not _DURATION.match(scrape_interval):
        raise click.BadParameter(
            f"{scrape_interval!r} is not a Prometheus duration such as 15s or 1m",
            param_hint="--scrape-interval",
        )
    click.echo(yaml.safe_dump(scrape_config(server, scrape_interval), sort_keys=False), nl=False)
