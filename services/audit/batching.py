"""Batched inserts behind the consumer.

The consumer runs up to `prefetch` handlers at once (aio-pika starts a task per message). Each
handler hands its record to the batcher and awaits a future that resolves only once the batch
holding it is written (or fails with the write's error, so the message is retried, never acked
unwritten). A batch is written when it reaches `size` records or its first record has waited
`wait` seconds, whichever comes first; one write is in flight at a time. A write that stored
some of its documents raises `PartialWrite` naming the others: only their handlers fail.

A write is bounded by `limit` seconds (the driver sets no timeout once connected): one that
waits forever for the database's reply (a chaos run caught one after a database restart, its
message held unacknowledged for good) fails its batch, whose messages are retried; a record
written twice is the same record (its `_id` is the event's). If the batcher itself is
cancelled, every handler still waiting is cancelled with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Write = Callable[[list[dict[str, Any]]], Awaitable[None]]
Written = Callable[[list[dict[str, Any]]], None]
WRITE_LIMIT = 30.0  # seconds a batch's write may take


class PartialWrite(Exception):
    """A write stored every document but those at the indexes `failed` (of the list given)."""

    def __init__(self, failed: set[int], detail: str) -> None:
        super().__init__(f"{len(failed)} document(s) not written: {detail}")
        self.failed = frozenset(failed)


class Batcher:
    def __init__(
        self,
        write: Write,
        *,
        size: int,
        wait: float,
        written: Written | None = None,
        limit: float = WRITE_LIMIT,
    ) -> None:
        self.write = write
        self.limit = limit
        self.written = written  # told of each batch once it is written (some of it, at least)
        self.size = size
        self.wait = wait
        self._items: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0  # written so far (for benchmarks and tests)

    async def submit(self, doc: dict[str, Any]) -> None:
        """Returns once `doc` is durable; raises what the write raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.append((doc, future))
        if len(self._items) >= self.size:
            self._full.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="audit-batcher")
        await future

    async def _run(self) -> None:
        while self._items:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), self.wait)
            self._full.clear()
            batch, self._items = self._items[: self.size], self._items[self.size :]
            if len(self._items) >= self.size:
                self._full.set()
            docs = [doc for doc, _ in batch]
            try:
                async with asyncio.timeout(self.limit):
                    await self.write(docs)
            except PartialWrite as exc:
                log.warning("%d of a batch of %d records failed", len(exc.failed), len(batch))
                self.batches += 1
                self._tell(docs)
                for index, (_, future) in enumerate(batch):
                    if not future.done():
                        if index in exc.failed:
                            future.set_exception(exc)
                        else:
                            future.set_result(None)
            except Exception as exc:
                log.warning("a batch of %d records failed; retrying them", len(batch))
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            except BaseException:  # cancelled: nobody is left waiting for a write not coming
                for _, future in batch + self._items:
                    future.cancel()
                self._items = []
                raise
            else:
                self.batches += 1
                self._tell(docs)
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)

    def _tell(self, docs: list[dict[str, Any]]) -> None:
        if self.written is not None:
            try:
                self.written(docs)
            except Exception:
                log.exception("could not signal a written batch")
