"""Builds notify from its settings; the only place that wires adapters."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI
from pydantic import TypeAdapter

from services.notify import endpoint_delivery, handlers
from services.notify.api import router
from services.notify.catalogue_api import router as catalogue_router
from services.notify.channels import (
    Channel,
    SmsChannel,
    SmtpChannel,
    WebhookChannel,
    ZaloChannel,
)
from services.notify.consumer import NotifyConsumer, table
from services.notify.domain import backoff_delays
from services.notify.endpoint_store import ENDPOINTS, EndpointStore
from services.notify.inbound import Inbound, answering
from services.notify.inbound_store import InboundStore
from services.notify.national import app as dvcqg
from services.notify.partner_accounts import Accounts, UrlPolicy, check_url
from services.notify.partner_api import router as partner_router
from services.notify.ports import Notifier
from services.notify.retries import RetryQueues
from services.notify.routing import Partner, Routing
from services.notify.settings import NotifySettings
from services.notify.store import NotifyStore
from services.notify.templates import Templates
from shared import web
from shared.clock import Clock, shifted
from shared.contracts import Event
from shared.outbox import Outbox
from shared.runtime import Runtime

log = logging.getLogger(__name__)
QUEUE = "motcua.notify"


def load_routing(path: Path) -> Routing:
    return Routing.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def load_partners(path: Path | None) -> list[Partner]:
    if path is None:
        return []
    raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return TypeAdapter(list[Partner]).validate_python(raw.get("partners", []))


def check_routes(routing: Routing, templates: Templates) -> list[str]:
    """What in the routing table cannot work: a missing template or Zalo template id."""
    problems = []
    for event_type, recipients in sorted(routing.routes.items()):
        for channels in recipients.values():
            for channel, route in channels.items():
                if not templates.exists(route.template, channel, routing.default_language):
                    problems.append(f"{event_type}: no template {route.template}/{channel}")
                if channel == "zalo" and not route.zalo_template_id:
                    problems.append(f"{event_type}: Zalo needs a zalo_template_id")
    return problems


def create_app(settings: NotifySettings | None = None) -> FastAPI:
    settings = settings or NotifySettings()
    # httpx logs every request at INFO: one line per message sent is not what operators need.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # Bad routing, templates or partners stop the service at start, not at the first event.
    routing = load_routing(settings.routing_file)
    partners = load_partners(settings.partners_file)
    templates = Templates(settings.templates_dir, default_language=routing.default_language)
    problems = check_routes(routing, templates)
    if problems:
        raise ValueError(f"{settings.routing_file}: " + "; ".join(problems))

    clock = shifted(settings.clock_offset_seconds)

    async def start(rt: Runtime, app: FastAPI) -> None:
        store = NotifyStore(rt.db)
        await store.setup()
        client = httpx.AsyncClient(timeout=settings.http_timeout_seconds)
        rt.background(_close_on_cancel(client), "http-client")
        email = SmtpChannel(settings)
        rt.background(_keep_sessions(email), "smtp-sessions")
        channels: dict[str, Channel] = {"email": email}
        if settings.sms_gateway_url:
            channels["sms"] = SmsChannel(settings, client)
        if settings.zalo_base_url:
            channels["zalo"] = ZaloChannel(settings, client)
        if partners:
            channels["webhook"] = WebhookChannel(partners, client)
        delays = backoff_delays(settings.retry_base_seconds, settings.delivery_tries)
        retries = RetryQueues(rt.broker.channel, queue=QUEUE, delays=delays)
        await retries.setup()
        notifier = Notifier(
            deliveries=store,
            recipients=store,
            channels=channels,
            templates=templates,
            routing=routing,
            partners=partners,
            retries=retries,
            publish=rt.broker.publish,
            clock=clock,
            source=f"{settings.public_url}/v1/deliveries",
            tries=settings.delivery_tries,
            delays=delays,
            lease=timedelta(seconds=settings.delivery_lease_seconds),
            faults=rt.faults,
        )
        app.state.store = store
        app.state.notifier = notifier
        inbound_store = InboundStore(rt.db)
        await inbound_store.setup()
        app.state.inbound = Inbound(
            seen=inbound_store,
            counters=inbound_store,
            publish=rt.broker.publish,
            clock=clock,
            per_minute=settings.sms_rate_limit_per_minute,
            source=f"{settings.public_url}/v1/sms/inbound",
        )
        consumer = NotifyConsumer(notifier, answering(table(routing, partners)))
        await rt.consume(QUEUE, consumer.bindings, consumer)
        await retries.bind_back()  # the queue exists now: expired retries come back to it
        # Retries come back by themselves (delay queues); this only finds what a crash left.
        sweep = handlers.sweep_forever(notifier=notifier, interval=handlers.SWEEP_INTERVAL)
        rt.background(sweep, "delivery-sweep")
        await _start_partners(rt, app, settings, client, clock, channels["email"])
        await dvcqg.start(rt, app)  # the national portal: its own queue, collection, loop

    return web.service_app(
        settings,
        summary="Tells citizens and partners what happens to dossiers: e-mail, SMS, Zalo, "
        "webhooks.",
        routers=[router, catalogue_router, partner_router, dvcqg.router],
        start=start,
    )


async def _start_partners(
    rt: Runtime,
    app: FastAPI,
    settings: NotifySettings,
    client: httpx.AsyncClient,
    clock: Clock,
    mail: Channel,
) -> None:
    """Partner accounts and their API-managed endpoints: the API, the consumer of their own
    queue, the sender loop, and the outbox relay of the endpoint-disabled event."""
    store = EndpointStore(rt.db)
    endpoints = rt.db[ENDPOINTS]
    outbox = Outbox(rt.db, rt.broker.publish, service="notify", sources=[], inline=[endpoints])

    async def settle(endpoint_id: str, events: list[Event]) -> object:
        return await outbox.settle(endpoints, endpoint_id, events)

    policy = UrlPolicy(settings.allow_private_endpoints, settings.allow_loopback_endpoints)

    async def allowed(url: str) -> list[str]:
        return await check_url(url, policy)

    delivery = endpoint_delivery.PartnerDelivery(
        store=store,
        client=client,
        clock=clock,
        settle=settle,
        source=f"{settings.public_url}/v1/partner",
        tries=settings.partner_tries,
        retry_base=timedelta(seconds=settings.partner_retry_base_seconds),
        retry_cap=timedelta(seconds=settings.partner_retry_max_seconds),
        lease=timedelta(seconds=settings.partner_lease_seconds),
        window=timedelta(seconds=settings.partner_order_window_seconds),
        check_url=allowed,
        send_mail=mail.send,
        operators_email=settings.operators_email,
    )
    subscriptions = endpoint_delivery.Subscriptions(rt.broker, store)
    app.state.partners = Accounts(
        store=store,
        delivery=delivery,
        clock=clock,
        policy=policy,
        overlap=timedelta(hours=settings.secret_overlap_hours),
        follow=subscriptions.follow,
    )
    await rt.consume(endpoint_delivery.QUEUE, endpoint_delivery.OPERATIONAL, delivery)
    await subscriptions.reconcile()
    rt.background(delivery.run_forever(), "partner-delivery")
    rt.relay(outbox)


async def _close_on_cancel(client: httpx.AsyncClient) -> None:
    try:
        await asyncio.Event().wait()
    finally:
        await client.aclose()


async def _keep_sessions(email: SmtpChannel) -> None:
    """Close the kept SMTP sessions idle too long (checked every `idle` seconds, no database
    involved), and say goodbye to the others when the service stops."""
    try:
        while True:
            await asyncio.sleep(max(email.idle, 1.0))
            if email.sessions:
                try:
                    await asyncio.to_thread(email.expire)
                except Exception:  # a bug: logged, and the sessions are expired at next use
                    log.exception("closing the idle SMTP sessions failed")
    finally:
        await asyncio.to_thread(email.close)
