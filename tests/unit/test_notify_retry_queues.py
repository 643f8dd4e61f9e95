"""Notify's delay queues survive the loss of a broker node: replicated (quorum), each message
kept until notify's queue has it, under names that do not clash with the classic ones."""

from __future__ import annotations

from typing import Any

from services.notify.retries import RetryQueues, retry_queue_arguments


class Channel:
    """What RetryQueues.setup asks of an aio-pika channel, recorded."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, Any]] = {}
        self.exchanges: list[str] = []
        self.bound: list[tuple[str, object, str]] = []

    async def declare_exchange(self, name: str, *args: Any, **kwargs: Any) -> object:
        self.exchanges.append(name)
        return name

    async def declare_queue(self, name: str, *, durable: bool, arguments: dict[str, Any]) -> Queue:
        assert durable
        self.queues[name] = arguments
        return Queue(name, self.bound)


class Queue:
    def __init__(self, name: str, bound: list[tuple[str, object, str]]) -> None:
        self.name, self.bound = name, bound

    async def bind(self, exchange: object, *, routing_key: str) -> None:
        self.bound.append((self.name, exchange, routing_key))


async def test_every_delay_queue_is_a_quorum_queue_dead_lettering_at_least_once() -> None:
    channel = Channel()
    retries = RetryQueues(channel, queue="motcua.notify", delays=[30, 120])  # type: ignore[arg-type]
    await retries.setup()
    assert set(channel.queues) == {
        "motcua.notify.retry.30000ms.quorum",
        "motcua.notify.retry.120000ms.quorum",
    }
    for name, arguments in channel.queues.items():
        assert arguments["x-queue-type"] == "quorum", name
        assert arguments["x-dead-letter-strategy"] == "at-least-once", name
        assert arguments["x-overflow"] == "reject-publish", name  # at-least-once needs it
        # Back through notify's own requeue exchange, never the default one (which reaches
        # every queue, and which notify's broker user may not write to).
        assert arguments["x-dead-letter-exchange"] == "motcua.notify.requeue"
        assert arguments["x-dead-letter-routing-key"] == "motcua.notify"
        assert (name, "motcua.notify.retry", name) in channel.bound  # published there by name
    assert channel.queues["motcua.notify.retry.30000ms.quorum"]["x-message-ttl"] == 30000
    assert {"motcua.notify.retry", "motcua.notify.requeue"} <= set(channel.exchanges)


def test_the_new_names_do_not_clash_with_the_classic_queues_of_before() -> None:
    # Redeclaring `motcua.notify.retry.30000ms` as a quorum queue would fail (its type is
    # fixed): the replicated ones take new names and the old drain by themselves.
    retries = RetryQueues(None, queue="motcua.notify", delays=[30])  # type: ignore[arg-type]
    assert retries.name(30) != "motcua.notify.retry.30000ms"
    assert retry_queue_arguments(1.5, "q")["x-message-ttl"] == 1500
