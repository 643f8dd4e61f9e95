"""Notify's move of finished deliveries to history, batched (`NotifyStore._archive_all`): the
mapping of a bulk write's per-item refusals onto the callers, over fake collections (the real
commands are tested in tests/integration/test_notify_store.py)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pymongo import DeleteOne, ReplaceOne
from pymongo.errors import BulkWriteError, WriteError

from services.notify.domain import Delivery, new_delivery, sent
from services.notify.routing import ChannelRoute, Planned
from services.notify.store import NotifyStore
from tests.factories import submitted_event


class FakeCollection:
    """Records bulk writes; `refuse` maps an _id to the write error code it gets."""

    def __init__(self, refuse: dict[str, int] | None = None) -> None:
        self.refuse = refuse or {}
        self.bulks: list[list[Any]] = []

    async def bulk_write(self, ops: list[Any], *, ordered: bool) -> None:
        await asyncio.sleep(0)
        self.bulks.append(ops)
        errors = [
            {"index": i, "code": self.refuse[op._filter["_id"]], "errmsg": "refused"}
            for i, op in enumerate(ops)
            if op._filter["_id"] in self.refuse
        ]
        if errors:
            raise BulkWriteError({"writeErrors": errors, "writeConcernErrors": []})


def _store(history: FakeCollection, live: FakeCollection) -> NotifyStore:
    collections = {"delivery_history": history, "deliveries": live, "recipients": None}
    return NotifyStore(collections)  # type: ignore[arg-type]


def _finished(number: int) -> Delivery:
    now = datetime.now(UTC)
    planned = Planned(
        f"e{number}:applicant:sms", "applicant", "sms", route=ChannelRoute(template="x")
    )
    fresh = new_delivery(submitted_event(code=f"D{number}"), planned, "+849*****678", now=now)
    return sent(replace(fresh, version=2), provider_id="p", now=now, source="u")


async def test_a_copy_history_refuses_fails_its_caller_only_and_stays_in_live() -> None:
    """e1's copy is refused (code 2, not a duplicate): its caller gets the WriteError and its
    live copy is not deleted; e2's is a duplicate key (history holds it, or a later one):
    done, like e0, and both their live copies go in one bulk delete."""
    history = FakeCollection(refuse={"e1:applicant:sms": 2, "e2:applicant:sms": 11000})
    live = FakeCollection()
    store = _store(history, live)
    deliveries = [_finished(i) for i in range(3)]
    outcomes = await asyncio.gather(*(store.archive(d) for d in deliveries), return_exceptions=True)
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], WriteError) and outcomes[1].code == 2
    assert [[type(op) for op in ops] for ops in history.bulks] == [[ReplaceOne] * 3]
    (drops,) = live.bulks
    assert all(isinstance(op, DeleteOne) for op in drops)
    assert [op._filter["_id"] for op in drops] == ["e0:applicant:sms", "e2:applicant:sms"]


async def test_a_write_concern_error_fails_every_caller_and_deletes_nothing() -> None:
    class Unacknowledged(FakeCollection):
        async def bulk_write(self, ops: list[Any], *, ordered: bool) -> None:
            raise BulkWriteError({"writeErrors": [], "writeConcernErrors": [{"code": 64}]})

    live = FakeCollection()
    store = _store(Unacknowledged(), live)
    outcomes = await asyncio.gather(
        *(store.archive(_finished(i)) for i in range(2)), return_exceptions=True
    )
    assert all(isinstance(o, BulkWriteError) for o in outcomes)
    assert live.bulks == []
