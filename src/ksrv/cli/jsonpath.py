"""`-o jsonpath=TEMPLATE`: kubectl's JSONPath templates, with jsonpath-ng under each expression.

kubectl's template language (k8s.io/client-go/util/jsonpath) is text with `{...}` actions:
`{.status.url}`, `{.items[*].metadata.name}`, filters `{.status.conditions[?(@.type=="Ready")]
.status}`, string literals `{"\\n"}`, and `{range .items[*]}...{end}`. No PyPI package speaks
the template part, so it is parsed here; each expression is translated (`.a.b` -> `$.a.b`,
kubectl's escaped dots `serving\\.kserve\\.io` -> a quoted field) and evaluated by
`jsonpath_ng.ext`. As `kubectl get` does by default, a missing key prints nothing; several
results print space-separated; strings print raw, other values as JSON.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonpath_ng import exceptions as jsonpath_errors
from jsonpath_ng.ext import parser as jsonpath_ext

from ksrv.errors import InvalidInput

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$|^\*$")


@dataclass(frozen=True, slots=True)
class _Text:
    text: str


@dataclass(frozen=True, slots=True)
class _Expression:
    source: str
    path: Any  # a parsed jsonpath_ng expression


@dataclass(frozen=True, slots=True)
class _Range:
    over: _Expression
    body: tuple[_Node, ...]


_Node = _Text | _Expression | _Range


class Template:
    """A parsed kubectl JSONPath template."""

    def __init__(self, source: str) -> None:
        """Raises: InvalidInput: the template or one of its expressions does not parse."""
        self.source = source
        nodes, rest = _parse(_actions(source), source, in_range=False)
        if rest:
            raise InvalidInput(f"error parsing jsonpath {source}: unexpected {{end}}")
        self._nodes = nodes

    def render(self, document: Any) -> str:
        return "".join(_render(node, document) for node in self._nodes)


def _actions(source: str) -> list[tuple[bool, str]]:
    """The template split into (is_action, text): literal text and the insides of `{...}`."""
    parts: list[tuple[bool, str]] = []
    index = 0
    while index < len(source):
        start = source.find("{", index)
        if start < 0:
            parts.append((False, source[index:]))
            break
        if start > index:
            parts.append((False, source[index:start]))
        end, quote = start + 1, ""
        while end < len(source) and (quote or source[end] != "}"):
            char = source[end]
            if quote and char == "\\":
                end += 1
            elif char in "\"'" and (not quote or char == quote):
                quote = "" if quote else char
            end += 1
        if end >= len(source):
            raise InvalidInput(f"error parsing jsonpath {source}: unclosed action")
        parts.append((True, source[start + 1 : end].strip()))
        index = end + 1
    return parts


def _parse(
    parts: list[tuple[bool, str]], source: str, in_range: bool
) -> tuple[tuple[_Node, ...], list[tuple[bool, str]]]:
    """Nodes up to the `{end}` closing a range (consumed), and the parts after it."""
    nodes: list[_Node] = []
    while parts:
        (is_action, text), parts = parts[0], parts[1:]
        if not is_action:
            nodes.append(_Text(text))
        elif text == "end":
            if not in_range:
                return tuple(nodes), [(True, text), *parts]
            return tuple(nodes), parts
        elif text.startswith("range "):
            body, parts = _parse(parts, source, in_range=True)
            nodes.append(_Range(_expression(text[len("range ") :], source), body))
        elif text.startswith('"'):
            nodes.append(_Text(_literal(text, source)))
        else:
            nodes.append(_expression(text, source))
    if in_range:
        raise InvalidInput(f"error parsing jsonpath {source}: {{range}} without {{end}}")
    return tuple(nodes), []


def _literal(text: str, source: str) -> str:
    if len(text) < 2 or not text.endswith('"'):
        raise InvalidInput(f"error parsing jsonpath {source}: unterminated string {text}")
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), text[1:-1])


def _expression(text: str, source: str) -> _Expression:
    try:
        return _Expression(text, jsonpath_ext.parse(_translated(text.strip())))
    except (jsonpath_errors.JSONPathError, ValueError) as exc:
        raise InvalidInput(f"error parsing jsonpath {source}: {exc}") from exc


def _translated(text: str) -> str:
    """kubectl's `.a.b[0]` (relative to the current object) as jsonpath-ng's `$.a.b[0]`."""
    if text in ("", ".", "$", "@"):
        return "$"
    if text.startswith(("$", "@")):
        text = text[1:]
    if text.startswith(".."):
        return "$" + text
    fields = []
    for segment in _segments(text.removeprefix(".")):
        name, bracket, rest = segment.partition("[")
        name = name.replace("\\.", ".")
        if name and not _IDENTIFIER.match(name):
            name = "'" + name.replace("'", "\\'") + "'"
        fields.append(name + bracket + rest)
    return "$." + ".".join(fields) if fields else "$"


def _segments(text: str) -> list[str]:
    """`a.b[?(@.c=="x.y")].d` split at the dots outside brackets, quotes and `\\.` escapes."""
    segments, current, depth, quote = [], "", 0, ""
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            current += text[index : index + 2]
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "." and depth == 0:
            segments.append(current)
            current = ""
            index += 1
            continue
        current += char
        index += 1
    segments.append(current)
    return [segment for segment in segments if segment]


def _render(node: _Node, current: Any) -> str:
    if isinstance(node, _Text):
        return node.text
    if isinstance(node, _Expression):
        return " ".join(_shown(value) for value in _values(node, current))
    return "".join(
        _render(child, value) for value in _values(node.over, current) for child in node.body
    )


def _values(expression: _Expression, current: Any) -> list[Any]:
    return [match.value for match in expression.path.find(current)]


def _shown(value: Any) -> str:
    """As kubectl prints a result: strings raw, everything else as JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"))
