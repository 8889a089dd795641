"""Zero-wait request coalescing: concurrent small requests for one model run as one call.

Why: for a small scikit-learn model the estimator's per-call overhead (input validation) is
most of a request's cost, so eight requests that arrive together cost about one call when
merged. Nothing waits on a timer: a batch opens with the first request and runs on the next
turn of the event loop, holding whatever arrived in the meantime (as Triton's dynamic batcher
with no queue delay), so a lone request pays one loop turn, not a delay. Only models that
declare row-wise predictions (`Model.batchable`) take part. A batch that fails, or whose
answer cannot be split back into rows, is answered one request at a time, so every caller
gets exactly its own answer or error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from ksrv.model.base import Headers, Model
from ksrv.protocol import batch
from ksrv.server.settings import DEFAULT_MAX_BATCH_SIZE

logger = logging.getLogger(__name__)

# How one (possibly merged) request is answered: run(model, payload, headers).
Run = Callable[[Model, Any, Headers], Awaitable[Any]]


class _Batch:
    __slots__ = ("futures", "headers", "payloads", "rows")

    def __init__(self) -> None:
        self.payloads: list[Any] = []
        self.headers: list[Headers] = []
        self.futures: list[asyncio.Future[Any]] = []
        self.rows = 0


class Coalescer:
    """Merges concurrent requests to one model into batches of up to `max_batch_size` rows."""

    def __init__(self, max_batch_size: int = DEFAULT_MAX_BATCH_SIZE) -> None:
        self.max_batch_size = max_batch_size
        self._open: dict[tuple[int, Hashable], _Batch] = {}
        self._unsplittable: set[int] = set()
        self._running: set[asyncio.Task[None]] = set()  # the loop holds tasks only weakly

    async def submit(self, model: Model, payload: Any, headers: Headers, run: Run) -> Any:
        """`run(model, payload, headers)`, possibly as part of a merged call."""
        slot_key = self._key(model, payload)
        if slot_key is None:
            return await run(model, payload, headers)
        size = batch.rows(payload)
        if size >= self.max_batch_size:
            return await run(model, payload, headers)
        slot = (id(model), slot_key)
        loop = asyncio.get_running_loop()
        pending = self._open.get(slot)
        if pending is None or pending.rows + size > self.max_batch_size:
            pending = self._open[slot] = _Batch()
            task = loop.create_task(self._run(slot, pending, model, run))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        future = loop.create_future()
        pending.payloads.append(payload)
        pending.headers.append(headers)
        pending.futures.append(future)
        pending.rows += size
        return await future

    def _key(self, model: Model, payload: Any) -> Hashable | None:
        if self.max_batch_size <= 1 or not model.batchable or id(model) in self._unsplittable:
            return None
        return batch.key(payload)

    async def _run(
        self, slot: tuple[int, Hashable], pending: _Batch, model: Model, run: Run
    ) -> None:
        if self._open.get(slot) is pending:
            del self._open[slot]
        try:
            await self._answer(pending, model, run)
        except BaseException as exc:  # a bug here must not leave callers waiting forever
            for future in pending.futures:
                if not future.done():
                    future.set_exception(exc) if isinstance(exc, Exception) else future.cancel()
            raise

    async def _answer(self, pending: _Batch, model: Model, run: Run) -> None:
        answers = await self._merged(pending, model, run) if len(pending.payloads) > 1 else None
        if answers is not None:
            for future, answer in zip(pending.futures, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
            return
        calls = [
            _settle(future, run(model, payload, headers))
            for payload, headers, future in zip(
                pending.payloads, pending.headers, pending.futures, strict=True
            )
        ]
        await calls[0] if len(calls) == 1 else asyncio.gather(*calls)

    async def _merged(self, pending: _Batch, model: Model, run: Run) -> list[Any] | None:
        """Per-request answers from one merged call, or None to answer each alone."""
        try:
            answer = await run(model, batch.merge(pending.payloads), pending.headers[0])
            answers = batch.split(answer, pending.payloads)
        except Exception:  # one caller's bad input fails the batch: each gets its own answer
            return None
        if answers is None:
            self._unsplittable.add(id(model))
            logger.warning(
                "model %s: a merged answer did not split into rows; not batching it", model.name
            )
        return answers


async def _settle(future: asyncio.Future[Any], answer: Awaitable[Any]) -> None:
    try:
        result = await answer
    except BaseException as exc:  # the caller's own error, delivered to the caller
        if not future.done():
            future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
    else:
        if not future.done():
            future.set_result(result)
