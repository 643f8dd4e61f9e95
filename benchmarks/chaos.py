"""Scale-out and faults, measured: the end-to-end load on a 3-node RabbitMQ cluster and two
replicas of every service, while each part in turn fails.

    .venv/bin/python -m benchmarks.chaos [--phase-seconds 30] [--concurrency 8]
        [--faults all | kill:review,kill:notify#2,broker,database] [--drain 180]

Starts its own RabbitMQ cluster (tools.cluster: three nodes on this machine, quorum queues
replicated on all three), its own database (tools.devstack's MongoWire: nx-27017 by default),
a loopback SMTP sink and SMS/Zalo stubs, and two replicas of each of the four services, each
given every node's URL (MOTCUA_AMQP_URL, comma-separated: failover). Dossiers go the whole path
of benchmarks/journeys (documents, submission, assignment, the officer's steps to approval, the
citizen's notification) without a pause, a few at once, the HTTP client spreading its calls
over the replicas of a service and going to the other when one refuses connections (as a
Kubernetes Service does); a submission retried carries the same Idempotency-Key.

Meanwhile, one fault per phase: each replica SIGKILLed in turn (and started again after
`--down-seconds`), the RabbitMQ node that leads most of the queues stopped (and started again),
the database stopped and started again. A dossier belongs to the phase it was submitted in.
After the last phase the load stops and what is in flight drains (`--drain` seconds at most).

Prints, for each phase and overall: dossiers submitted, assigned, decided, notified, audited
(every event of the dossier on the exchange is in audit's records), lost (submitted but not
carried to the end, or an event of it missing from audit's records: must be 0), duplicated
(per dossier: a second event of one kind for one dossier with another id, a second dossier for
one Idempotency-Key; per event: a second notification of one decision on one channel, an
e-mail received twice; must be 0), the longest stall (no dossier moved on) and the time to
recover (from the fault until the stack was whole and a dossier moved on again).
Exits 1 on any loss or duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import httpx
from aio_pika.abc import AbstractIncomingMessage

from benchmarks.end_to_end import out
from benchmarks.journeys import Driver, Journey, Plan, Tokens, Watch, leg_of, plans
from shared.messaging import EXCHANGE, connect_failover
from shared.storage import mongo_client
from tests.e2e.harness import SERVICES, Services, start_smtp
from tests.factories import CATALOGUE
from tests.httpstub import http_stub
from tools.cluster import Cluster, cluster
from tools.devstack import RUN_DIR, MongoWire, broker_user, free_port

WATCH_QUEUE = "chaos.watch"
DECISION = "dossier.approved"
PROGRESS = ("dossier.submitted", "dossier.assigned", DECISION, "notification.sent")
RETRYABLE = (httpx.TransportError,)
FAST_ENV = {
    # Every client here is 127.0.0.1: the rate limit would refuse the load.
    "MOTCUA_INTAKE_RATE_LIMIT_PER_MINUTE": "100000000",
    "MOTCUA_INTAKE_RATE_LIMIT_BURST": "100000000",
    # A crashed replica's outbox is relayed by the other within seconds, not 30.
    "MOTCUA_OUTBOX_INTERVAL_SECONDS": "3",
    # A send that failed while a part was down is retried within the drain (2, 4, 8… s), not
    # after notify's production backoff (30 s doubling): waiting in a delay queue at the end
    # would count as lost, though nothing is (the suite's run found one there).
    "MOTCUA_NOTIFY_RETRY_BASE_SECONDS": "2",
    # A delivery whose claim was written when the database went away cannot know whether it
    # was sent: it waits out its lease (120 s in production) before another try takes it
    # over. 20 s (over the 10 s provider timeouts) keeps that within the drain; the suite's
    # run found one waiting at its end.
    "MOTCUA_NOTIFY_DELIVERY_LEASE_SECONDS": "20",
    "MOTCUA_LOG_LEVEL": "WARNING",
}


BEGAN = time.monotonic()


def note(line: str) -> None:
    print(f"[chaos {time.monotonic() - BEGAN:5.1f}s] {line}", file=sys.stderr, flush=True)


# -- faults --------------------------------------------------------------------------------


def all_faults() -> list[str]:
    kills = [f"kill:{s}{r}" for s in SERVICES for r in ("", "#2")]
    return [*kills, "broker", "database"]


def parse_faults(text: str) -> list[str]:
    faults = all_faults() if text == "all" else [f.strip() for f in text.split(",") if f.strip()]
    known = set(all_faults())
    for fault in faults:
        if fault not in known:
            raise SystemExit(f"unknown fault {fault!r}: choose among {sorted(known)}")
    return faults


@dataclass
class Phase:
    """One fault (or none: the baseline) and when it happened, in perf_counter seconds."""

    fault: str
    started: float
    injected: float = 0.0
    whole: float = 0.0  # the stack complete again (replica ready, node back, database back)
    ended: float = 0.0
    detail: str = ""


# -- the HTTP client: replicas behind one base URL -------------------------------------------


class Replicas(httpx.AsyncBaseTransport):
    """Spreads requests over a service's replicas; one refusing connections is skipped (no
    request reached it, so trying another is safe), as a Kubernetes Service's endpoints."""

    def __init__(self, ports: list[int], connections: int) -> None:
        self.ports = ports
        self.turn = 0
        self.inner = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=connections), retries=0
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.turn += 1
        error: Exception | None = None
        for attempt in range(len(self.ports) * 10):
            port = self.ports[(self.turn + attempt) % len(self.ports)]
            request.url = request.url.copy_with(port=port)
            try:
                return await self.inner.handle_async_request(request)
            except httpx.ConnectError as exc:
                error = exc
                if attempt % len(self.ports) == len(self.ports) - 1:
                    await asyncio.sleep(0.5)  # every replica refused: wait for one to be back
        assert error is not None
        raise error

    async def aclose(self) -> None:
        await self.inner.aclose()


# -- the load: journeys that retry through faults -----------------------------------------------


@dataclass
class Dossier:
    """One journey of the chaos run."""

    phase: int
    key: str  # its Idempotency-Key
    codes: set[str] = field(default_factory=set)  # more than one: a duplicate submission
    journey: Journey | None = None


class ChaosDriver(Driver):
    """benchmarks.journeys' Driver, whose calls are retried through faults: a 5xx or a broken
    connection is tried again (a submission with the same Idempotency-Key, so at most one
    dossier; an officer's action answered 409 after a broken try had gone through)."""

    retry_for: float = 120.0

    async def _call(self, send: Callable[[], Any], ok: tuple[int, ...]) -> httpx.Response:
        deadline = time.monotonic() + self.retry_for
        while True:
            try:
                response: httpx.Response = await send()
                if response.status_code in ok or response.status_code < 500:
                    return response
            except RETRYABLE:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.5)

    async def _upload(self, document_type: str, media_type: str) -> str:
        from tests.e2e.flows import SAMPLES

        response = await self._call(
            lambda: self.intake.post(
                "/v1/attachments",
                params={"document_type": document_type},
                content=SAMPLES[media_type],
                headers={"Content-Type": media_type},
            ),
            (201,),
        )
        if response.status_code != 201:
            raise RuntimeError(f"upload {response.status_code}: {response.text[:300]}")
        return str(response.json()["id"])

    async def act(self, journey: Journey, move: Any) -> float:
        who = self.tokens.who(move, journey.officer_id)
        tries = 0

        async def send() -> httpx.Response:
            nonlocal tries
            tries += 1
            return await self.review.post(
                f"/v1/tasks/{journey.task_id}/actions",
                json={"action": move.action, "reason": None},
                headers={"Authorization": f"Bearer {self.tokens.bearer[who]}"},
            )

        started = time.perf_counter()
        response = await self._call(send, (200,))
        done = time.perf_counter()
        if response.status_code == 409 and tries > 1:
            pass  # an earlier try went through before its answer was lost
        elif response.status_code != 200:
            raise RuntimeError(f"{move.action} {response.status_code}: {response.text[:300]}")
        journey.legs[leg_of(move.action)].append(done - started)
        journey.actions += 1
        return done

    async def dossier(self, plan: Plan, dossier: Dossier) -> None:
        journey = dossier.journey = Journey(plan.procedure)
        try:
            procedure = CATALOGUE.procedures[plan.procedure]
            refs = [
                {
                    "document_type": d.type,
                    "id": await self._upload(d.type, d.media_types[0]),
                }
                for d in procedure.documents
                if d.required
            ]
            body = {**plan.body, "attachments": refs}
            headers = {"Idempotency-Key": dossier.key}
            while True:
                response = await self._call(
                    lambda: self.intake.post("/v1/dossiers", json=body, headers=headers), (201,)
                )
                if response.status_code == 201:
                    break
                if response.status_code == 409 and "idempotency_key_in_progress" in response.text:
                    await asyncio.sleep(0.5)  # the broken try is still being stored
                    continue
                raise RuntimeError(f"submit {response.status_code}: {response.text[:300]}")
            journey.code = str(response.json()["code"])
            dossier.codes.add(journey.code)
            _, assigned = await self._wait("assigned", journey.code)
            journey.task_id = str(assigned["task_id"])
            journey.officer_id = str(assigned["officer_id"])
            for move in plan.moves:
                await self.act(journey, move)
            await self._wait("notified", journey.code)
        except (RuntimeError, httpx.HTTPError) as exc:
            journey.error = f"{type(exc).__name__}: {exc}"


# -- what the exchange carried -------------------------------------------------------------------


@dataclass
class Seen:
    """Every event on the exchange once (by id), through a durable quorum queue of our own
    that survives the loss of a node, and when the tracked ones first arrived."""

    watch: Watch
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    moved: list[float] = field(default_factory=list)  # arrival of each first-seen progress event

    def on_message(self, message: AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        if event["id"] in self.events:
            return  # a redelivery (our ack was lost with a node) or a republished copy
        self.events[event["id"]] = event
        if event.get("type") in PROGRESS:
            self.moved.append(time.perf_counter())
        self.watch.on_message(message)

    def per_dossier(self) -> dict[str, list[dict[str, Any]]]:
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for event in self.events.values():
            data = event.get("data") or {}
            code = str(data.get("dossier_code") or event.get("subject") or "")
            if code:
                by[code].append(event)
        return by


async def watch_cluster(url: str, seen: Seen) -> aio_pika.abc.AbstractConnection:
    connection = await connect_failover(url)
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=500)
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    queue = await channel.declare_queue(
        WATCH_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await queue.bind(exchange, "#")

    async def take(message: AbstractIncomingMessage) -> None:
        seen.on_message(message)
        await message.ack()

    await queue.consume(take)
    return connection


# -- the figures -----------------------------------------------------------------------------------


@dataclass
class Row:
    submitted: int = 0
    assigned: int = 0
    decided: int = 0
    notified: int = 0
    audited: int = 0
    lost: int = 0
    dup_dossier: int = 0
    dup_event: int = 0
    resent: int = 0
    stall: float = 0.0
    recover: float | None = None
    failed: list[str] = field(default_factory=list)


def longest_stall(moved: list[float], start: float, end: float) -> float:
    """The longest time in [start, end] in which no dossier moved on."""
    marks = [start, *sorted(t for t in moved if start <= t <= end), end]
    return max(b - a for a, b in itertools.pairwise(marks))


def assess(
    dossiers: list[Dossier],
    seen: Seen,
    audited: dict[str, set[str]],
    emails: Counter[str],
) -> tuple[dict[int, Row], list[str]]:
    """Per phase index, the row of figures; and a line on every loss or duplicate."""
    rows: dict[int, Row] = defaultdict(Row)
    problems: list[str] = []
    events = seen.per_dossier()
    for d in dossiers:
        row = rows[d.phase]
        if not d.codes:
            if d.journey and d.journey.error:
                row.failed.append(d.journey.error)
            continue  # never accepted (no 201): nothing to lose
        row.submitted += 1
        if len(d.codes) > 1:
            row.dup_dossier += 1
            problems.append(f"one Idempotency-Key, dossiers {sorted(d.codes)}")
        code = min(d.codes)
        mine = events.get(code, [])
        ids: dict[str, set[str]] = defaultdict(set)
        per_channel: dict[tuple[str, str], set[str]] = defaultdict(set)
        for e in mine:
            ids[e["type"]].add(e["id"])
            data = e.get("data") or {}
            if e["type"] == "notification.sent" and data.get("trigger_event_type") == DECISION:
                per_channel[(str(data.get("trigger_event_id")), str(data["channel"]))].add(e["id"])
        stages = {
            "assigned": bool(ids["dossier.assigned"]),
            "decided": bool(ids[DECISION]),
            "notified": bool(per_channel),
        }
        missing_audit = {e["id"] for e in mine} - audited.get(code, set())
        unaudited = sorted(e["type"] for e in mine if e["id"] in missing_audit)
        row.assigned += stages["assigned"]
        row.decided += stages["decided"]
        row.notified += stages["notified"]
        row.audited += bool(mine) and not missing_audit
        if not all(stages.values()) or missing_audit or not ids["dossier.submitted"]:
            row.lost += 1
            gone = [k for k, v in stages.items() if not v]
            error = d.journey.error if d.journey else ""
            problems.append(
                f"lost {code}: not {gone or '-'}, not audited: {unaudited or '-'} {error[:200]}"
            )
        twice = [t for t in ("dossier.submitted", "dossier.assigned", DECISION) if len(ids[t]) > 1]
        if twice:
            row.dup_dossier += 1
            problems.append(f"duplicated {code}: {twice} with more than one id")
        again = [k for k, v in per_channel.items() if len(v) > 1]
        if again:
            row.dup_event += 1
            problems.append(f"duplicated {code}: one decision notified twice on {again}")
        # An SMTP send that got no answer in time is tried again with the same Message-ID
        # (notify's documented at-least-once edge with a provider): counted apart.
        row.resent += sum(n - 1 for m, n in emails.items() if code in m and n > 1)
    return rows, problems


# -- the run -------------------------------------------------------------------------------


@dataclass
class Chaos:
    args: argparse.Namespace
    cluster: Cluster
    mongo: MongoWire
    prefix: str
    services: Services | None = None
    phases: list[Phase] = field(default_factory=list)
    dossiers: list[Dossier] = field(default_factory=list)
    ports: dict[str, list[int]] = field(default_factory=dict)
    final_queues: list[dict[str, object]] = field(default_factory=list)
    mail: list[Any] = field(default_factory=list)

    def service_env(self, service: str) -> dict[str, str]:
        """`service`'s own broker user on every node of the cluster."""
        user = broker_user(service)
        return {"MOTCUA_AMQP_URL": self.cluster.vhost_url("/", user, self.cluster.passwords[user])}

    def start(self, name: str) -> None:
        assert self.services
        self.services.start(name, **self.service_env(name.partition("#")[0]))

    async def run(self) -> int:
        controller, mailbox = start_smtp()
        zns_ok = (200, {"error": 0, "data": {"msg_id": "z"}})
        logs = Path(tempfile.mkdtemp(prefix="motcua-chaos-"))
        note(f"services' logs in {logs}")
        with http_stub() as sms, http_stub(zns_ok) as zalo:
            env = {
                **FAST_ENV,
                "MOTCUA_AMQP_URL": self.cluster.url,
                "MOTCUA_MONGODB_URL": self.mongo.url,
                "MOTCUA_DATABASE_PREFIX": self.prefix,
                "MOTCUA_NOTIFY_SMTP_PORT": str(mailbox.port),
                "MOTCUA_NOTIFY_SMS_GATEWAY_URL": f"{sms.url}/sms",
                "MOTCUA_NOTIFY_ZALO_BASE_URL": zalo.url,
            }
            self.services = Services(env=env, logs=logs)
            try:
                return await self._run(mailbox)
            finally:
                self.services.stop_all()
                controller.stop()

    async def _run(self, mailbox: Any) -> int:
        assert self.services
        args = self.args
        names = [f"{s}{r}" for s in SERVICES for r in ("", "#2")]
        for name in names:
            self.start(name)
        tokens = Tokens()
        minting = asyncio.create_task(tokens.mint_all())  # meanwhile (a process per officer)
        for name in names:
            await asyncio.to_thread(self.services.wait_ready, name, 120)
        await minting
        note("every replica is ready")
        replicas = self.cluster.replicas("/")
        note(f"quorum queues and their replicas: {replicas}")
        short = {q: n for q, n in replicas.items() if n != len(self.cluster.nodes)}
        if short:
            raise RuntimeError(f"quorum queues not on every node: {short}")
        for service in SERVICES:
            self.ports[service] = [
                self.services.ports[service],
                self.services.ports[f"{service}#2"],
            ]
        seen = Seen(Watch())
        connection = await watch_cluster(self.cluster.url, seen)
        width = args.concurrency + 10
        intake = httpx.AsyncClient(
            base_url="http://127.0.0.1", transport=Replicas(self.ports["intake"], width), timeout=60
        )
        review = httpx.AsyncClient(
            base_url="http://127.0.0.1", transport=Replicas(self.ports["review"], width), timeout=60
        )
        try:
            driver = ChaosDriver(intake, review, seen.watch, tokens, args.step_timeout)
            plan_list = plans(args.procedure.split(","))
            await self._load(driver, plan_list, seen)
            audited, emails = await self._collect(mailbox, seen)
        finally:
            await intake.aclose()
            await review.aclose()
            await connection.close()
        self.final_queues = sorted(
            (q for q in self.cluster.queues("/") if str(q["name"]).startswith("motcua.")),
            key=lambda q: str(q["name"]),
        )
        rows, problems = assess(self.dossiers, seen, audited, emails)
        self._print(rows, problems, seen)
        return 1 if problems else 0

    async def _load(self, driver: ChaosDriver, plan_list: list[Plan], seen: Seen) -> None:
        args = self.args
        stop = asyncio.Event()
        semaphore = asyncio.Semaphore(args.concurrency)
        running: set[asyncio.Task[None]] = set()

        async def feed() -> None:
            n = 0
            while not stop.is_set():
                await semaphore.acquire()
                if stop.is_set():
                    semaphore.release()
                    break
                dossier = Dossier(len(self.phases) - 1, f"chaos-{uuid.uuid4().hex}")
                self.dossiers.append(dossier)
                plan = plan_list[n % len(plan_list)]
                n += 1

                async def one(d: Dossier = dossier, p: Plan = plan) -> None:
                    try:
                        await driver.dossier(p, d)
                    finally:
                        semaphore.release()

                task = asyncio.create_task(one())
                running.add(task)
                task.add_done_callback(running.discard)

        self.phases.append(Phase("none (baseline)", time.perf_counter()))
        feeder = asyncio.create_task(feed())
        try:
            await asyncio.sleep(args.phase_seconds)
            for fault in parse_faults(args.faults):
                self.phases[-1].ended = time.perf_counter()
                phase = Phase(fault, time.perf_counter())
                self.phases.append(phase)
                note(f"fault: {fault}")
                await self._inject(phase, seen)
                left = args.phase_seconds - (time.perf_counter() - phase.started)
                await asyncio.sleep(max(0.0, left))
            self.phases[-1].ended = time.perf_counter()
        finally:
            stop.set()
            semaphore.release()  # the feeder may wait for a place
            await feeder
        note(f"load stopped; draining {len(running)} dossiers in flight")
        _, pending = await asyncio.wait(set(running), timeout=args.drain) if running else ((), ())
        for task in pending:
            task.cancel()

    async def _inject(self, phase: Phase, seen: Seen) -> None:
        assert self.services
        args = self.args
        phase.injected = time.perf_counter()
        if phase.fault.startswith("kill:"):
            name = phase.fault.removeprefix("kill:")
            await asyncio.to_thread(self.services.kill, name, signal.SIGKILL)
            await asyncio.sleep(args.down_seconds)
            self.start(name)
            await asyncio.to_thread(self.services.wait_ready, name, 120)
        elif phase.fault == "broker":
            node = self.cluster.leading_node("/", "motcua.")
            phase.detail = node.node
            await asyncio.to_thread(self.cluster.stop_node, node)
            await asyncio.sleep(args.down_seconds)
            await asyncio.to_thread(self.cluster.start_node, node)
            await self._until(lambda: len(self.cluster.running_members()) == 3, 120)
        elif phase.fault == "database" and self.mongo.proc is None:
            phase.detail = "MONGODB_URL given: not ours to restart, skipped"
        elif phase.fault == "database":
            await asyncio.to_thread(self.mongo.stop)
            await asyncio.sleep(args.down_seconds)
            await asyncio.to_thread(self.mongo.start)
        for name in list(self.services.procs):
            await asyncio.to_thread(self.services.wait_ready, name, 120)
        phase.whole = time.perf_counter()
        note(f"whole again after {phase.whole - phase.injected:.1f}s")

    async def _until(self, check: Callable[[], bool], within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                if await asyncio.to_thread(check):
                    return
            except (OSError, RuntimeError):
                pass
            await asyncio.sleep(0.5)
        raise TimeoutError(f"not recovered in {within:.0f}s")

    async def _collect(self, mailbox: Any, seen: Seen) -> tuple[dict[str, set[str]], Counter[str]]:
        """Audit's records (event ids per dossier), once it holds every event seen or after
        `--settle` seconds more; and the e-mails per Message-ID (with the dossier's code)."""
        client = mongo_client(self.mongo.url)
        deadline = time.monotonic() + self.args.settle
        try:
            records = client[f"{self.prefix}audit"]["records"]
            while True:
                audited: dict[str, set[str]] = defaultdict(set)
                async for record in records.find({}, {"dossier_code": 1}):
                    audited[str(record.get("dossier_code"))].add(str(record["_id"]))
                held = set().union(*audited.values()) if audited else set()
                wanted = {
                    i for i, e in seen.events.items() if (e.get("data") or {}).get("dossier_code")
                }
                if wanted <= held or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
        finally:
            await client.close()
        emails: Counter[str] = Counter()
        for message in mailbox.messages:
            emails[f"{message['Message-ID']} {message['Subject']}"] += 1
        self.mail = list(mailbox.messages)
        return audited, emails

    def _print(self, rows: dict[int, Row], problems: list[str], seen: Seen) -> None:
        out(f"### Faults under load ({time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC)")
        out()
        out(
            f"RabbitMQ {len(self.cluster.nodes)}-node cluster (quorum queues on every node), "
            f"{self.mongo.kind}, two replicas of each service; {self.args.concurrency} dossiers "
            f"at once, phases of {self.args.phase_seconds:g} s, each fault held "
            f"{self.args.down_seconds:g} s. `{self.command()}`"
        )
        out()
        out(
            "| fault | submitted | assigned | decided | notified | audited | lost | "
            "duplicated (dossier / event) | e-mails resent | longest stall s | whole again in s |"
        )
        out("|---|---|---|---|---|---|---|---|---|---|---|")
        total = Row()
        end = self.phases[-1].ended
        for i, phase in enumerate(self.phases):
            row = rows.get(i, Row())
            until = self.phases[i + 1].started if i + 1 < len(self.phases) else end
            row.stall = longest_stall(seen.moved, phase.started, until)
            recover = "-"
            if phase.injected:
                recover = f"{phase.whole - phase.injected:.1f}"
            name = phase.fault + (f" ({phase.detail})" if phase.detail else "")
            out(
                f"| {name} | {row.submitted} | {row.assigned} | {row.decided} | {row.notified} "
                f"| {row.audited} | {row.lost} | {row.dup_dossier} / {row.dup_event} "
                f"| {row.resent} | {row.stall:.1f} | {recover} |"
            )
            for attr in ("submitted", "assigned", "decided", "notified", "audited", "lost"):
                setattr(total, attr, getattr(total, attr) + getattr(row, attr))
            total.dup_dossier += row.dup_dossier
            total.dup_event += row.dup_event
            total.resent += row.resent
            total.stall = max(total.stall, row.stall)
            total.failed.extend(row.failed)
        out(
            f"| **overall** | {total.submitted} | {total.assigned} | {total.decided} | "
            f"{total.notified} | {total.audited} | **{total.lost}** | "
            f"**{total.dup_dossier} / {total.dup_event}** | {total.resent} | {total.stall:.1f} | |"
        )
        out()
        out(
            f"{len(seen.events)} distinct events on the exchange; "
            f"{len(total.failed)} journeys never got a dossier accepted"
            + (f" (first: {total.failed[0][:200]})" if total.failed else "")
        )
        for line in problems[:50]:
            out(f"- {line}")
        out()
        out("| queue at the end | ready | unacknowledged | consumers |")
        out("|---|---|---|---|")
        for queue in self.final_queues:
            out(
                f"| {queue['name']} | {queue.get('messages_ready', '?')} | "
                f"{queue.get('messages_unacknowledged', '?')} | {queue.get('consumers', '?')} |"
            )
        out()

    def command(self) -> str:
        return "python -m benchmarks.chaos " + " ".join(sys.argv[1:])


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos")
    parser.add_argument("--faults", default="all", help="`all`, or a comma-separated list")
    parser.add_argument("--phase-seconds", type=float, default=30.0, help="seconds per fault")
    parser.add_argument("--down-seconds", type=float, default=3.0, help="a fault held this long")
    parser.add_argument("--concurrency", type=int, default=8, help="dossiers at once")
    parser.add_argument("--procedure", default="1.004194,1.004222", help="procedures in turn")
    parser.add_argument("--drain", type=float, default=180.0, help="seconds for what is in flight")
    parser.add_argument(
        "--settle", type=float, default=60.0, help="seconds audit may take to catch up then"
    )
    parser.add_argument("--step-timeout", type=float, default=150.0, help="seconds per wait")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for everything")
    return parser.parse_args(argv)


@contextmanager
def infrastructure() -> Iterator[tuple[Cluster, MongoWire]]:
    home = RUN_DIR / f"chaos-{os.getpid()}"
    mongo = MongoWire(home / "mongo", free_port())
    try:
        with cluster(home / "cluster") as c:
            try:
                mongo.start()
                yield c, mongo
            finally:
                mongo.stop()
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    parse_faults(args.faults)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    watchdog = threading.Timer(args.timeout + 90, lambda: os.kill(os.getpid(), signal.SIGTERM))
    watchdog.daemon = True
    watchdog.start()
    try:
        with infrastructure() as (c, mongo):
            chaos = Chaos(args, c, mongo, f"chaos{uuid.uuid4().hex[:6]}_")
            try:
                return asyncio.run(asyncio.wait_for(chaos.run(), args.timeout))
            except TimeoutError:
                out(f"**stopped: --timeout {args.timeout:.0f} s reached**")
                return 2
    except KeyboardInterrupt:
        note("stopped")
        return 130
    finally:
        watchdog.cancel()


if __name__ == "__main__":
    sys.exit(main())
