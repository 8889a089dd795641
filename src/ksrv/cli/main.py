"""`ksrv` command group."""

from __future__ import annotations

import click

from ksrv.cli import serve, storage


@click.group()
@click.version_option(package_name="ksrv")
def cli() -> None:
    """ksrv: serve models the way KServe does, locally or on Kubernetes."""


cli.add_command(serve.serve)
cli.add_command(storage.storage)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
