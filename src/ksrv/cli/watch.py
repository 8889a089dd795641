"""`ksrv get -w` and `ksrv logs -f`: keep printing what changes until Ctrl-C.

The management API has no watch stream, so `get -w` polls the same list `ksrv get` reads and
prints each object that is new or differs from what was last printed, as `kubectl get -w` prints
a watch event: a row (no header) or the object in the chosen output. Deletions print nothing.
`logs -f` reads the API's `follow=true` stream of replica logs. Ctrl-C ends either quietly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
import httpx

from ksrv.cli.api_client import ControlPlaneClient

Document = dict[str, Any]

POLL_S = 0.5


def key(document: Document) -> tuple[str, str]:
    metadata = document.get("metadata") or {}
    return str(metadata.get("namespace", "")), str(metadata.get("name", ""))


def changes(
    fetch: Callable[[], list[Document]],
    shown: list[Document],
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[Document]]:
    """Each poll's objects that are new or changed since `shown` (what was printed first)."""
    last = {key(document): document for document in shown}
    while True:
        sleep(poll_s)
        changed = []
        for document in fetch():
            if last.get(key(document)) != document:
                changed.append(document)
            last[key(document)] = document
        if changed:
            yield changed


@contextmanager
def until_interrupted() -> Iterator[None]:
    """Ctrl-C ends a watch with exit 0 and no "Aborted!", as it ends `kubectl get -w`."""
    try:
        yield
    except KeyboardInterrupt:
        return


def follow_logs(client: ControlPlaneClient, path: str, params: dict[str, Any]) -> None:
    """Print a log stream as it arrives (`ksrv logs -f`)."""
    with until_interrupted():
        try:
            with client.stream("GET", path, params={**params, "follow": "true"}) as response:
                for text in response.iter_text():
                    click.echo(text, nl=False)
        except httpx.TransportError as exc:
            raise click.ClickException(f"the log stream from {client.server} ended: {exc}") from exc
