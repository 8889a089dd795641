"""The management API's URL layout: which kinds it serves, under which group/version and plural.

Kubernetes' layout, so kubectl habits (and KServe's clients) carry over:
`/apis/serving.kserve.io/{version}/namespaces/{ns}/{plural}[/{name}]`, cluster-scoped kinds
without the namespace part. KServe's kinds are read and written; ksrv's own read-only views
(`Revision`, under `ksrv.dev/v1`) are only read. The server and the CLI both build and read
paths from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from ksrv.api import kinds

GROUP = kinds.GROUP
KSRV_GROUP = "ksrv.dev"
"""ksrv's own API group, for what the control plane shows beyond KServe's kinds."""


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One kind the API serves, with the paths it is served under."""

    kind: str
    version: str
    plural: str
    is_namespaced: bool
    short_names: tuple[str, ...] = ()
    group: str = GROUP
    is_read_only: bool = False
    """Served for reading only: the control plane makes these, `apply` and `delete` cannot."""
    other_versions: tuple[str, ...] = ()
    """Older versions the kind is also served under (LLMInferenceService's v1alpha1)."""

    @classmethod
    def of(cls, kind: kinds.Kind) -> ResourceType:
        others = tuple(v.rpartition("/")[2] for v in kind.other_versions)
        return cls(kind.kind, kind.version, kind.plural, kind.is_namespaced, kind.short_names,
                   other_versions=others)  # fmt: skip

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def api_versions(self) -> tuple[str, ...]:
        """Every apiVersion a document of this type may carry."""
        return tuple(f"{self.group}/{v}" for v in (self.version, *self.other_versions))

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def collection_path(self, namespace: str | None) -> str:
        """The list/create URL; `namespace=None` lists across all namespaces."""
        if self.is_namespaced and namespace is not None:
            return f"{self._root}/namespaces/{segment(namespace)}/{self.plural}"
        return f"{self._root}/{self.plural}"

    @property
    def _root(self) -> str:
        return f"/apis/{self.group}/{self.version}"

    def item_path(self, namespace: str, name: str) -> str:
        parent = self.collection_path(namespace if self.is_namespaced else None)
        return f"{parent}/{segment(name)}"


def segment(text: str) -> str:
    """`text` as one path segment, whatever it holds: a name stored under older rules (`..`,
    `a b`) must still reach the server intact, neither resolved as a dot segment nor split."""
    if text and set(text) <= {"."}:
        return "%2E" * len(text)
    return quote(text, safe="")


# Every kind of `api.kinds.KINDS` is served, in that table's order: what `apply` takes.
RESOURCE_TYPES: tuple[ResourceType, ...] = tuple(ResourceType.of(k) for k in kinds.KINDS.values())
# A component's revisions (`control.revision_view`); `rev` as Knative's `kn` calls them.
REVISION = ResourceType(
    "Revision", "v1", "revisions", True, ("rev",), group=KSRV_GROUP, is_read_only=True
)
SERVED_TYPES: tuple[ResourceType, ...] = (*RESOURCE_TYPES, REVISION)
GROUPS: frozenset[str] = frozenset(t.group for t in SERVED_TYPES)

_BY_NAME: dict[str, ResourceType] = {}
for _type in SERVED_TYPES:
    for _alias in (_type.kind.lower(), _type.plural, *_type.short_names):
        _BY_NAME[_alias] = _type


def by_kind(kind: str) -> ResourceType | None:
    """The writable type for a document's `kind` (exact spelling, as in a manifest)."""
    for resource_type in RESOURCE_TYPES:
        if resource_type.kind == kind:
            return resource_type
    return None


def by_plural(group: str, version: str, plural: str) -> ResourceType | None:
    """The type a URL's segments name, or None when that group/version does not serve it."""
    for resource_type in SERVED_TYPES:
        versions = (resource_type.version, *resource_type.other_versions)
        if (resource_type.group, resource_type.plural) == (group, plural) and version in versions:
            return resource_type
    return None


def resolve(text: str) -> ResourceType | None:
    """What a user typed (`isvc`, `inferenceservices`, `InferenceService`, `csr`, `rev`, ...)."""
    name, _, group = text.lower().partition(".")
    found = _BY_NAME.get(name)
    # `inferenceservices.serving.kserve.io`, `revisions.ksrv.dev`, as kubectl accepts them
    if found is None or (group and group != found.group):
        return None
    return found
