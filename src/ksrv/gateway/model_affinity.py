"""Which replica of a multi-model predictor a request should prefer: one that holds its model.

A multi-model predictor's replicas load TrainedModels on demand, so where a request goes
decides how many copies of a model are loaded. `ModelPlacement` remembers, per model, the
replicas this gateway sent it to (they have it loaded, or are loading it); a model sent
nowhere yet goes to its home replica, by rendezvous hashing of its name over the ready
replicas (the highest 64-bit BLAKE2b of `model|address` wins: every gateway process agrees without
talking, and when a replica comes or goes only the models whose home it was move). A request
goes to the least busy holder, unless the model is hot there (`HOT_AT` of its requests in
flight at that holder) and another replica is less busy: then that one takes it, loads the
model and becomes a holder too. So a hot model gets copies on more replicas, while models
spread thin each stay on one (replica load alone never makes copies: that would load every
model everywhere). A holder that unloaded the model since (its LRU) loads it again: a cost,
never a failure.

The model's name comes from the REST path (`/v1/models/{name}...`, `/v2/models/{name}...`) or
from a gRPC request's first field, `model_name` / `name` in every OIP message that names one
(protobuf writes fields in number order, so it leads the message); nothing else is decoded.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Final

from ksrv.gateway.balancer import Balancer, Endpoint

# A model with this many requests in flight at its least busy holder is hot there.
HOT_AT: Final = 2
_NEVER: Final = 1 << 30
# Models remembered per gateway process (least recently placed forgotten first).
MAX_MODELS: Final = 65536
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
    """The replica `model` prefers among `addresses` (rendezvous hashing; a cryptographic
    hash, because a linear one such as CRC-32 ranks replicas alike for many names)."""
    key = model.encode() + b"|"
    return max(addresses, key=lambda address: _score(key + address.encode()))


def _score(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=8).digest()


class ModelPlacement:
    """Per model, the replicas it was sent to; chooses among them (see the module's doc)."""

    def __init__(self, max_models: int = MAX_MODELS) -> None:
        self.max_models = max_models
        self._holders: OrderedDict[str, list[str]] = OrderedDict()
        self._in_flight: dict[tuple[str, str], int] = {}

    def take(
        self, balancer: Balancer[Any], addresses: tuple[str, ...], model: str, limit: int
    ) -> Endpoint[Any] | None:
        """A replica for `model`'s request, counted in flight; None when all are full."""
        known = self._holders.get(model)
        holders = [a for a in known if a in addresses] if known else []
        preferred = holders or [home(addresses, model)]
        is_hot = min(self._in_flight.get((model, a), 0) for a in preferred) >= HOT_AT
        endpoint = balancer.take_preferring(addresses, preferred, limit, 1 if is_hot else _NEVER)
        if endpoint is not None:
            self._remember(model, endpoint.address, holders)
            key = (model, endpoint.address)
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return endpoint

    def done(self, model: str, address: str) -> None:
        """A request `take` placed has ended."""
        key = (model, address)
        count = self._in_flight.get(key, 0) - 1
        if count > 0:
            self._in_flight[key] = count
        else:
            self._in_flight.pop(key, None)

    def holders(self, model: str) -> list[str]:
        return list(self._holders.get(model, ()))

    def _remember(self, model: str, address: str, holders: list[str]) -> None:
        if address not in holders:
            holders = [*holders, address]
        self._holders[model] = holders
        self._holders.move_to_end(model)
        if len(self._holders) > self.max_models:
            self._holders.popitem(last=False)
