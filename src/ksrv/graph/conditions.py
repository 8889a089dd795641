"""A Switch step's `condition`: a GJSON path that matches when it finds something, as KServe's
router asks `gjson.GetBytes(input, condition).Exists()`.

Evaluated by gjson-py, with one difference of dialect smoothed over first: Go's GJSON takes a
query's value bare (`#(source==client)`, `#(strval%*red*)`), as KServe's examples write it,
where gjson-py wants JSON (`#(source=="client")`). So `normalise` quotes a bare value that is
not a JSON literal, and spells Go's `=` as `==`; everything else goes through unchanged.
"""

from __future__ import annotations

import functools
from typing import Any

import gjson
import orjson

# Longest first, so `!=` is not read as `!` + `=`.
_OPERATORS = ("==", "!=", "<=", ">=", "!%", "=", "<", ">", "%")
_LITERALS = ("true", "false", "null")


def matches(document: Any, condition: str) -> bool:
    """Whether `condition` finds anything in `document` (parsed JSON). A value that exists is a
    match, even `null`, `false` or `[]`, as in Go's GJSON; a path that finds nothing, or a
    query gjson cannot read, is not."""
    try:
        gjson.get(document, normalise(condition))
    except (gjson.GJSONError, ValueError, TypeError, LookupError, RecursionError):
        # Go's GJSON never fails: what gjson-py cannot evaluate on this body is no match.
        return False
    return True


@functools.lru_cache(maxsize=256)
def normalise(condition: str) -> str:
    """`condition` in gjson-py's dialect: every query's bare value quoted as JSON."""
    out: list[str] = []
    index = 0
    while index < len(condition):
        if condition.startswith("#(", index):
            end = _closing(condition, index + 1)
            out.append("#(" + _query(condition[index + 2 : end]) + ")")
            index = end + 1
        else:
            out.append(condition[index])
            index += 1
    return "".join(out)


def _closing(text: str, opening: int) -> int:
    """The index of the `)` that closes the `(` at `opening` (quotes and nesting respected);
    the end of `text` when it is never closed."""
    depth, index, is_quoted = 0, opening, False
    while index < len(text):
        char = text[index]
        if is_quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                is_quoted = False
        elif char == '"':
            is_quoted = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return len(text)


def _query(body: str) -> str:
    """One query's inside: `path OP value`, the path normalised in turn, the value quoted."""
    depth, index = 0, 0
    while index < len(body):
        char = body[index]
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == '"':
            index = _string_end(body, index)
        elif depth == 0:
            for operator in _OPERATORS:
                if body.startswith(operator, index):
                    path = normalise(body[:index])
                    spelled = "==" if operator == "=" else operator
                    return path + spelled + _value(body[index + len(operator) :].strip())
        index += 1
    return normalise(body)  # no operator: the query only asks that the path exists


def _string_end(text: str, start: int) -> int:
    index = start + 1
    while index < len(text) and text[index] != '"':
        index += 2 if text[index] == "\\" else 1
    return index


def _value(value: str) -> str:
    if not value or value.startswith(('"', "~")) or value in _LITERALS:
        return value
    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        return orjson.dumps(value).decode()
    return value if isinstance(parsed, int | float) else orjson.dumps(value).decode()
