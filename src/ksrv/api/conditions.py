"""KServe's condition reasons that mean nothing will change until the spec (or a runtime) does.

The control plane writes them as the `Ready=False` reason of an InferenceService; `ksrv apply
--wait` stops at once on one of them instead of waiting out its timeout. A reason not listed
here (`Starting`, `ModelLoadRetrying`, `NoReadyBackend`) is a state that may still pass.
Kept free of pydantic so the CLI reads it without building any model.
"""

from __future__ import annotations

from typing import Final

INVALID_SPEC: Final = "InvalidSpec"
NO_SUPPORTING_RUNTIME: Final = "NoSupportingRuntime"
RUNTIME_NOT_RECOGNIZED: Final = "RuntimeNotRecognized"
RUNTIME_DISABLED: Final = "RuntimeDisabled"
# The model failed to load on every try a revision gets (`LOAD_ATTEMPTS`); replicas keep
# restarting with back-off, so a fixed model file still heals it, but no waiting will.
MODEL_LOAD_FAILED: Final = "ModelLoadFailed"
# A load failed and the revision still has tries left.
MODEL_LOAD_RETRYING: Final = "ModelLoadRetrying"
LOAD_ATTEMPTS: Final = 3

TERMINAL_REASONS: Final = frozenset(
    {INVALID_SPEC, NO_SUPPORTING_RUNTIME, RUNTIME_NOT_RECOGNIZED, RUNTIME_DISABLED,
     MODEL_LOAD_FAILED}
)  # fmt: skip


def is_terminal(reason: str | None) -> bool:
    """True when a `Ready=False` reason means waiting will not make the service Ready."""
    return reason in TERMINAL_REASONS
