"""A predictor's V1 `:predict`, called from an explainer's thread (SHAP's and ART's).

Both explainers are black boxes around the predictor at `--predictor-host`: they post batches
of instances and read `predictions`, from a model thread with a blocking client, so a
predictor's refusal comes back the same way from either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ksrv.errors import UpstreamFailed
from ksrv.protocol import rest_codec

if TYPE_CHECKING:
    import httpx  # the explainers import it when they first explain


def predictions(http: httpx.Client, url: str, body: dict[str, Any]) -> Any:
    """The `predictions` the predictor's V1 `:predict` at `url` answers to `body`.

    Raises:
        UpstreamFailed: the predictor answered anything but 200 (its status carried on).
    """
    response = http.post(url, content=rest_codec.dumps(body))
    if response.status_code != 200:
        raise UpstreamFailed(
            f"predictor answered {response.status_code}: {response.text[:200]}",
            status_code=response.status_code,
        )
    return response.json()["predictions"]
