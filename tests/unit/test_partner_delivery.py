"""The partner sender over an in-memory store and a mock HTTP transport: each endpoint's
messages go in event order, signed over the exact bytes; a redelivered event sends nothing
twice; Retry-After holds the endpoint back; of two replicas, one disables a failing endpoint
and publishes its event once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from services.notify.endpoint_delivery import ConflictError, PartnerDelivery
from services.notify.endpoints import Endpoint, PartnerAccount, PartnerMessage, millis
from services.notify.partners import retry_after
from shared.contracts import Event
from shared.storage import Document
from tests.factories import approved_event, submitted_event
from tests.unit.test_partner_endpoints import endpoint

T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class FakeEndpoints:
    """The `Endpoints` port in memory, with the same version guards as the store."""

    def __init__(self, *endpoints: Endpoint) -> None:
        self.endpoints = {e.id: e for e in endpoints}
        self.docs: dict[str, Document] = {e.id: {"queued": 0, "lease_ms": 0} for e in endpoints}
        self.messages: dict[str, PartnerMessage] = {}
        self.attempts: list[Document] = []
        self.partners = {"p1": PartnerAccount("p1", "P", "p@x.vn", frozenset(), "h", T0, "a")}

    async def enabled_endpoints(self) -> list[Endpoint]:
        return [e for e in self.endpoints.values() if e.enabled]

    async def partner(self, partner_id: str) -> PartnerAccount | None:
        return self.partners.get(partner_id)

    async def queue(self, messages: list[PartnerMessage]) -> int:
        fresh = [m for m in messages if m.id not in self.messages]
        for m in fresh:
            self.messages[m.id] = m
        for m in messages:  # every endpoint woken, new messages or not (as the store does)
            await self.wake(m.endpoint_id, m.ready_ms)
        return len(fresh)

    async def wake(self, endpoint_id: str, now_ms: int) -> None:
        doc = self.docs[endpoint_id]
        doc["due_ms"] = min(doc.get("due_ms", now_ms), now_ms)
        doc["queued"] += 1

    async def due(self, now_ms: int, *, limit: int) -> list[Document]:
        return [
            {"_id": i, **d} for i, d in self.docs.items() if d.get("due_ms", now_ms + 1) <= now_ms
        ]

    async def next_due_ms(self) -> int | None:
        return min((d["due_ms"] for d in self.docs.values() if "due_ms" in d), default=None)

    async def claim(self, endpoint_id: str, owner: str, *, now_ms: int, lease_ms: int) -> bool:
        doc = self.docs[endpoint_id]
        if doc["lease_ms"] >= now_ms:
            return False
        doc |= {"lease_ms": now_ms + lease_ms, "owner": owner}
        return True

    async def release(self, endpoint_id: str, owner: str) -> None:
        if self.docs[endpoint_id].get("owner") == owner:
            self.docs[endpoint_id]["lease_ms"] = 0

    async def later(self, endpoint_id: str, due_ms: int) -> None:
        self.docs[endpoint_id]["due_ms"] = due_ms

    async def idle(self, endpoint_id: str, queued: int) -> bool:
        if self.docs[endpoint_id]["queued"] != queued:
            return False
        self.docs[endpoint_id].pop("due_ms", None)
        return True

    async def failing_count(self) -> int:
        return sum(1 for e in self.endpoints.values() if e.enabled and e.failing_since_ms)

    async def endpoint(self, endpoint_id: str) -> Endpoint | None:
        return self.endpoints.get(endpoint_id)

    async def endpoint_doc(self, endpoint_id: str) -> Document | None:
        from services.notify.endpoint_store import endpoint_fields

        e = self.endpoints.get(endpoint_id)
        if e is None:
            return None
        return {"_id": e.id, "created_at": e.created_at, **endpoint_fields(e), **self.docs[e.id]}

    async def head(self, endpoint_id: str) -> PartnerMessage | None:
        pending = [
            m
            for m in self.messages.values()
            if m.endpoint_id == endpoint_id and m.state == "pending"
        ]
        return min(pending, key=lambda m: m.seq, default=None)

    async def save_message(self, previous: PartnerMessage, new: PartnerMessage) -> bool:
        if self.messages[new.id].version != previous.version:
            return False
        self.messages[new.id] = replace(new, version=previous.version + 1)
        return True

    async def save_endpoint(
        self,
        previous: Endpoint,
        new: Endpoint,
        *,
        events: Iterable[Event] = (),
        loaded: Document | None = None,
    ) -> bool:
        if self.endpoints[new.id].version != previous.version:
            return False
        self.endpoints[new.id] = replace(new, version=previous.version + 1)
        return True

    async def fail_pending(self, endpoint_id: str, reason: str, at: datetime) -> int:
        moved = 0
        for m in list(self.messages.values()):
            if m.endpoint_id == endpoint_id and m.state == "pending":
                self.messages[m.id] = replace(
                    m, state="failed", failed_at=at, version=m.version + 1
                )
                moved += 1
        return moved

    async def recover(self, endpoint_id: str, since: datetime) -> int:
        moved = 0
        for m in sorted(self.messages.values(), key=lambda m: m.seq):
            failed = m.endpoint_id == endpoint_id and m.state == "failed"
            if failed and m.failed_at is not None and m.failed_at >= since:
                again = replace(
                    m, state="pending", try_limit=m.tries + 1, recovered=m.recovered + 1
                )
                moved += await self.save_message(m, again)
        return moved

    async def log_attempt(self, attempt: Document, at: datetime) -> None:
        self.attempts.append({**attempt, "at": at})


def an_endpoint(**changes: Any) -> Endpoint:
    return endpoint(rate_limit_per_second=100.0, **changes)


def sender(
    store: FakeEndpoints, answers: list[httpx.Response], seen: list[httpx.Request]
) -> tuple[PartnerDelivery, list[list[Event]]]:
    settled: list[list[Event]] = []

    def reply(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers.pop(0) if answers else httpx.Response(200)

    async def settle(endpoint_id: str, events: list[Event]) -> object:
        settled.append(events)
        return None

    delivery = PartnerDelivery(
        store=store,
        client=httpx.AsyncClient(transport=httpx.MockTransport(reply)),
        clock=lambda: T0,
        settle=settle,
        source="urn:notify",
        tries=2,
        retry_base=timedelta(seconds=1),
        retry_cap=timedelta(hours=1),
        lease=timedelta(seconds=30),
    )
    return delivery, settled


async def drain(delivery: PartnerDelivery, store: FakeEndpoints) -> None:
    assert await store.claim("ep_1", delivery.owner, now_ms=millis(T0), lease_ms=30_000)
    await delivery.drain("ep_1")
    await store.release("ep_1", delivery.owner)


async def test_messages_go_in_event_order_signed_once_each() -> None:
    endpoint = an_endpoint()
    store = FakeEndpoints(endpoint)
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [], seen)
    submitted = submitted_event()
    approved = approved_event(submitted).model_copy(
        update={"time": submitted.time + timedelta(seconds=1)}
    )
    await delivery(approved)  # handled first, happened second
    await delivery(submitted)
    await delivery(submitted)  # a redelivery: no second message
    await drain(delivery, store)
    assert [r.read() for r in seen] == [
        store.messages[f"ep_1:{e.id}"].body for e in (submitted, approved)
    ]
    for request in seen:
        Webhook(endpoint.keys.current).verify(request.read(), dict(request.headers))
    assert "due_ms" not in store.docs["ep_1"]  # idle: nothing left


async def test_retry_after_holds_the_endpoint_back() -> None:
    store = FakeEndpoints(an_endpoint())
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [httpx.Response(429, headers={"Retry-After": "120"})], seen)
    await delivery(submitted_event())
    await drain(delivery, store)
    assert len(seen) == 1
    assert store.docs["ep_1"]["due_ms"] == millis(T0 + timedelta(seconds=120))
    [attempt] = store.attempts
    assert (attempt["status"], attempt["outcome"], attempt["try"]) == (429, "failed", 1)


async def test_of_two_replicas_one_disables_a_failing_endpoint_and_publishes_once() -> None:
    days_ago = millis(T0 - timedelta(days=5, hours=1))
    store = FakeEndpoints(an_endpoint(failing_since_ms=days_ago))
    seen: list[httpx.Request] = []
    first, settled_first = sender(store, [httpx.Response(503)] * 4, seen)
    second, settled_second = sender(store, [httpx.Response(503)] * 4, seen)
    await first(submitted_event())
    await drain(first, store)
    store.docs["ep_1"]["due_ms"] = millis(T0)  # as if it woke the other replica too
    await drain(second, store)
    assert len(seen) == 1
    assert not store.endpoints["ep_1"].enabled
    assert store.endpoints["ep_1"].disabled_reason == "failing"
    assert [len(s) for s in settled_first + settled_second] == [1]
    [event] = settled_first[0]
    assert event.type == "partner.endpoint_disabled"


def test_an_unreadable_retry_after_is_ignored_and_a_huge_one_capped() -> None:
    cap = timedelta(hours=1)
    assert retry_after("99999999999999999999", T0, cap=cap) == cap
    assert retry_after("²", T0, cap=cap) is None  # a digit to str.isdigit, not to int()
    assert retry_after("Wed, 99 Foo 2026 99:99:99 GMT", T0, cap=cap) is None
    assert retry_after("30", T0, cap=cap) == timedelta(seconds=30)


async def test_a_url_httpx_cannot_send_to_is_one_failed_attempt_not_a_tight_loop() -> None:
    store = FakeEndpoints(an_endpoint(url="http://partner.example:abc/hook"))
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [], seen)
    delivery.retry_base = timedelta(seconds=30)
    await delivery(submitted_event())
    await drain(delivery, store)
    assert seen == []
    [attempt] = store.attempts  # logged, counted, and the retry waits its backoff
    assert attempt["outcome"] == "failed" and attempt["error"]
    [message] = store.messages.values()
    assert (message.tries, message.state) == (1, "pending")
    assert store.docs["ep_1"]["due_ms"] > millis(T0)


async def test_a_scope_taken_away_takes_its_fields_out_of_what_is_still_sent() -> None:
    endpoint = an_endpoint()
    store = FakeEndpoints(endpoint)
    store.partners["p1"] = replace(store.partners["p1"], scopes=frozenset({"personal_data"}))
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [], seen)
    submitted = submitted_event()
    await delivery(submitted)
    [queued] = store.messages.values()
    assert submitted.data.applicant.personal_id in queued.body.decode()
    store.partners["p1"] = replace(store.partners["p1"], scopes=frozenset())  # revoked
    await drain(delivery, store)
    [request] = seen
    sent = request.read()
    assert submitted.data.applicant.personal_id not in sent.decode()
    assert submitted.data.applicant.phone not in sent.decode()
    Webhook(endpoint.keys.current).verify(sent, dict(request.headers))  # signed as sent
    assert submitted.data.applicant.personal_id not in store.messages[queued.id].body.decode()


async def test_a_resend_keeps_a_waiting_messages_tries_and_a_disabled_endpoint_refuses_it() -> None:
    store = FakeEndpoints(an_endpoint())
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [httpx.Response(503), httpx.Response(503)], seen)
    delivery.tries = 8
    delivery.retry_base = timedelta(seconds=30)  # the retry is the loop's, not drain's
    await delivery(submitted_event())
    await drain(delivery, store)  # try 1 of 8 failed: waiting for its retry
    [waiting] = store.messages.values()
    assert (waiting.tries, waiting.try_limit, waiting.state) == (1, 8, "pending")
    again = await delivery.resend(waiting)  # fails too
    assert (again.tries, again.try_limit, again.state) == (2, 8, "pending")  # the rest kept
    store.endpoints["ep_1"] = replace(store.endpoints["ep_1"], enabled=False)
    with pytest.raises(ConflictError, match="disabled"):
        await delivery.resend(store.messages[again.id])
    assert len(seen) == 2


async def test_recover_sends_again_what_failed_since_then_once_and_a_redelivery_wakes() -> None:
    store = FakeEndpoints(an_endpoint())
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [httpx.Response(500)] * 2, seen)
    submitted = submitted_event()
    await delivery(submitted)
    await drain(delivery, store)
    store.docs["ep_1"]["due_ms"] = millis(T0)
    await drain(delivery, store)  # 2 tries of 2: failed for good
    [failed] = store.messages.values()
    assert failed.state == "failed" and failed.failed_at == T0
    assert await delivery.recover(store.endpoints["ep_1"], T0 + timedelta(seconds=1)) == 0
    assert await delivery.recover(store.endpoints["ep_1"], T0 - timedelta(days=1)) == 1
    assert await delivery.recover(store.endpoints["ep_1"], T0 - timedelta(days=1)) == 0  # once
    await drain(delivery, store)
    assert len(seen) == 3 and store.messages[failed.id].state == "delivered"
    # A crash between storing a message and waking its endpoint: the redelivery wakes it.
    store.docs["ep_1"].pop("due_ms", None)
    await delivery(approved_event(submitted))
    await delivery(approved_event(submitted))
    assert "due_ms" in store.docs["ep_1"]


async def test_a_send_connects_to_the_address_checked_not_to_a_second_lookup() -> None:
    """DNS rebinding: the name answered a public address to the check; the connection goes
    there, whatever the name answers a moment later, with the URL's Host and TLS name."""
    endpoint = an_endpoint()
    store = FakeEndpoints(endpoint)
    seen: list[httpx.Request] = []
    delivery, _ = sender(store, [], seen)
    checks: list[str] = []

    async def checked(url: str) -> list[str]:
        checks.append(url)
        return ["203.0.113.7", "203.0.113.8"]

    delivery.check_url = checked
    await delivery(submitted_event())
    await drain(delivery, store)
    [request] = seen
    assert checks == [endpoint.url]  # at the send itself
    assert (request.url.host, request.url.path) == ("203.0.113.7", "/hook")
    assert request.headers["host"] == "partner.example"
    assert request.extensions["sni_hostname"] == "partner.example"
    Webhook(endpoint.keys.current).verify(request.read(), dict(request.headers))
