"""ksrv: a model inference platform that speaks KServe's language.

The names below are the ones a KServe custom model imports; porting one means changing
`kserve` to `ksrv` in its imports. Server pieces load lazily so `import ksrv` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "InferInput",
    "InferOutput",
    "InferRequest",
    "InferResponse",
    "Model",
    "ModelServer",
    "OpenAIChatAdapterModel",
    "OpenAIEncoderModel",
    "OpenAIGenerativeModel",
    "OpenAIModel",
    "PredictorConfig",
    "RequestedOutput",
    "__version__",
    "errors",
    "generate_uuid",
    "get_predict_input",
    "get_predict_response",
    "model_server",
]

_LAZY = {
    "InferInput": "ksrv.protocol.v2",
    "InferOutput": "ksrv.protocol.v2",
    "InferRequest": "ksrv.protocol.v2",
    "InferResponse": "ksrv.protocol.v2",
    "RequestedOutput": "ksrv.protocol.v2",
    "Model": "ksrv.model.base",
    "PredictorConfig": "ksrv.model.base",
    "ModelServer": "ksrv.server.model_server",
    # KServe keeps these in kserve.protocol.rest.openai
    "OpenAIModel": "ksrv.model.openai",
    "OpenAIChatAdapterModel": "ksrv.model.openai_chat_adapter",
    "OpenAIGenerativeModel": "ksrv.model.openai",
    "OpenAIEncoderModel": "ksrv.model.openai",
    # KServe keeps these in kserve.utils.utils
    "generate_uuid": "ksrv.protocol.v2",
    "get_predict_input": "ksrv.protocol.v1",
    "get_predict_response": "ksrv.protocol.v1",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "model_server":
        return importlib.import_module("ksrv.server.model_server")
    if name == "errors":
        return importlib.import_module("ksrv.errors")
    raise AttributeError(f"module 'ksrv' has no attribute {name!r}")
