"""`ksrv` command group: each command's module is imported only when that command runs."""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute"; keeps `ksrv --help` and `ksrv get` from importing the
# model server, the gateway or any framework.
COMMANDS = {
    "serve": "ksrv.cli.serve:serve",
    "storage": "ksrv.cli.storage:storage",
    "gateway": "ksrv.cli.gateway:gateway",
    "up": "ksrv.cli.up:up",
    "down": "ksrv.cli.up:down",
    "apply": "ksrv.cli.resources:apply",
    "get": "ksrv.cli.resources:get",
    "describe": "ksrv.cli.resources:describe",
    "delete": "ksrv.cli.resources:delete",
    "logs": "ksrv.cli.resources:logs",
    "k8s": "ksrv.cli.k8s:k8s",
    "forkserver": "ksrv.cli.forkserver:forkserver",
    "router": "ksrv.cli.router:router",
    "token": "ksrv.cli.tokens:token",
    "prometheus-config": "ksrv.cli.prometheus:prometheus_config",
    "dashboard": "ksrv.cli.dashboard:dashboard",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return _find(cmd_name)


def _find(name: str) -> click.Command | None:
    target = COMMANDS.get(name)
    if target is None:
        return None
    module_name, _, attribute = target.partition(":")
    module = importlib.import_module(module_name)
    command = getattr(module, attribute, None)
    return command if isinstance(command, click.Command) else None


@click.group(cls=LazyGroup)
@click.version_option(package_name="ksrv")
@click.option(
    "--token",
    envvar="KSRV_TOKEN",
    help="Bearer token for the management API (env KSRV_TOKEN; default: the admin token "
    "`ksrv up --auth` wrote, for a local control plane).",
)
@click.option(
    "--certificate-authority",
    type=click.Path(exists=True, dir_okay=False),
    envvar="KSRV_CA_FILE",
    help="CA file an https management API must present (env KSRV_CA_FILE).",
)
@click.pass_context
def cli(ctx: click.Context, token: str | None, certificate_authority: str | None) -> None:
    """ksrv: serve models the way KServe does, locally or on Kubernetes.

    \b
    Locally:        ksrv up, then ksrv apply -f isvc.yaml
    On Kubernetes:  ksrv k8s install, then kubectl apply -f isvc.yaml
    """
    # Read by `api_client.ControlPlaneClient` (names as there; not imported, to stay lazy).
    ctx.meta["ksrv.token"] = token
    ctx.meta["ksrv.certificate_authority"] = certificate_authority


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
