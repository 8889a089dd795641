"""Running a graph's nodes for one request, with the semantics of KServe's router.

- Sequence: steps in order; each sends the node's input (`$request`) or the previous step's
  answer (`$response`), optionally with `predictions` renamed `instances`. A step's
  `condition` is checked against the previous answer (the node's input for the first step):
  no match stops the node with what it has. A Hard step that fails (non-2xx) stops the node
  with its own answer; a Soft one does not, and the node answers as its last step did.
- Switch: the first step whose condition matches the input; none: 404, KServe's body.
- Ensemble: every step at once, answers merged under their names (or indexes); the first
  failed Hard step, in step order, is the node's answer instead (the rest are called off).
- Splitter: one step, drawn by weight from `rng`.

A step that cannot be reached answers 502, one that times out 504 (KServe's router answers 500
for both and drops the graph even for a Soft step; here the Soft/Hard rule decides, and the
body names the step). Every step run is recorded (`StepRecord`) with its status and latency;
`app.py` logs them, one line per request.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from ksrv.errors import UpstreamFailed, UpstreamTimeout
from ksrv.graph import conditions
from ksrv.graph.client import Answer, Target
from ksrv.graph.spec import Graph, Node, Step

_JSON: Final = b"application/json"
_FAILED: Final = "Failed to process request"
NO_MATCH: Final = orjson.dumps(
    {"error": _FAILED, "cause": "None of the routes matched with the switch condition"}
)


class StepCaller(Protocol):
    """Sends one step's body to a service (`client.StepClient` is one)."""

    async def post(
        self,
        target: Target,
        body: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        deadline: float | None,
    ) -> Answer: ...


@dataclass(slots=True)
class StepRecord:
    """One step that ran: `node/step`, its status and how long it took."""

    label: str
    status: int = 0
    latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Outcome:
    """A node's or step's answer; `failure` names the Hard step that decided it, if one did."""

    status: int
    body: bytes
    content_type: bytes | None = _JSON
    failure: str | None = None

    @property
    def is_success(self) -> bool:
        return 200 <= self.status <= 299


class Payload:
    """A body on its way through the graph, parsed only when a condition or a mapping reads
    it (once)."""

    __slots__ = ("_document", "_is_parsed", "body")

    def __init__(self, body: bytes, document: Any = None, is_parsed: bool = False) -> None:
        self.body = body
        self._document = document
        self._is_parsed = is_parsed

    def document(self) -> Any:
        """The parsed JSON; None when the body is not JSON."""
        if not self._is_parsed:
            self._is_parsed = True
            try:
                self._document = orjson.loads(self.body)
            except orjson.JSONDecodeError:
                self._document = None
        return self._document


@dataclass(slots=True)
class Run:
    """One request through the graph: what every step gets, and what ran."""

    headers: Sequence[tuple[bytes, bytes]]
    records: list[StepRecord] = field(default_factory=list)


class Executor:
    """Runs `graph` for a request; `rng` draws Splitter steps, `clock` times steps."""

    def __init__(
        self,
        graph: Graph,
        caller: StepCaller,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.graph = graph
        self.caller = caller
        self.rng = rng or random.Random()
        self.clock = clock
        self.targets = {
            step.service_url: Target.parse(step.service_url)
            for node in graph.nodes.values()
            for step in node.steps
            if step.service_url
        }

    async def run(self, payload: Payload, run: Run) -> Outcome:
        """The root node's answer to `payload`."""
        return await self.node(self.graph.root, payload, run)

    async def node(self, node: Node, payload: Payload, run: Run) -> Outcome:
        if node.router_type == "Sequence":
            return await self._sequence(node, payload, run)
        if node.router_type == "Ensemble":
            return await self._ensemble(node, payload, run)
        if node.router_type == "Switch":
            step = next(
                (s for s in node.steps if s.condition and _matches(payload, s.condition)), None
            )
            if step is None:
                return Outcome(404, NO_MATCH)
        else:
            step = pick_weighted(node.steps, self.rng)
        return _decided(step, await self.step(step, payload, run))

    async def _sequence(self, node: Node, payload: Payload, run: Run) -> Outcome:
        previous: Outcome | None = None
        for step in node.steps:
            if step.condition:
                checked = payload if previous is None else Payload(previous.body)
                if not _matches(checked, step.condition):
                    # KServe: the sequence stops here and answers what it has, as a success.
                    if previous is None:
                        return Outcome(404, NO_MATCH)
                    return Outcome(200, previous.body, previous.content_type)
            sent = payload if previous is None or not step.is_response else Payload(previous.body)
            if step.maps_predictions:
                sent = predictions_as_instances(sent)
            outcome = await self.step(step, sent, run)
            if step.is_hard and not outcome.is_success:
                return _decided(step, outcome)
            previous = outcome
        assert previous is not None  # spec.py refuses a node without steps
        return Outcome(previous.status, previous.body, previous.content_type)

    async def _ensemble(self, node: Node, payload: Payload, run: Run) -> Outcome:
        # All steps start at once; their answers are taken in step order, as KServe does, so
        # a failed Hard step answers as soon as the steps before it have, and the steps still
        # running are called off (their status stays 0 in the record).
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self.step(step, payload, run)) for step in node.steps]
        merged: dict[str, Any] = {}
        try:
            for step, task in zip(node.steps, tasks, strict=True):
                answer = await task
                try:
                    document = orjson.loads(answer.body)
                except orjson.JSONDecodeError:
                    answer = _failed(step, 502, "answered a body that is not JSON")
                    document = orjson.loads(answer.body)
                if step.is_hard and not answer.is_success:
                    return _decided(step, answer)
                merged[step.key] = document
        finally:
            unfinished = [task for task in tasks if not task.done()]
            for task in unfinished:
                task.cancel()
            if unfinished:
                await asyncio.gather(*unfinished, return_exceptions=True)
        return Outcome(200, orjson.dumps(merged))

    async def step(self, step: Step, payload: Payload, run: Run) -> Outcome:
        """One step's answer: a node's, or the service's (502/504 when it gave none)."""
        record = StepRecord(step.label)
        run.records.append(record)
        started = self.clock()
        try:
            if step.node_name is not None:
                outcome = await self.node(self.graph.nodes[step.node_name], payload, run)
            else:
                outcome = await self._call(step, payload, run)
        finally:
            record.latency_ms = (self.clock() - started) * 1000.0
        record.status = outcome.status
        return outcome

    async def _call(self, step: Step, payload: Payload, run: Run) -> Outcome:
        assert step.service_url is not None
        deadline = None
        if step.timeout_s is not None:
            deadline = asyncio.get_running_loop().time() + step.timeout_s
        try:
            answer = await self.caller.post(
                self.targets[step.service_url], payload.body, run.headers, deadline
            )
        except UpstreamTimeout as exc:
            within = f"no answer within {step.timeout_s:g}s" if step.timeout_s else str(exc)
            return _failed(step, 504, within)
        except UpstreamFailed as exc:
            return _failed(step, 502, str(exc))
        return Outcome(answer.status, answer.body, answer.content_type)


def pick_weighted(steps: Sequence[Step], rng: random.Random) -> Step:
    """KServe's Splitter draw: a point in [0, 100) falls in one step's share of the weights."""
    point = rng.randrange(100)
    end = 0
    for step in steps:
        end += step.weight
        if point < end:
            return step
    return steps[-1]  # unreachable: spec.py checks the weights sum to 100


def predictions_as_instances(payload: Payload) -> Payload:
    """KServe's `mapPredictionsToInstances`: `{"predictions": [...]}` becomes
    `{"instances": [...]}` (other fields dropped, as KServe's decoding drops them); any other
    body goes unchanged."""
    document = payload.document()
    if not isinstance(document, dict):
        return payload
    predictions = document.get("predictions")
    if not isinstance(predictions, list) or not predictions:
        return payload
    mapped = {"instances": predictions}
    return Payload(orjson.dumps(mapped), mapped, True)


def _matches(payload: Payload, condition: str) -> bool:
    document = payload.document()
    return document is not None and conditions.matches(document, condition)


def _decided(step: Step, outcome: Outcome) -> Outcome:
    """`outcome` as the node's answer; a failed Hard step is named as the cause."""
    if not step.is_hard or outcome.is_success:
        return outcome
    failure = outcome.failure or f"step {step.label} (Hard) answered {outcome.status}"
    return Outcome(outcome.status, outcome.body, outcome.content_type, failure)


def _failed(step: Step, status: int, cause: str) -> Outcome:
    where = step.service_url or step.node_name
    body = orjson.dumps({"error": _FAILED, "cause": f"step {step.label} ({where}): {cause}"})
    return Outcome(status, body)
