"""`ksrv storage download URI DEST`: KServe's storage initializer as a command."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from ksrv import storage as storage_layer
from ksrv.errors import StorageError


@click.group()
def storage() -> None:
    """Fetch models named by a storageUri."""


@storage.command()
@click.argument("pairs", nargs=-1, required=True, metavar="URI DEST [URI DEST ...]")
@click.option("--cache-dir", type=click.Path(path_type=Path), help="Content cache directory.")
@click.option("--no-cache", is_flag=True, help="Download straight into DEST, skipping the cache.")
@click.option("--max-bytes", type=int, help="Refuse downloads (archives unpacked) above this.")
@click.option("--concurrency", default=10, show_default=True, help="Parallel range requests.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a tty).")
@click.option("--log-level", default="info", show_default=True)
def download(
    pairs: tuple[str, ...],
    cache_dir: Path | None,
    no_cache: bool,
    max_bytes: int | None,
    concurrency: int,
    progress: bool | None,
    log_level: str,
) -> None:
    """Download each URI into its DEST, in order; exit 1 on the first failure.

    \b
    ksrv storage download s3://models/iris /mnt/models
    ksrv storage download https://host/model.tar.gz ./model --max-bytes 2000000000
    """
    if len(pairs) % 2:
        raise click.UsageError("expected URI DEST pairs")
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per range request
    options = storage_layer.DownloadOptions(
        cache_dir=cache_dir,
        enable_cache=not no_cache,
        max_bytes=max_bytes,
        concurrency=concurrency,
        progress=progress,
    )
    for uri, dest in zip(pairs[::2], pairs[1::2], strict=True):
        try:
            path = storage_layer.download(uri, dest, options)
        except StorageError as exc:
            click.echo(f"ksrv storage download: {exc}", err=True)
            sys.exit(1)
        click.echo(str(path))
