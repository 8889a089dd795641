"""Reading the model servers' own /metrics, for an autoscaler that scales on them.

`series(addresses)` fetches every ready replica's Prometheus exposition at once (a short
timeout: a replica too busy to answer counts as not answering) and flattens it into
`metric_query.Series` for a `MetricQuery` to evaluate, as Prometheus would have scraped them
on a cluster. None when no replica answered, so a decision is never taken on missing data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Final

import httpx
from prometheus_client.parser import text_string_to_metric_families

from ksrv.control.metric_query import Series

logger = logging.getLogger(__name__)

SCRAPE_TIMEOUT_S: Final = 1.0


async def series(
    client: httpx.AsyncClient, addresses: Sequence[str], timeout_s: float = SCRAPE_TIMEOUT_S
) -> list[Series] | None:
    """Every sample the replicas at `addresses` (`host:port`) export; None if none answered."""
    answers = await asyncio.gather(*(_scrape(client, a, timeout_s) for a in addresses))
    found = [one for one in answers if one is not None]
    if not found:
        return None
    return [sample for samples in found for sample in samples]


async def _scrape(client: httpx.AsyncClient, address: str, timeout_s: float) -> list[Series] | None:
    try:
        response = await client.get(f"http://{address}/metrics", timeout=timeout_s)
        response.raise_for_status()
        families = list(text_string_to_metric_families(response.text))
    except (httpx.HTTPError, ValueError) as exc:
        logger.debug("replica %s: no metrics (%s)", address, exc)
        return None
    return [(s.name, s.labels, float(s.value)) for f in families for s in f.samples]
