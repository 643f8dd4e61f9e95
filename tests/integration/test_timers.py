"""SLA timers against the real database and broker, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from services.review.directory import Directory
from services.review.roster import load_roster
from services.review.settings import DEFAULT_ROSTER
from services.review.store import TaskStore
from services.review.timers import Timers
from shared.messaging import Broker
from shared.storage import Document
from tests.amqp import observe
from tests.conftest import Isolation
from tests.factories import review_task

pytestmark = pytest.mark.integration


async def test_timers_fire_once_each_even_across_restarts(
    mongo: AsyncMongoClient[Document], isolation: Isolation
) -> None:
    broker = Broker(isolation.amqp_url, service="test")
    await broker.connect()
    store = TaskStore(mongo[isolation.database("review")], broker.publish)
    await store.setup()
    t0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    await store.create(
        review_task(
            unit_id="CAP-BADINH",
            officer_id="cb-badinh-01",
            state="checking",
            created_at=t0,
            remind_at=t0 + timedelta(hours=1),
            due_at=t0 + timedelta(hours=2),
            timer_at=t0 + timedelta(hours=1),
            timer_kind="reminder",
        ),
        [],
    )
    now = [t0]
    directory = Directory(mongo[isolation.database("review")])
    await directory.seed(load_roster(DEFAULT_ROSTER))

    def timers() -> Timers:  # a new one is a restarted service
        return Timers(
            store, directory, clock=lambda: now[0], source="urn:test", publish=store.publish
        )

    async with observe(isolation.amqp_url) as seen:
        assert await timers().run_once() == []
        now[0] = t0 + timedelta(minutes=90)
        [reminder] = await timers().run_once()
        assert reminder.type == "dossier.due_soon"
        assert await timers().run_once() == []
        now[0] = t0 + timedelta(hours=3)
        [overdue] = await timers().run_once()
        assert overdue.type == "dossier.overdue"
        assert overdue.data.escalated_to == "cb-pc06-gs"  # type: ignore[attr-defined]
        assert await timers().run_once() == []
        await seen.wait_for("dossier.overdue")
    assert [e["type"] for e in seen.events()] == ["dossier.due_soon", "dossier.overdue"]
    task = await store.load("t1")
    assert task is not None and task.escalated_to == "cb-pc06-gs"
    await broker.close()
