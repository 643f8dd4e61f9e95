"""Delivery to the partners' API-managed endpoints: a consumer with its own queue
(`motcua.notify.partners`) turns each event into one message per subscribed endpoint, and a
sender loop sends each endpoint's messages in order, at its rate limit, one replica at a time
per endpoint (a lease on the endpoint document, taken by a conditional update).

Everything is at least once and idempotent by event id: a redelivered event finds its messages
stored (their key is endpoint × event) and a resent message carries the same `webhook-id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import httpx
from prometheus_client import Counter, Gauge

from services.notify.endpoint_store import endpoint_of
from services.notify.endpoints import (
    EXCERPT,
    Answer,
    Endpoint,
    PartnerAccount,
    PartnerMessage,
    after_attempt,
    excerpt,
    millis,
    new_message,
    subscribable,
    wants,
    webhook_id,
)
from services.notify.messages import Message, SendError
from services.notify.partners import UnsafeEndpoint, retry_after, signature_header
from shared.clock import Clock
from shared.contracts import Event, PartnerEndpointDisabled
from shared.contracts.projections import narrow_json
from shared.contracts.registry import EVENT_TYPES
from shared.storage import Document

log = logging.getLogger(__name__)

QUEUE = "motcua.notify.partners"
DELIVERIES = Counter(
    "motcua_partner_deliveries_total",
    "Attempts to deliver a message to a partner endpoint, by outcome (delivered, failed, gone).",
    ["endpoint", "outcome"],
)
DISABLED = Counter(
    "motcua_partner_endpoints_disabled_total",
    "Partner endpoints disabled by their answers (reason: gone = 410, failing = days without "
    "a success).",
    ["reason"],
)
FAILING = Gauge(
    "motcua_partner_endpoints_failing",
    "Enabled partner endpoints whose last attempts failed (no success since), as of the "
    "sender's last round.",
)
IDLE_SECONDS = 30.0  # the longest the sender sleeps with nothing due (another replica's crash)
RUNNING_AT_ONCE = 8  # endpoints one replica sends to at once
LONGEST_INLINE_WAIT = timedelta(seconds=2)  # a longer wait hands the endpoint back to the loop
FAULT_PAUSE = timedelta(seconds=5)  # after a fault of ours while sending, before the next look

SendMail = Callable[[Message], Awaitable[str]]
Settle = Callable[[str, list[Event]], Awaitable[object]]
"""Publish the events an endpoint's write recorded in its inline outbox, then clear them."""


class Endpoints(Protocol):
    """What the consumer and the sender need of the store (endpoint_store.EndpointStore)."""

    async def enabled_endpoints(self) -> list[Endpoint]: ...
    async def partner(self, partner_id: str) -> PartnerAccount | None: ...
    async def queue(self, messages: list[PartnerMessage]) -> int: ...
    async def wake(self, endpoint_id: str, now_ms: int) -> None: ...
    async def due(self, now_ms: int, *, limit: int) -> list[Document]: ...
    async def next_due_ms(self) -> int | None: ...
    async def claim(self, endpoint_id: str, owner: str, *, now_ms: int, lease_ms: int) -> bool: ...
    async def release(self, endpoint_id: str, owner: str) -> None: ...
    async def later(self, endpoint_id: str, due_ms: int) -> None: ...
    async def idle(self, endpoint_id: str, queued: int) -> bool: ...
    async def failing_count(self) -> int: ...
    async def endpoint(self, endpoint_id: str) -> Endpoint | None: ...
    async def endpoint_doc(self, endpoint_id: str) -> Document | None: ...
    async def head(self, endpoint_id: str) -> PartnerMessage | None: ...
    async def save_message(self, previous: PartnerMessage, new: PartnerMessage) -> bool: ...
    async def save_endpoint(
        self,
        previous: Endpoint,
        new: Endpoint,
        *,
        events: Iterable[Event] = (),
        loaded: Document | None = None,
    ) -> bool: ...
    async def fail_pending(self, endpoint_id: str, reason: str, at: datetime) -> int: ...
    async def recover(self, endpoint_id: str, since: datetime) -> int: ...
    async def log_attempt(self, attempt: Document, at: datetime) -> None: ...


OPERATIONAL = ["partner.endpoint_disabled"]  # always bound: its people are told


def bindings() -> list[str]:
    """The events an endpoint may take, and the operational event whose people are told."""
    known = set(EVENT_TYPES)
    return sorted({t for t in known if subscribable(t, known)} | set(OPERATIONAL))


class Binder(Protocol):
    async def bind(self, queue: str, routing_keys: Sequence[str]) -> None: ...

    async def unbind(self, queue: str, routing_keys: Sequence[str]) -> None: ...


@dataclass
class Subscriptions:
    """The partner queue is bound only to the event types some enabled endpoint takes (and
    the operational one), so a province with few partners does not read every event twice.

    An endpoint's types are bound after its write (`follow`), before its creation or update is
    answered. Nothing is unbound then: a type bound for nothing costs a consumption, a type
    unbound for an endpoint would lose its events. `reconcile`, at start, unbinds the types no
    endpoint takes, then reads the endpoints again and binds theirs: an endpoint written after
    that second read binds its own types after its write, so after that unbind."""

    binder: Binder
    store: Endpoints
    queue: str = QUEUE

    async def wanted(self) -> set[str]:
        return {t for e in await self.store.enabled_endpoints() for t in e.event_types}

    async def follow(self, event_types: Iterable[str]) -> None:
        """Bind every one of `event_types`, even if this replica bound it before: another
        replica's start may have unbound it since (no endpoint took it then)."""
        await self.binder.bind(self.queue, sorted(set(event_types)))

    async def reconcile(self) -> None:
        unwanted = sorted(set(bindings()) - set(OPERATIONAL) - await self.wanted())
        await self.binder.unbind(self.queue, unwanted)
        await self.follow(await self.wanted())


@dataclass
class PartnerDelivery:
    """The consumer (`__call__`) and the sender (`run_forever`) of partner endpoints."""

    store: Endpoints
    client: httpx.AsyncClient
    clock: Clock
    settle: Settle
    source: str
    tries: int
    retry_base: timedelta
    retry_cap: timedelta
    lease: timedelta
    window: timedelta = timedelta(0)
    check_url: Callable[[str], Awaitable[list[str]]] | None = None
    """Refuses an unsafe URL; returns the addresses it checked, one of which a send uses."""
    send_mail: SendMail | None = None
    operators_email: str = ""
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    active: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    # --- the consumer -----------------------------------------------------------------------

    async def __call__(self, event: Event) -> None:
        if isinstance(event, PartnerEndpointDisabled):
            await self.tell(event)
            return
        now = self.clock()
        endpoints = [e for e in await self.store.enabled_endpoints() if wants(e, event)]
        partners: dict[str, PartnerAccount | None] = {}
        messages = []
        for endpoint in endpoints:
            if endpoint.partner_id not in partners:
                partners[endpoint.partner_id] = await self.store.partner(endpoint.partner_id)
            partner = partners[endpoint.partner_id]
            if partner is None:  # deleted a moment ago
                continue
            messages.append(
                new_message(
                    endpoint, event, partner.scopes, tries=self.tries, now=now, window=self.window
                )
            )
        await self.store.queue(messages)
        if messages:
            self.wake.set()

    async def tell(self, event: PartnerEndpointDisabled) -> None:
        """The partner's contact and the operators learn that an endpoint was disabled (the
        same Message-ID on a redelivery: a mail client shows one)."""
        if self.send_mail is None:
            return
        data = event.data
        partner = await self.store.partner(data.partner_id)
        to = [a for a in (partner.contact_email if partner else "", self.operators_email) if a]
        why = "it answered 410 Gone" if data.reason == "gone" else "it kept failing for 5 days"
        text = (
            f"Motcua stopped delivering events to the endpoint {data.endpoint_id} "
            f"({data.url}) of partner {data.partner_id}: {why}. Fix it, enable it again, and "
            "recover what failed since it broke (POST …/recover).\n\n"
            f"Motcua đã ngừng gửi sự kiện tới điểm nhận {data.endpoint_id} của đối tác "
            f"{data.partner_id}. Vui lòng khắc phục, bật lại và yêu cầu gửi lại."
        )
        for index, address in enumerate(sorted(set(to))):
            mail = Message(
                channel="email",
                to=address,
                tracking_id=f"{event.id}.{index}",
                subject=f"Motcua: partner endpoint {data.endpoint_id} disabled",
                text=text,
            )
            try:
                await self.send_mail(mail)
            except SendError as exc:  # retried (then dead-lettered) by the consumer
                raise RuntimeError(f"telling {address} failed: {exc}") from exc

    # --- the sender -------------------------------------------------------------------------

    async def run_forever(self) -> None:
        """Start a sender for each due endpoint; sleep until the next is due or work comes."""
        while True:
            try:
                self.wake.clear()
                pause = await self.round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), pause)
            except asyncio.CancelledError:
                for task in self.active.values():
                    task.cancel()
                raise
            except Exception:  # the database away for a moment: try again shortly
                log.exception("partner delivery round failed")
                await asyncio.sleep(2)

    async def round(self) -> float:
        """Start senders for the due endpoints; the seconds until the loop should look again."""
        now_ms = millis(self.clock())
        for doc in await self.store.due(now_ms, limit=100):
            endpoint_id = doc["_id"]
            busy = endpoint_id in self.active or int(doc.get("lease_ms") or 0) >= now_ms
            if busy or len(self.active) >= RUNNING_AT_ONCE:
                continue
            if await self.store.claim(
                endpoint_id, self.owner, now_ms=now_ms, lease_ms=millis_of(self.lease)
            ):
                task = asyncio.create_task(self._drain(endpoint_id), name=f"partner-{endpoint_id}")
                self.active[endpoint_id] = task
        FAILING.set(await self.store.failing_count())
        upcoming = await self.store.next_due_ms()
        if upcoming is None or upcoming <= now_ms:
            return IDLE_SECONDS  # senders wake the loop when they finish
        return min(IDLE_SECONDS, max(0.05, (upcoming - now_ms) / 1000))

    async def _drain(self, endpoint_id: str) -> None:
        try:
            await self.drain(endpoint_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sending to partner endpoint failed", extra={"endpoint": endpoint_id})
            with contextlib.suppress(Exception):  # not again at once: the loop comes back later
                await self.store.later(endpoint_id, millis(self.clock() + FAULT_PAUSE))
        finally:
            self.active.pop(endpoint_id, None)
            with contextlib.suppress(Exception):
                await self.store.release(endpoint_id, self.owner)
            self.wake.set()

    async def drain(self, endpoint_id: str) -> None:
        """Send the endpoint's messages in order while it holds the lease (claimed by `round`),
        waiting between them for its rate limit; a longer wait (a retry) is left to the loop."""
        deadline = time.monotonic() + self.lease.total_seconds() / 2
        while time.monotonic() < deadline:
            doc = await self.store.endpoint_doc(endpoint_id)
            if doc is None:
                return
            endpoint = endpoint_of(doc)
            if not endpoint.enabled:
                await self.store.idle(endpoint_id, int(doc.get("queued", 0)))
                return
            wait_ms = endpoint.next_send_ms - millis(self.clock())
            if wait_ms > millis_of(LONGEST_INLINE_WAIT):
                await self.store.later(endpoint_id, endpoint.next_send_ms)
                return
            if wait_ms > 0:
                await asyncio.sleep(wait_ms / 1000)
            head = await self.store.head(endpoint_id)
            if head is None:
                if await self.store.idle(endpoint_id, int(doc.get("queued", 0))):
                    return
                continue  # work came meanwhile
            if head.ready_ms > millis(self.clock()):  # an earlier event may still come
                await self.store.later(endpoint_id, head.ready_ms)
                return
            await self.attempt(endpoint, head, loaded=doc)

    async def attempt(
        self, endpoint: Endpoint, message: PartnerMessage, *, loaded: Document
    ) -> PartnerMessage:
        """One try of `message`: counted first (a crash mid-send counts it), sent, logged, and
        its outcome recorded on the message and the endpoint."""
        trying = replace(message, tries=message.tries + 1)
        if not await self.store.save_message(message, trying):
            return message  # a resend or recovery moved it meanwhile: look again
        trying = replace(trying, version=message.version + 1)
        partner = await self.store.partner(message.partner_id)
        if partner is None:  # deleted meanwhile: nothing goes to it any more
            answer = Answer(None, "", 0, error="the partner was deleted")
        else:  # as the partner may see it now: a scope taken away since takes its fields out
            trying = replace(
                trying, body=narrow_json(trying.body, trying.event_type, partner.scopes)
            )
            answer = await self.post(endpoint, trying)
        now = self.clock()
        DELIVERIES.labels(endpoint.id, answer.outcome).inc()
        await self.store.log_attempt(
            {
                "endpoint_id": endpoint.id,
                "message_id": trying.id,
                "webhook_id": webhook_id(trying.id),
                "event_id": trying.event_id,
                "event_type": trying.event_type,
                "dossier": trying.dossier,
                "try": trying.tries,
                "status": answer.status,
                "outcome": answer.outcome,
                "latency_ms": answer.latency_ms,
                "response": answer.excerpt,
                "error": answer.error,
            },
            now,
        )
        step = after_attempt(
            trying,
            endpoint,
            answer,
            now=now,
            base=self.retry_base,
            cap=self.retry_cap,
            source=self.source,
        )
        await self.store.save_message(trying, step.message)
        events: list[Event] = [step.disabled] if step.disabled else []
        if not await self.store.save_endpoint(
            endpoint, step.endpoint, events=events, loaded=loaded
        ):
            return step.message  # an edit came first: the next round reads it
        if step.disabled is not None:
            reason = step.endpoint.disabled_reason or "failing"
            DISABLED.labels(reason).inc()
            log.warning("partner endpoint disabled (%s)", reason, extra={"endpoint": endpoint.id})
            await self.store.fail_pending(
                endpoint.id, f"endpoint disabled ({reason})", self.clock()
            )
            with contextlib.suppress(Exception):  # the relay publishes it if this fails
                await self.settle(endpoint.id, events)
        return step.message

    async def post(self, endpoint: Endpoint, message: PartnerMessage) -> Answer:
        """POST the message's exact bytes, signed by every active secret of the endpoint. The
        timestamp is the wall clock's (receivers check it against theirs)."""
        timestamp = int(time.time())
        msg_id = webhook_id(message.id)
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                endpoint.keys.active(self.clock()), msg_id, timestamp, message.body
            ),
        }
        started = time.perf_counter()
        try:
            # One deadline for the whole call, the name's lookup included: httpx's timeout is
            # per read, so an answer trickled a byte at a time would hold the lease for hours.
            async with asyncio.timeout(self.lease.total_seconds() / 3):
                checked: list[str] = []
                if self.check_url is not None:  # again at each send: the name may resolve anew
                    checked = await self.check_url(endpoint.url)
                request = pinned(
                    self.client.build_request(
                        "POST", endpoint.url, content=message.body, headers=headers
                    ),
                    checked,
                )
                response = await self.client.send(request, stream=True)
                try:  # the excerpt only: a partner's huge answer is never read whole
                    head = b""
                    async for chunk in response.aiter_bytes():
                        head += chunk
                        if len(head) >= 4 * EXCERPT:
                            break
                finally:
                    await response.aclose()
        except UnsafeEndpoint as exc:
            return Answer(None, "", _since(started), error=f"refused: {exc}")
        except TimeoutError:
            return Answer(None, "", _since(started), error="no whole answer in time")
        except Exception as exc:
            # Whatever the partner's URL or answer is, it is this attempt's failure: never an
            # error that skips the attempt's log and retries at once.
            return Answer(None, "", _since(started), error=f"{type(exc).__name__}: {exc}")
        wait = retry_after(response.headers.get("retry-after"), self.clock(), cap=self.retry_cap)
        text = head.decode("utf-8", errors="replace")
        return Answer(response.status_code, excerpt(text), _since(started), wait=wait)

    # --- operators' and partners' requests --------------------------------------------------

    async def resend(self, message: PartnerMessage) -> PartnerMessage:
        """Send one message again now, once, outside the endpoint's order (as asked)."""
        endpoint = await self.store.endpoint(message.endpoint_id)
        doc = await self.store.endpoint_doc(message.endpoint_id)
        if endpoint is None or doc is None:
            raise LookupError(message.endpoint_id)
        if not endpoint.enabled:
            raise ConflictError(f"endpoint {endpoint.id} is disabled: enable it first")
        # One more try than it had; a message still waiting for its retry keeps the rest.
        limit = max(message.try_limit, message.tries + 1) if message.state == "pending" else 0
        again = replace(message, try_limit=limit or message.tries + 1, state="pending")
        if not await self.store.save_message(message, again):
            raise ConflictError(message.id)
        again = replace(again, version=message.version + 1)
        return await self.attempt(endpoint, again, loaded=doc)

    async def recover(self, endpoint: Endpoint, since_at: datetime) -> int:
        """Queue every failed message since `since_at` again; the sender sends them."""
        moved = await self.store.recover(endpoint.id, since_at)
        if moved:
            await self.store.wake(endpoint.id, millis(self.clock()))
            self.wake.set()
        return moved


class ConflictError(Exception):
    """The message moved meanwhile (another resend, the sender)."""


def pinned(request: httpx.Request, checked: list[str]) -> httpx.Request:
    """`request` sent to the first address that was checked, not to the name (which a DNS
    answer with no lifetime could point inside our network between the check and the connect):
    the Host header and, over TLS, the name sent and verified stay the URL's."""
    if not checked or request.url.host in checked:
        return request
    url = request.url
    headers = request.headers.copy()
    headers["Host"] = url.netloc.decode("ascii")
    extensions = dict(request.extensions)
    if url.scheme == "https":
        extensions["sni_hostname"] = url.host
    return httpx.Request(
        request.method,
        url.copy_with(host=checked[0]),
        headers=headers,
        content=request.content,
        extensions=extensions,
    )


def millis_of(span: timedelta) -> int:
    return int(span.total_seconds() * 1000)


def _since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
