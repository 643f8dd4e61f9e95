"""End to end under faults: a service killed mid-message, and the broker restarted."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, decide, submit, timeline, token, wait_for_types
from tests.e2e.harness import Mailbox, Services, eventually
from tools.devstack import RabbitMQ, free_port

pytestmark = pytest.mark.e2e


async def test_review_killed_before_ack_assigns_exactly_once_after_restart(
    isolation: Isolation, mailbox: Mailbox, mongo: object, tmp_path: Path
) -> None:
    stack = Services(env=service_env(isolation, mailbox), logs=tmp_path)
    tasks = mongo[isolation.database("review")]["tasks"]  # type: ignore[index]
    try:
        for name in ("intake", "audit", "notify"):
            stack.start(name)
        # Review halts after storing the task and before publishing or acknowledging.
        stack.start("review", MOTCUA_FAULT_POINTS="review.assign.after_store")
        for name in ("intake", "audit", "notify", "review"):
            stack.wait_ready(name)
        async with observe(isolation.amqp_url) as seen:
            code = submit(stack)
            await eventually(lambda: tasks.count_documents({"dossier_code": code}), timeout=30)
            await asyncio.sleep(0.5)
            assert "fault point reached" in stack.log("review")
            stack.kill("review")  # SIGKILL: no clean shutdown, the message is still unacked
            assert seen.events("dossier.assigned") == []

            stack.start("review")
            stack.wait_ready("review")
            await wait_for_types(stack, code, "dossier.assigned")
            await asyncio.sleep(1.5)  # room for any duplicate to show up
            assigned = seen.events("dossier.assigned")

        assert len(assigned) >= 1
        assert len({e["id"] for e in assigned}) == 1
        assert await tasks.count_documents({"dossier_code": code}) == 1
        types = [e["type"] for e in await timeline(stack, code)]
        assert types == ["dossier.submitted", "dossier.assigned"]
        assert await isolation.queue_messages("motcua.review") == 0
        assert await isolation.queue_messages("motcua.review.dead") == 0
    finally:
        stack.stop_all()


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[RabbitMQ]:
    """A RabbitMQ node of this test's own, so restarting it disturbs no other test."""
    port = free_port()
    node = RabbitMQ(
        f"restart-{port}", tmp_path / "rabbitmq", port, free_port(), dist_port=free_port()
    )
    node.start()
    yield node
    node.stop()


async def test_services_reconnect_after_the_broker_restarts(
    own_broker: RabbitMQ, isolation: Isolation, mailbox: Mailbox, tmp_path: Path
) -> None:
    env = {**service_env(isolation, mailbox), "MOTCUA_AMQP_URL": own_broker.url}
    stack = Services(env=env, logs=tmp_path)
    try:
        stack.start_all()
        first = submit(stack)
        await wait_for_types(stack, first, "dossier.submitted", "dossier.assigned")

        own_broker.stop()
        await eventually(
            lambda: httpx.get(f"{stack.url('intake')}/readyz").status_code == 503, timeout=30
        )
        # Submitted while the broker is away: stored now, published once it is back.
        during = submit(stack)
        own_broker.start()
        for name in ("intake", "review", "notify", "audit"):
            await eventually(
                lambda n=name: httpx.get(f"{stack.url(n)}/readyz").status_code == 200, timeout=60
            )

        after = submit(stack)
        task_id, officer_id = await assigned_officer(stack, after)
        assert decide(stack, task_id, token(officer_id)).status_code == 200
        await wait_for_types(
            stack,
            after,
            "dossier.submitted",
            "dossier.assigned",
            "dossier.approved",
            "notification.sent",
        )
        await mailbox.wait(1)
        await wait_for_types(stack, during, "dossier.submitted", "dossier.assigned")
    finally:
        stack.stop_all()
