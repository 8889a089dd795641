"""The kinds ksrv serves, as their CRDs name them, and an InferenceService's components.

Kept apart from the pydantic models so that the CLI and the management API's paths can read
it without building any model: `api.resources` re-exports it, `control.api_paths` derives
its URL layout from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

GROUP: Final = "serving.kserve.io"
# An InferenceService's components, in the order they are planned (a transformer's link to its
# predictor needs the predictor first).
COMPONENTS: Final = ("predictor", "transformer", "explainer")


@dataclass(frozen=True, slots=True)
class Kind:
    """A kind ksrv serves, named as its CRD names it."""

    kind: str
    api_version: str
    plural: str
    short_names: tuple[str, ...]
    is_namespaced: bool
    other_versions: tuple[str, ...] = ()  # older apiVersions the CRD still serves

    @property
    def api_versions(self) -> tuple[str, ...]:
        return (self.api_version, *self.other_versions)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]


KINDS: Final[dict[str, Kind]] = {
    kind.kind: kind
    for kind in (
        Kind("InferenceService", f"{GROUP}/v1beta1", "inferenceservices", ("isvc",), True),
        Kind("InferenceGraph", f"{GROUP}/v1alpha1", "inferencegraphs", ("ig",), True),
        Kind("TrainedModel", f"{GROUP}/v1alpha1", "trainedmodels", ("tm",), True),
        Kind("ServingRuntime", f"{GROUP}/v1alpha1", "servingruntimes", ("sr",), True),
        # KServe's CRDs give the runtimes no short names; `sr`/`csr` are ksrv's.
        Kind("ClusterServingRuntime", f"{GROUP}/v1alpha1", "clusterservingruntimes", ("csr",),
             False),
        # No short name in KServe's CRD either; `csc` is ksrv's.
        Kind("ClusterStorageContainer", f"{GROUP}/v1alpha1", "clusterstoragecontainers",
             ("csc",), False),
        # KServe's CRDs give the model caches no short names; `lmc`/`lmnc` are ksrv's.
        Kind("LocalModelCache", f"{GROUP}/v1alpha1", "localmodelcaches", ("lmc",), False),
        Kind("LocalModelNamespaceCache", f"{GROUP}/v1alpha1", "localmodelnamespacecaches",
             ("lmnc",), True),
        # v1alpha2 is the CRD's storage version; v1alpha1 is still served.
        Kind("LLMInferenceService", f"{GROUP}/v1alpha2", "llminferenceservices", ("llmisvc",),
             True, (f"{GROUP}/v1alpha1",)),
        # No short name in KServe's CRD; `llmisvcconfig` is ksrv's.
        Kind("LLMInferenceServiceConfig", f"{GROUP}/v1alpha2", "llminferenceserviceconfigs",
             ("llmisvcconfig",), True, (f"{GROUP}/v1alpha1",)),
    )
}  # fmt: skip
