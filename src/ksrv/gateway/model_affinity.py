"""Which replica of a multi-model predictor a request should prefer: the one its model lives on.

A multi-model predictor's replicas load TrainedModels on demand, so where a request goes
decides how many copies of a model are loaded. Each model has a home replica by rendezvous
hashing of its name over the ready replicas (the highest `crc32(model|address)` wins): every
gateway process agrees without talking, and when a replica comes or goes only the models
whose home it was move. A request goes home while the home replica has fewer than `spill_at`
requests in flight; past that, the balancer's least-loaded replica takes it and loads the
model too, so a hot model gets copies on more replicas while cold ones stay on one.

The model's name comes from the REST path (`/v1/models/{name}...`, `/v2/models/{name}...`) or
from a gRPC request's first field, `model_name` / `name` in every OIP message that names one
(protobuf writes fields in number order, so it leads the message); nothing else is decoded.
"""

from __future__ import annotations

import zlib
from typing import Final

# Requests in flight at a model's home replica before others help with it.
SPILL_AT: Final = 4
_MODELS: Final = b"/models/"


def rest_model(target: bytes) -> str | None:
    """The model a REST target names (`/v1/models/{name}:predict`, `/v2/models/{name}/infer`)."""
    start = target.find(_MODELS)
    if start < 0:
        return None
    rest = target[start + len(_MODELS) :]
    end = len(rest)
    for separator in (b"/", b":", b"?"):
        at = rest.find(separator)
        if 0 <= at < end:
            end = at
    return rest[:end].decode("latin-1") or None


def grpc_model(message: bytes) -> str | None:
    """Field 1 of a protobuf message when it is a string (the model's name in OIP requests)."""
    if len(message) < 2 or message[0] != 0x0A:
        return None
    length, shift, at = 0, 0, 1
    while at < len(message) and at < 6:
        byte = message[at]
        length |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            break
        shift += 7
    name = message[at : at + length]
    if len(name) != length or not length:
        return None
    return name.decode("utf-8", errors="replace")


def home(addresses: tuple[str, ...], model: str) -> str:
    """The replica `model` prefers among `addresses` (rendezvous hashing)."""
    key = model.encode() + b"|"
    return max(addresses, key=lambda address: zlib.crc32(key + address.encode()))
