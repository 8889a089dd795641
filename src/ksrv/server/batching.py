"""Request coalescing: concurrent small requests for one model run as one call.

Why: for a small scikit-learn model the estimator's per-call overhead (input validation) is
most of a request's cost, so eight requests that arrive together cost about one call when
merged. Nothing waits on a timer: the first request opens a batch and yields one turn of the
event loop, so requests already on their way (parsed in the same turn) join it, as with
Triton's dynamic batcher at no queue delay; a lone request then runs as it would have.
Only models that declare row-wise predictions (`Model.batchable`) take part. A batch that
fails, or whose answer cannot be split back into rows, is answered one request at a time,
so every caller gets exactly its own answer or error.

With a batcher (KServe's `batcher.maxLatency`, `--max-latency-ms`) the first request instead
waits up to that long for `max_batch_size` rows, and tensor runtimes (`Model.enable_batcher`:
onnx, pytorch, tensorflow) merge too. The wait is an injected `sleep`, so tests drive it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from ksrv.model.base import Headers, Model
from ksrv.protocol import batch
from ksrv.server.settings import DEFAULT_MAX_BATCH_SIZE

logger = logging.getLogger(__name__)

# How one (possibly merged) request is answered: run(model, payload, headers).
Run = Callable[[Model, Any, Headers], Awaitable[Any]]
# Told of each merged call: record(model name, requests, rows).
MergeRecord = Callable[[str, int, int], None]
Sleep = Callable[[float], Awaitable[None]]


class _Batch:
    __slots__ = ("error", "full", "futures", "headers", "payloads", "rows")

    def __init__(self) -> None:
        self.payloads: list[Any] = []
        self.headers: list[Headers] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.rows = 0
        self.error: Exception | None = None  # why the merged call failed, if it did
        self.full: asyncio.Event | None = None  # ends a batcher's wait: no more rows fit

    def join(self, payload: Any, headers: Headers, rows: int) -> asyncio.Future[Any]:
        """Add a request; the returned future gets its answer."""
        future = asyncio.get_running_loop().create_future()
        self.payloads.append(payload)
        self.headers.append(headers)
        self.futures.append(future)
        self.rows += rows
        return future


class Coalescer:
    """Merges concurrent requests to one model into batches of up to `max_batch_size` rows.

    `max_latency_s` None merges only what arrives together; a number makes this a batcher
    that waits up to that long (from the batch's first request) for a full batch. `record` is
    told of each merged call.
    """

    def __init__(
        self,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        record: MergeRecord | None = None,
        max_latency_s: float | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.max_batch_size = max_batch_size
        self.record = record
        self.max_latency_s = max_latency_s
        self._sleep = sleep
        self._open: dict[tuple[int, Hashable], _Batch] = {}
        self._not_merging: weakref.WeakSet[Model] = weakref.WeakSet()
        self._running: set[asyncio.Task[None]] = set()  # the loop holds tasks only weakly

    async def submit(self, model: Model, payload: Any, headers: Headers, run: Run) -> Any:
        """`run(model, payload, headers)`, possibly as part of a merged call."""
        slot_key = self._key(model, payload)
        if slot_key is None:
            return await run(model, payload, headers)
        size = batch.rows(payload)
        slot = (id(model), slot_key)
        pending = self._open.get(slot)
        if pending is not None and pending.rows + size <= self.max_batch_size:
            own = pending.join(payload, headers, size)
            if pending.rows == self.max_batch_size:
                self._close(slot, pending)
            return await own
        if pending is not None:
            self._close(slot, pending)  # this request does not fit: that batch runs now
        # Lead a new batch: requests already on their way to the loop join during one turn
        # (or, for a batcher, until the batch is full or its wait is over).
        pending = self._open[slot] = _Batch()
        own = pending.join(payload, headers, size)
        try:
            await self._gather(pending)
        except asyncio.CancelledError:
            own.cancel()  # the leader left: whatever its request's fate, nobody reads it
            raise
        finally:
            if self._open.get(slot) is pending:
                del self._open[slot]
            if len(pending.payloads) > 1:  # followers are answered even if the leader leaves
                task = asyncio.get_running_loop().create_task(self._answer(pending, model, run))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
        if len(pending.payloads) == 1:
            return self._stamped([await run(model, payload, headers)])[0]
        return await own

    def merges(self, model: Model) -> bool:
        """Whether `model`'s predictions may go through `submit` to be merged."""
        with_batcher = self.max_latency_s is not None and model.enable_batcher
        return self.max_batch_size > 1 and (model.batchable or with_batcher)

    def _key(self, model: Model, payload: Any) -> Hashable | None:
        if not self.merges(model) or model in self._not_merging:
            return None
        return batch.key(payload, self.max_batch_size)

    async def _gather(self, pending: _Batch) -> None:
        """Let other requests join `pending`: one loop turn, or a batcher's wait."""
        if self.max_latency_s is None:
            await asyncio.sleep(0)
            return
        pending.full = asyncio.Event()
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(pending.full.wait()),
            asyncio.ensure_future(self._sleep(self.max_latency_s)),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _close(self, slot: tuple[int, Hashable], pending: _Batch) -> None:
        """No more requests join `pending`; its leader stops waiting."""
        if self._open.get(slot) is pending:
            del self._open[slot]
        if pending.full is not None:
            pending.full.set()

    def _stamped(self, answers: list[Any]) -> list[Any]:
        """A batcher's V1 answers with KServe's `batchId`, one id per model call."""
        if self.max_latency_s is None:
            return answers
        batch_id = str(uuid.uuid4())
        return [
            {**answer, "batchId": batch_id}
            if isinstance(answer, dict) and "predictions" in answer
            else answer
            for answer in answers
        ]

    async def _answer(self, pending: _Batch, model: Model, run: Run) -> None:
        try:
            await self._answer_batch(pending, model, run)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            for future in pending.futures:
                _fail(future, exc)
            raise

    async def _answer_batch(self, pending: _Batch, model: Model, run: Run) -> None:
        answers = await self._merged(pending, model, run)
        if answers is not None:
            for future, answer in zip(pending.futures, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
            return
        calls = zip(pending.payloads, pending.headers, pending.futures, strict=True)
        succeeded = await asyncio.gather(
            *(_settle(future, run(model, payload, headers)) for payload, headers, future in calls)
        )
        if all(succeeded):
            reason = f"a merged call failed ({pending.error!r}) where each request alone succeeded"
            self._stop_merging(model, reason)

    async def _merged(self, pending: _Batch, model: Model, run: Run) -> list[Any] | None:
        """Per-request answers from one merged call, or None to answer each alone."""
        if self.record is not None:
            self.record(model.name, len(pending.payloads), pending.rows)
        try:
            answer = await run(model, batch.merge(pending.payloads), pending.headers[0])
            answers = batch.split(answer, pending.payloads)
            logger.debug("model %s: %d requests in one call", model.name, len(pending.payloads))
        except Exception as exc:  # one caller's bad input fails the batch: each gets its own
            pending.error = exc
            return None
        if answers is None:
            self._stop_merging(model, "a merged answer did not have one row per input row")
            return None
        return self._stamped(answers)

    def _stop_merging(self, model: Model, reason: str) -> None:
        if model not in self._not_merging:
            self._not_merging.add(model)
            logger.warning("model %s: %s; its requests are no longer merged", model.name, reason)


async def _settle(future: asyncio.Future[Any], answer: Awaitable[Any]) -> bool:
    """Deliver `answer` (or its error) to `future`; True if it succeeded."""
    try:
        result = await answer
    except BaseException as exc:  # the caller's own error, delivered to the caller
        _fail(future, exc)
        if not isinstance(exc, Exception):
            raise
        return False
    if not future.done():
        future.set_result(result)
    return True


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc) if isinstance(exc, Exception) else future.cancel()
