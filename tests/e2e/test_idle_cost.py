"""An idle Motcua costs the database next to nothing, counted by the shared client's
`motcua_db_commands_total`: all four services together after a dossier went the whole way,
under one command a second; audit alone after a burst of 150 dossiers, under a fifth.

Both windows are measured at the services' production intervals, each on a stack of its own
(own vhost, own databases), at the same time: a window is a sleep, so the two cost the suite's
clock one window, not two.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.storage import mongo_client
from tests.amqp import publish_all
from tests.conftest import Isolation, _infra, isolated
from tests.e2e.conftest import service_env
from tests.e2e.flows import assigned_officer, decide, submit, token, wait_for_types
from tests.e2e.harness import SERVICES, Mailbox, Services, eventually, start_smtp
from tests.factories import dossier_events

pytestmark = pytest.mark.e2e

# Long enough for every background loop at its production interval to run in the window: the
# outbox relays (30 s) and audit's lease (renewed every 20 s) twice, review's timers and mover
# (15 s) four times, notify's sweep and the index gauges (60 s, not settings) once.
IDLE_SECONDS = 65.0
# Audit alone: its lease renewal (20 s) twice.
AUDIT_IDLE_SECONDS = 45.0
Counts = Counter[tuple[str, str, str]]


def database_commands(stack: Services, names: tuple[str, ...] = SERVICES) -> Counts:
    """(service, command, collection) → commands sent so far, read from each /metrics."""
    counts: Counts = Counter()
    for name in names:
        text = httpx.get(f"{stack.url(name)}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "motcua_db_commands_total":
                    labels = sample.labels
                    key = (labels["service"], labels["command"], labels["collection"])
                    counts[key] += int(sample.value)
    return counts


def breakdown(counts: Counts) -> str:
    return "\n".join(
        f"  {service:<7} {command:<14} {collection or '-':<24} {n:>5.0f}"
        for (service, command, collection), n in sorted(counts.items(), key=lambda kv: -kv[1])
    )


@dataclass
class Window:
    """What a stack sent the database while idle, and (for the message) what came before."""

    sent: Counts = field(default_factory=Counter)
    elapsed: float = 0.0
    steps: list[int] = field(default_factory=list)  # per 5 s of the window
    before: str = ""

    @property
    def rate(self) -> float:
        return sum(self.sent.values()) / self.elapsed


async def measure(stack: Services, seconds: float, names: tuple[str, ...]) -> Window:
    """Commands sent in `seconds` of nothing asked, sampled every 5 s."""
    samples = [await asyncio.to_thread(database_commands, stack, names)]
    started = time.monotonic()
    for _ in range(round(seconds / 5)):
        await asyncio.sleep(5)
        samples.append(await asyncio.to_thread(database_commands, stack, names))
    window = Window(samples[-1] - samples[0], time.monotonic() - started)
    window.steps = [sum((b - a).values()) for a, b in itertools.pairwise(samples)]
    return window


async def chained(isolation: Isolation, prefix: str, count: int | None = None) -> bool:
    """Audit holds no record still waiting to be chained (and `count` links of `prefix`)."""
    client = mongo_client(isolation.mongodb_url)
    try:
        db = client[isolation.database("audit")]
        if await db["pending"].count_documents({}):
            return False
        links = await db["chain"].count_documents({"dossier_code": {"$gte": prefix}})
        records = await db["records"].count_documents({"dossier_code": {"$gte": prefix}})
        return links == records and (count is None or links == count)
    finally:
        await client.close()


async def gauge_looked(stack: Services, key: tuple[str, str, str], before: int) -> bool:
    """Whether `stack` sent the command `key` more than `before` times so far."""
    counts = await asyncio.to_thread(database_commands, stack, ("audit",))
    return counts[key] > before


async def whole_stack_idle(isolation: Isolation, mailbox: Mailbox, logs: Path) -> Window:
    """The four services at their production intervals, idle once one dossier went the whole
    way (documents, submission, assignment, decision, notification) and audit chained it."""
    env = service_env(isolation, mailbox)
    del env["MOTCUA_OUTBOX_INTERVAL_SECONDS"]  # the relays' production interval
    stack = Services(env=env, logs=logs)
    try:
        await asyncio.to_thread(stack.start_all)
        code = await asyncio.to_thread(submit, stack)
        task_id, officer_id = await assigned_officer(stack, code)
        decided = await asyncio.to_thread(decide, stack, task_id, token(officer_id))
        assert decided.status_code == 200, decided.text
        await mailbox.wait(2)
        await wait_for_types(stack, code, "notification.sent", "dossier.approved")
        # The flow's last work: audit chains its records after a 10 s grace.
        await eventually(lambda: chained(isolation, ""), timeout=60, interval=0.5)
        await asyncio.sleep(2)  # the round that chained them ends
        return await measure(stack, IDLE_SECONDS, SERVICES)
    finally:
        await asyncio.to_thread(stack.stop_all)


async def audit_idle_after_a_burst(isolation: Isolation, mailbox: Mailbox, logs: Path) -> Window:
    """Audit at its production intervals (a 10 s grace, settling at most every 2 s, the lease
    renewed every 20 s), idle once a burst of 150 dossiers' events is chained."""
    stack = Services(env=service_env(isolation, mailbox), logs=logs)
    try:
        await asyncio.to_thread(stack.start, "audit")
        await asyncio.to_thread(stack.wait_ready, "audit")
        events = [e for i in range(150) for e in dossier_events(f"IDLE-{i}")]
        await publish_all(isolation.amqp_url, events)
        early = await asyncio.to_thread(database_commands, stack, ("audit",))
        began = time.monotonic()
        await eventually(
            lambda: chained(isolation, "IDLE-", len(events)), timeout=120, interval=0.5
        )
        await asyncio.sleep(3)  # the round that chained them ends
        # The burst's last work: the index gauges' next look (once a minute) finds the facts'
        # change count moved and reads the month again. Wait for that look, not to count the
        # burst's own read in the idle window (it flaked CI at 0.24/s when it fell inside).
        looked = await asyncio.to_thread(database_commands, stack, ("audit",))
        gauge_look = ("audit", "find", "fact_changes")
        await eventually(
            lambda: gauge_looked(stack, gauge_look, looked[gauge_look]), timeout=75, interval=1
        )
        await asyncio.sleep(2)  # its month read, in the same round
        window = await measure(stack, AUDIT_IDLE_SECONDS, ("audit",))
        now = await asyncio.to_thread(database_commands, stack, ("audit",))
        burst = sum((now - early).values()) - sum(window.steps)
        window.before = f"; {burst} in the {time.monotonic() - began:.0f} s of the burst"
        return window
    finally:
        await asyncio.to_thread(stack.stop_all)


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Window, Window]]:
    controller, mailbox = start_smtp()
    try:
        with isolated(_infra()) as whole, isolated(_infra()) as alone:

            async def both() -> tuple[Window, Window]:
                return await asyncio.gather(
                    whole_stack_idle(whole, mailbox, tmp_path_factory.mktemp("idle-whole")),
                    audit_idle_after_a_burst(alone, mailbox, tmp_path_factory.mktemp("idle-audit")),
                )

            yield asyncio.run(both())
    finally:
        controller.stop()


def check(window: Window, what: str, limit: float) -> None:
    print(f"{what}: {window.rate:.2f} commands/s, per 5 s {window.steps}")
    print(breakdown(window.sent))
    assert window.rate < limit, (
        f"{what}: idle for {window.elapsed:.0f}s, {sum(window.sent.values()):.0f} commands "
        f"({window.rate:.2f}/s, per 5 s {window.steps}{window.before}):\n{breakdown(window.sent)}"
    )


def test_an_idle_stack_sends_the_database_under_one_command_a_second(
    windows: tuple[Window, Window],
) -> None:
    check(windows[0], "the four services", 1.0)


def test_after_a_burst_audit_idles_at_under_a_fifth_of_a_command_a_second(
    windows: tuple[Window, Window],
) -> None:
    check(windows[1], "audit alone after a burst", 0.2)
