"""KServe's `logger` on a component, planned: where its payloads go and what the events say.

The plan carries it (`ComponentPlan.logger`); the platforms turn it into `ksrv serve`'s agent
flags (`serve_args.logger_args`), as KServe's webhook turns it into its agent's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ksrv.api.inference_service import ComponentSpec, InferenceService


@dataclass(frozen=True, slots=True)
class PayloadLogger:
    """KServe's `logger`: where a component's payloads go and what the events say of them
    (the flags KServe's webhook gives its agent)."""

    url: str | None
    mode: str
    metadata_headers: tuple[str, ...] = ()
    metadata_annotations: tuple[tuple[str, str], ...] = ()  # the named annotations' values
    inference_service: str = ""
    namespace: str = ""
    component: str = ""
    endpoint: str = "default"  # KServe's InferenceServiceDefault; a canary's name for one
    ignored: tuple[str, ...] = ()  # fields only KServe's agent carries out (blob storage)


def payload_logger(
    component: str, spec: ComponentSpec, isvc: InferenceService, annotations: dict[str, str]
) -> PayloadLogger | None:
    """The component's `logger`; `metadataAnnotations` name annotations of the service (or
    the component) whose values go with every event, as KServe's webhook resolves them."""
    logger = spec.logger
    if logger is None:
        return None
    blob_fields = {
        "storage": (logger.model_extra or {}).get("storage"),
        "marshallerUrl": logger.marshaller_url,
        "batchSize": logger.batch_size,
        "batchInterval": logger.batch_interval,
    }
    return PayloadLogger(
        url=logger.url,
        mode=logger.mode or "all",
        metadata_headers=tuple(logger.metadata_headers or ()),
        metadata_annotations=tuple(
            (name, annotations[name])
            for name in logger.metadata_annotations or ()
            if name in annotations
        ),
        inference_service=isvc.metadata.name,
        namespace=isvc.metadata.namespace or "default",
        component=component,
        ignored=tuple(name for name, value in blob_fields.items() if value is not None),
    )
