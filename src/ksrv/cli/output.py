"""How `ksrv get` prints what it fetched: a table, YAML, JSON, names or a JSONPath template.

`Output.parse` checks `-o` before anything is fetched; `show` prints a first listing and
`show_changed` what `get -w` found changed (rows without the header, as kubectl prints watch
events). Pure apart from `click.echo`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import click
import yaml

from ksrv import errors
from ksrv.cli import jsonpath, tables

Document = dict[str, Any]

FORMATS = ("yaml", "json", "wide", "jsonpath=TEMPLATE", "name")


@dataclass(frozen=True)
class Output:
    """One `-o` choice for one resource kind."""

    kind: str
    format: str | None
    template: jsonpath.Template | None = None
    show_namespace: bool = False
    type_name: str = ""
    """`-o name`'s prefix, kubectl's `{singular}.{group}` (`revision.ksrv.dev`)."""

    @classmethod
    def parse(
        cls, kind: str, output: str | None, show_namespace: bool, type_name: str = ""
    ) -> Output:
        """Raises: click.BadParameter: an unknown format or a template that does not parse."""
        if output is None or output in ("yaml", "json", "wide", "name"):
            return cls(kind, output, None, show_namespace, type_name)
        if output.startswith("jsonpath="):
            try:
                template = jsonpath.Template(output.removeprefix("jsonpath="))
            except errors.InvalidInput as exc:
                raise click.BadParameter(str(exc), param_hint="-o") from exc
            return cls(kind, "jsonpath", template, show_namespace, type_name)
        raise click.BadParameter(
            f"unable to match a printer for {output!r}; allowed formats: {', '.join(FORMATS)}",
            param_hint="-o",
        )

    def show(self, documents: list[Document], is_single: bool) -> None:
        """The first listing: one object when one was named, else a kubectl `List`."""
        shown: Document = (
            documents[0]
            if is_single
            else {"apiVersion": "v1", "kind": "List", "items": documents, "metadata": {}}
        )
        if self.template is not None:
            click.echo(self.template.render(shown), nl=False)
        elif self.format in ("yaml", "json"):
            click.echo(_serialized(shown, self.format))
        elif self.format == "name":
            for document in documents:
                click.echo(self._name(document))
        else:
            click.echo(self._table(documents))

    def show_changed(self, documents: list[Document], has_header: bool) -> None:
        """Objects a watch saw change: each on its own, as `kubectl get -w` prints events
        (a table's header first when the first listing had no rows to print it with)."""
        if not has_header and self.is_table:
            click.echo(self._table(documents[:1]).split("\n", 1)[0])
        for document in documents:
            if self.template is not None:
                click.echo(self.template.render(document), nl=False)
            elif self.format in ("yaml", "json"):
                separator = "---\n" if self.format == "yaml" else ""
                click.echo(separator + _serialized(document, self.format))
            elif self.format == "name":
                click.echo(self._name(document))
            else:
                click.echo(self._table([document]).split("\n", 1)[1])

    @property
    def is_table(self) -> bool:
        return self.format in (None, "wide")

    def _name(self, document: Document) -> str:
        return f"{self.type_name}/{document['metadata'].get('name', '')}"

    def _table(self, documents: list[Document]) -> str:
        wide = self.format == "wide"
        return tables.table(self.kind, documents, time.time(), wide, self.show_namespace)


def _serialized(document: Document, output: str) -> str:
    if output == "yaml":
        text: str = yaml.safe_dump(document, sort_keys=False)
        return text.rstrip("\n")
    return json.dumps(document, indent=4)
