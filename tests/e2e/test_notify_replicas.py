"""Two replicas of notify consuming one queue at once: still one message per delivery, one
resend per double click, and every outcome reported once (same event id if reported again)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.amqp import observe
from tests.conftest import Isolation
from tests.e2e.harness import Mailbox, Services, eventually
from tests.e2e.test_notify_channels import (
    LEASE,
    Providers,
    bearer,
    deliveries,
    notifications,
    notify_service,
    providers,  # noqa: F401  (a fixture)
    publish,
    submitted,
)
from tests.factories import approved_event

pytestmark = pytest.mark.e2e


@pytest.fixture
def replicas(
    isolation: Isolation,
    mailbox: Mailbox,
    providers: Providers,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Services]:
    with notify_service(isolation, mailbox, providers, tmp_path) as stack:
        stack.start("notify#2")
        stack.wait_ready("notify#2")
        yield stack


def _handled(stack: Services, name: str) -> float:
    """How many events replica `name` handled (its own metrics)."""
    lines = httpx.get(f"{stack.url(name)}/metrics").text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith("motcua_events_consumed_total") and 'outcome="handled"' in line
    )


async def test_two_replicas_send_each_delivery_once_whatever_copies_arrive(
    replicas: Services,
    isolation: Isolation,
    providers: Providers,  # noqa: F811
) -> None:
    codes = [f"G01.99-260609-{n:04d}" for n in range(20, 32)]
    firsts = [submitted(code, notify_by=["sms", "zalo"]) for code in codes]
    decisions = [approved_event(first) for first in firsts]
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, *firsts)
        await publish(isolation, *decisions, *decisions)  # every approval twice
        expected = 3 * len(codes)  # SMS, Zalo and the partner's webhook of each approval
        await eventually(
            lambda: len({e["id"] for e in seen.events("notification.sent")}) >= expected,
            timeout=60,
        )
        await asyncio.sleep(LEASE + 1)  # copies that found a send under way look again
    assert len(providers.sms.requests) == len(codes)
    assert len(providers.zalo.requests) == len(codes)
    assert len([r for r in providers.partner.requests if b"dossier.approved" in r.body]) == len(
        codes
    )
    sent = seen.events("notification.sent")
    assert len({e["id"] for e in sent}) == expected  # a repeat carries the same id
    assert seen.events("notification.failed") == []
    assert _handled(replicas, "notify") > 0 and _handled(replicas, "notify#2") > 0
    for code in codes:
        log = deliveries(replicas, code)
        assert sorted((d["channel"], d["status"], d["attempts"]) for d in log) == [
            ("sms", "sent", 1),
            ("webhook", "sent", 1),
            ("zalo", "sent", 1),
        ]


async def test_a_double_click_on_two_replicas_resends_once(
    replicas: Services,
    isolation: Isolation,
    providers: Providers,  # noqa: F811
) -> None:
    code = "G01.99-260609-0040"
    first = submitted(code, notify_by=["sms"])
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, first, approved_event(first))
        [delivery] = await eventually(
            lambda: [
                d
                for d in deliveries(replicas, code)
                if (d["channel"], d["status"]) == ("sms", "sent")
            ]
        )
        providers.sms.delay = 0.5  # the first resend is still at the provider
        async with httpx.AsyncClient() as client:
            clicks = await asyncio.gather(
                *(
                    client.post(
                        f"{replicas.url(name)}/v1/deliveries/{delivery['id']}/resend",
                        headers=bearer("admin"),
                    )
                    for name in ("notify", "notify#2")
                )
            )
        assert sorted(c.status_code for c in clicks) == [200, 409], [c.text for c in clicks]
        await eventually(lambda: len(notifications(seen, code, "sent", "sms")) == 2)
    assert len(providers.sms.requests) == 2  # the original and one resend
    log = [d for d in deliveries(replicas, code) if d["channel"] == "sms"]
    assert sorted(d["id"] for d in log) == [delivery["id"], f"{delivery['id']}:resend1"]


async def test_a_replica_dying_mid_send_leaves_its_deliveries_to_the_other_sent_once_each(
    replicas: Services,
    isolation: Isolation,
    providers: Providers,  # noqa: F811
) -> None:
    replicas.kill("notify#2")
    replicas.start("notify#2", MOTCUA_FAULT_POINTS="notify.send.after_provider")
    replicas.wait_ready("notify#2")
    codes = [f"G01.99-260609-{n:04d}" for n in range(50, 58)]
    firsts = [
        submitted(code, notify_by=["sms"], phone=f"+849111111{n:02d}")
        for n, code in enumerate(codes)
    ]
    async with observe(isolation.amqp_url) as seen:
        await publish(isolation, *firsts, *(approved_event(first) for first in firsts))
        # The second replica halts after its provider took a message, before recording it.
        await eventually(lambda: "fault point reached" in replicas.log("notify#2"))
        replicas.kill("notify#2")  # its messages go back to the queue, to the first replica
        await eventually(
            lambda: len({e["id"] for e in seen.events("notification.sent")}) >= 2 * len(codes),
            timeout=60,
        )
        await asyncio.sleep(2)  # room for a duplicate, if there were one
    sent = seen.events("notification.sent")
    assert len({e["id"] for e in sent}) == 2 * len(codes)  # SMS and webhook of each approval
    for n, code in enumerate(codes):
        tries = providers.sms.matching(f"849111111{n:02d}")
        # Sent once, or (cut short by the crash) again with the same reference to drop it by.
        assert 1 <= len(tries) <= 2 and len({t.json()["reference"] for t in tries}) == 1
        log = deliveries(replicas, code)
        assert sorted((d["channel"], d["status"]) for d in log) == [
            ("sms", "sent"),
            ("webhook", "sent"),
        ]
    hooks = [r for r in providers.partner.requests if b"dossier.approved" in r.body]
    assert len({h.headers["webhook-id"] for h in hooks}) == len(codes)
