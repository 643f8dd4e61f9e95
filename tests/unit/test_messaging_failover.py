"""The broker connection's failover over several nodes of a cluster (no broker needed: the
nodes here are closed loopback ports)."""

from __future__ import annotations

import aio_pika
import pytest

from shared.messaging import FailoverConnection, broker_urls, connect_failover
from tools.devstack import free_port


def test_broker_urls_split_a_comma_separated_list() -> None:
    assert broker_urls("amqp://a:1/v") == ["amqp://a:1/v"]
    assert broker_urls(" amqp://a:1/v , amqp://b:2/v,") == ["amqp://a:1/v", "amqp://b:2/v"]
    with pytest.raises(ValueError, match="no broker URL"):
        broker_urls(" , ")


def test_the_reconnection_hook_is_still_aio_pikas() -> None:
    # FailoverConnection overrides this name-mangled method: renamed upstream, failover is gone.
    assert hasattr(aio_pika.RobustConnection, "_RobustConnection__connect_transport")


async def test_a_failed_attempt_moves_to_the_next_node_and_round() -> None:
    urls = [f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(3)]
    connection = FailoverConnection(urls)
    assert str(connection.url) == urls[0]
    for expected in (urls[1], urls[2], urls[0]):
        with pytest.raises(ConnectionError):
            await connection._RobustConnection__connect_transport()
        assert str(connection.url) == expected


async def test_connect_failover_tries_every_node_then_raises() -> None:
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{free_port()}/" for _ in range(2))
    with pytest.raises(ConnectionError):
        await connect_failover(urls)
