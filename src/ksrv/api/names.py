"""Kubernetes' rules for names and namespaces, with the reason a name breaks them in words.

A namespace or name becomes a directory, a log file, a URL segment and a process argument, so
one that breaks these rules (`..`, a NUL, a CR LF) is refused where it enters: the management
API's URL and a resource's metadata. Namespaces are DNS-1123 labels; most names are DNS-1123
subdomains; an InferenceService's name is a DNS-1035 label (its hosts are named after it).
"""

from __future__ import annotations

import re
from typing import Final

_LABEL: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS_1035: Final = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_MAX: Final = 63
SUBDOMAIN_MAX: Final = 253

LABEL_RULE: Final = (
    f"use at most {LABEL_MAX} lowercase letters, digits and '-', starting and ending with a "
    "letter or digit"
)
SUBDOMAIN_RULE: Final = (
    f"use at most {SUBDOMAIN_MAX} lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit"
)
DNS_1035_RULE: Final = (
    f"use at most {LABEL_MAX} lowercase letters, digits and '-', starting with a letter and "
    "ending with a letter or digit"
)


def namespace_problem(namespace: str) -> str | None:
    """Why `namespace` is not a valid namespace (a DNS-1123 label), or None.

    The reason reads after the value's kind: "namespace " + "'Bad_NS!' is not valid: use ..."."""
    return _problem(namespace, _LABEL, LABEL_MAX, LABEL_RULE)


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid resource name (a DNS-1123 subdomain), or None."""
    return _problem(name, _SUBDOMAIN, SUBDOMAIN_MAX, SUBDOMAIN_RULE)


def service_name_problem(name: str) -> str | None:
    """Why `name` cannot name an InferenceService (a DNS-1035 label), or None."""
    return _problem(name, _DNS_1035, LABEL_MAX, DNS_1035_RULE)


def _problem(value: str, pattern: re.Pattern[str], limit: int, rule: str) -> str | None:
    if len(value) <= limit and pattern.fullmatch(value):
        return None
    # repr() shows a NUL or CR LF as escapes, so the message itself stays one safe line.
    shown = repr(value) if len(value) <= 80 else repr(value[:77]) + "..."
    return f"{shown} is not valid: {rule}"
