"""Each service's broker user (deploy/rabbitmq/definitions.json) can do what its service does,
and no more: notify cannot consume audit's queue nor publish to another exchange."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator

import aio_pika
import pytest
from aiormq.exceptions import ChannelAccessRefused

from services.audit.consumer import QUEUE as AUDIT_QUEUE
from services.intake.consumer import QUEUE as INTAKE_QUEUE
from services.notify.app import QUEUE as NOTIFY_QUEUE
from services.notify.endpoint_delivery import OPERATIONAL
from services.notify.endpoint_delivery import QUEUE as PARTNER_QUEUE
from services.notify.retries import RetryQueues
from services.review.consumer import QUEUE as REVIEW_QUEUE
from shared.messaging import Broker, event_message
from tests.conftest import Infra, Isolation, isolated
from tests.factories import submitted_event
from tools.devstack import BROKER_SERVICES, broker_user, service_amqp_url

pytestmark = pytest.mark.integration

QUEUES = {
    "intake": INTAKE_QUEUE,
    "review": REVIEW_QUEUE,
    "notify": NOTIFY_QUEUE,
    "audit": AUDIT_QUEUE,
}


@pytest.fixture(scope="module")
def vhost(infra: Infra) -> Iterator[Isolation]:
    with isolated(infra) as iso:
        for service in BROKER_SERVICES:
            iso.broker.grant_service(service, iso.vhost)
        yield iso


def login(iso: Isolation, service: str) -> str:
    passwords = json.loads(os.environ["MOTCUA_TEST_BROKER_PASSWORDS"])
    user = broker_user(service)
    return service_amqp_url(iso.amqp_url, user, passwords[user])


async def declare_all(vhost: Isolation) -> None:
    # Each service declares its own topology with its own user, as it does at start.
    for service, queue in QUEUES.items():
        broker = Broker(login(vhost, service), service=service)
        await broker.connect()
        try:
            await broker.declare_queue(queue, [f"test.{service}"], delivery_limit=10)
            if service == "notify":
                await RetryQueues(broker.channel, queue=queue, delays=[60.0]).setup()
        finally:
            await broker.close()


@pytest.fixture(scope="module")
def declared(vhost: Isolation) -> Isolation:
    asyncio.run(declare_all(vhost))
    return vhost


@pytest.mark.parametrize("service", sorted(QUEUES))
async def test_each_service_publishes_events_and_consumes_its_own_queue(
    declared: Isolation, service: str
) -> None:
    broker = Broker(login(declared, service), service=service)
    await broker.connect()
    try:
        event = submitted_event()
        await broker.publish(event.model_copy(update={"type": f"test.{service}"}))
        queue = await broker.channel.declare_queue(QUEUES[service], passive=True)
        got = await queue.get(timeout=5, fail=True)
        assert got is not None
        await got.ack()
        if service == "notify":  # its delayed retries go through its own exchanges
            retries = RetryQueues(broker.channel, queue=QUEUES[service], delays=[60.0])
            await retries.setup()
            await retries.bind_back()
            await retries.schedule(event, at_least=1)
            # The partner queue's bindings follow the endpoints, at start and at run time.
            await broker.declare_queue(PARTNER_QUEUE, OPERATIONAL, delivery_limit=10)
            await broker.bind(PARTNER_QUEUE, ["dossier.approved"])
            await broker.unbind(PARTNER_QUEUE, ["dossier.approved", "dossier.received"])
    finally:
        await broker.close()


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    pass


async def test_notify_cannot_consume_audits_queue(declared: Isolation) -> None:
    connection = await aio_pika.connect(login(declared, "notify"))
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(AUDIT_QUEUE, passive=True)  # it may see it exists
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await queue.consume(ignore)
        channel = await connection.channel()
        queue = await channel.declare_queue(AUDIT_QUEUE, passive=True)
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await queue.get(timeout=5)
    finally:
        await connection.close()


async def test_notify_cannot_publish_to_another_exchange(declared: Isolation) -> None:
    connection = await aio_pika.connect(login(declared, "notify"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        other = await channel.get_exchange("amq.topic", ensure=False)
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await other.publish(event_message(submitted_event()), routing_key="x", timeout=5)
        channel = await connection.channel()
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await channel.declare_exchange("motcua.audit.sneaky", aio_pika.ExchangeType.TOPIC)
    finally:
        await connection.close()


async def test_notifys_retry_comes_back_through_its_own_exchanges(declared: Isolation) -> None:
    """The whole retry path with notify's own user: published to a delay queue through
    `motcua.notify.retry`, dead-lettered back into notify's queue through
    `motcua.notify.requeue` when it expires; the default exchange is not its to write to."""
    broker = Broker(login(declared, "notify"), service="notify")
    await broker.connect()
    try:
        retries = RetryQueues(broker.channel, queue=NOTIFY_QUEUE, delays=[0.2])
        await retries.setup()
        await retries.bind_back()
        event = submitted_event()
        assert await retries.schedule(event, at_least=0.1) == 0.2
        queue = await broker.channel.declare_queue(NOTIFY_QUEUE, passive=True)
        deadline = asyncio.get_running_loop().time() + 10
        back = None
        while back is None and asyncio.get_running_loop().time() < deadline:
            back = await queue.get(timeout=5, fail=False)
            if back is None:
                await asyncio.sleep(0.1)
        assert back is not None, "the retry never came back"
        assert json.loads(back.body)["id"] == event.id
        await back.ack()
    finally:
        await broker.close()


async def test_notify_cannot_put_a_message_into_audits_queue_by_the_default_exchange(
    declared: Isolation,
) -> None:
    """The default exchange routes by queue name to any queue: a user that may write to it
    could forge events straight into audit's log. Notify's may not."""
    connection = await aio_pika.connect(login(declared, "notify"))
    try:
        channel = await connection.channel(publisher_confirms=True)
        with pytest.raises(ChannelAccessRefused, match="ACCESS_REFUSED"):
            await channel.default_exchange.publish(
                event_message(submitted_event()), routing_key=AUDIT_QUEUE, timeout=5
            )
    finally:
        await connection.close()
