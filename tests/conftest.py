"""Fixtures for the real infrastructure that `make test` starts (tools.devstack exec).

Each test gets isolated state: its own RabbitMQ vhost and its own database names.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from shared.storage import Document, mongo_client
from tools.devstack import RabbitMQ


@dataclass(frozen=True)
class Infra:
    amqp_url: str
    rabbitmq_api: str
    mongodb_url: str


def _infra() -> Infra:
    try:
        return Infra(
            os.environ["MOTCUA_TEST_AMQP_URL"],
            os.environ["MOTCUA_TEST_RABBITMQ_API"],
            os.environ["MOTCUA_TEST_MONGODB_URL"],
        )
    except KeyError as exc:
        pytest.fail(
            f"{exc.args[0]} is not set: run the suite with `make test`, which starts RabbitMQ "
            "and the database (or `python -m tools.devstack exec -- pytest ...`)."
        )


@pytest.fixture(scope="session")
def infra() -> Infra:
    return _infra()


def _management(infra: Infra) -> RabbitMQ:
    parsed = urllib.parse.urlparse(infra.rabbitmq_api)
    amqp = urllib.parse.urlparse(infra.amqp_url)
    return RabbitMQ("external", Path("/nonexistent"), amqp.port or 5672, parsed.port or 15672)


@dataclass(frozen=True)
class Isolation:
    """One test's own vhost and database prefix."""

    amqp_url: str
    vhost: str
    mongodb_url: str
    database_prefix: str
    broker: RabbitMQ

    def database(self, service: str) -> str:
        return f"{self.database_prefix}{service}"

    def service_env(self) -> dict[str, str]:
        return {
            "MOTCUA_AMQP_URL": self.amqp_url,
            "MOTCUA_MONGODB_URL": self.mongodb_url,
            "MOTCUA_DATABASE_PREFIX": self.database_prefix,
        }

    async def queue_messages(self, queue: str) -> int:
        """Messages ready in `queue` now (AMQP passive declare: exact, unlike the HTTP API)."""
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await connection.close()


@contextlib.contextmanager
def isolated(infra: Infra) -> Iterator[Isolation]:
    """A vhost of its own (deleted after) and database names of its own."""
    broker = _management(infra)
    vhost = f"t-{uuid.uuid4().hex[:12]}"
    quoted = urllib.parse.quote(vhost, safe="")
    broker.request("PUT", f"/vhosts/{quoted}", b"{}")
    broker.request(
        "PUT",
        f"/permissions/{quoted}/guest",
        json.dumps({"configure": ".*", "write": ".*", "read": ".*"}).encode(),
    )
    base = infra.amqp_url.rstrip("/")
    try:
        yield Isolation(
            amqp_url=f"{base}/{quoted}",
            vhost=vhost,
            mongodb_url=infra.mongodb_url,
            database_prefix=f"t{uuid.uuid4().hex[:10]}_",
            broker=broker,
        )
    finally:
        broker.request("DELETE", f"/vhosts/{quoted}")


@pytest.fixture
def isolation(infra: Infra) -> Iterator[Isolation]:
    with isolated(infra) as iso:
        yield iso


@pytest.fixture
async def mongo(isolation: Isolation) -> AsyncIterator[AsyncMongoClient[Document]]:
    client = mongo_client(isolation.mongodb_url)
    yield client
    for name in await client.list_database_names():
        if name.startswith(isolation.database_prefix):
            await client.drop_database(name)
    await client.close()
